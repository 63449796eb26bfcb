/**
 * Microversions (Nova's `OpenStack-API-Version: compute 2.X`, Cinder's `volume 3.X`). No header is
 * the minimum; `latest` is the maximum; anything outside [min, max] is a 406. The version in effect
 * is echoed back with `Vary`, as Nova does. A service advertises as its maximum only a version whose
 * response shapes it renders (see the issue: honesty over a high number).
 */
import type { RequestHandler } from 'express';
import { OpenStackError } from './errors';

export interface Microversion {
  major: number;
  minor: number;
}

declare module 'express-serve-static-core' {
  interface Request {
    /** The negotiated microversion of a compute or volume request. */
    microversion?: Microversion;
  }
}

export interface MicroversionRange {
  min: string;
  max: string;
}

/** The header names each service reads and echoes. */
const LEGACY_HEADER = { compute: 'X-OpenStack-Nova-API-Version', volume: 'X-OpenStack-Volume-API-Version' } as const;

export function parseVersion(text: string): Microversion | null {
  const m = /^(\d+)\.(\d+)$/.exec(text.trim());
  return m ? { major: Number(m[1]), minor: Number(m[2]) } : null;
}

export function compareVersions(a: Microversion, b: Microversion): number {
  return a.major - b.major || a.minor - b.minor;
}

export function formatVersion(v: Microversion): string {
  return `${v.major}.${v.minor}`;
}

/** The version the request asked for, as text (`latest`, `2.47`), or undefined without a header. */
function requested(service: 'compute' | 'volume', header: string | undefined, legacy: string | undefined): string | undefined {
  if (header) {
    // `OpenStack-API-Version: compute 2.47` (possibly a comma-separated list of several services)
    for (const part of header.split(',')) {
      const [name, version] = part.trim().split(/\s+/);
      if (name?.toLowerCase() === service && version) return version;
    }
  }
  return legacy?.trim() || undefined;
}

export function negotiateMicroversion(service: 'compute' | 'volume', range: MicroversionRange): RequestHandler {
  const min = parseVersion(range.min)!;
  const max = parseVersion(range.max)!;
  const legacyHeader = LEGACY_HEADER[service];
  return (req, res, next) => {
    const asked = requested(service, req.get('openstack-api-version'), req.get(legacyHeader));
    let version = min;
    if (asked !== undefined) {
      const parsed = asked.toLowerCase() === 'latest' ? max : parseVersion(asked);
      if (!parsed) throw new OpenStackError(400, `Invalid microversion ${JSON.stringify(asked)}: expected <major>.<minor> or "latest".`);
      if (compareVersions(parsed, min) < 0 || compareVersions(parsed, max) > 0) {
        throw new OpenStackError(406, `Version ${asked} is not supported by the API. Minimum is ${range.min} and maximum is ${range.max}.`);
      }
      version = parsed;
    }
    req.microversion = version;
    res.setHeader('OpenStack-API-Version', `${service} ${formatVersion(version)}`);
    res.setHeader(legacyHeader, formatVersion(version));
    res.setHeader('Vary', `OpenStack-API-Version, ${legacyHeader}`);
    next();
  };
}

/** Whether the request's microversion is at least `version` (e.g. `atLeast(req, '2.47')`). */
export function atLeast(req: { microversion?: Microversion }, version: string): boolean {
  return compareVersions(req.microversion ?? { major: 0, minor: 0 }, parseVersion(version)!) >= 0;
}
