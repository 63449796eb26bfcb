/**
 * The `Allow` header of a 405 (RFC 9110 §15.5.6): the methods the spec declares for the path.
 * Built once from openapi/stratus.yaml.
 */
import fs from 'node:fs';
import YAML from 'yaml';
import { OPENAPI_PATH } from './docs';

const METHODS = ['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace'];

let routes: Array<{ pattern: RegExp; allow: string }> | undefined;

function load(): Array<{ pattern: RegExp; allow: string }> {
  const spec = YAML.parse(fs.readFileSync(OPENAPI_PATH, 'utf8')) as { paths: Record<string, Record<string, unknown>> };
  return Object.entries(spec.paths).map(([template, item]) => {
    const pattern = new RegExp(`^${template.replace(/[.*+?^$()|[\]\\]/g, '\\$&').replace(/\{[^}]+\}/g, '[^/]+')}/?$`);
    const methods = METHODS.filter((m) => m in item).map((m) => m.toUpperCase());
    if (methods.includes('GET') && !methods.includes('HEAD')) methods.push('HEAD');
    return { pattern, allow: methods.join(', ') };
  });
}

/** The methods allowed on `path`, as an Allow header value; null for a path the spec does not have. */
export function allowedMethods(path: string): string | null {
  routes ??= load();
  return routes.find((r) => r.pattern.test(path))?.allow ?? null;
}
