/**
 * A whole Stratus cloud inside the test process, wired exactly as `stratus up` wires it
 * (workers/cloud.ts), against the shared Temporal dev server, a real database (PGlite in a temp data
 * dir, or a fresh PostgreSQL database) and libvirt's test driver.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import type { FaultPlan } from '../../activities/fault-injection';
import { loadConfig, type Config } from '../../core/config';
import { createLogger } from '../../core/log';
import { startCloud, type RunningCloud } from '../../workers/cloud';
import { freePort } from './ports';
import { testTemporal } from './temporal';

export const ADMIN_PASSWORD = 'admin-secret-pw';

export interface TestCloud {
  config: Config;
  cloud: RunningCloud;
  baseUrl: string;
  /** fetch against the API, JSON in and out; `token` adds the bearer header. */
  call(method: string, urlPath: string, options?: { token?: string; body?: unknown; headers?: Record<string, string> }): Promise<{ status: number; body: any; headers: Headers }>;
  login(username?: string, password?: string, project?: string): Promise<string>;
  /** GETs `urlPath` until `done(body)` holds (or the status is `untilStatus`); fails after `timeoutMs`. */
  waitFor(urlPath: string, token: string, done: (res: { status: number; body: any }) => boolean, timeoutMs?: number): Promise<{ status: number; body: any }>;
  stop(): Promise<void>;
}

export async function startTestCloud(
  options: { databaseUrl?: string; env?: Record<string, string>; faults?: FaultPlan } = {},
): Promise<TestCloud> {
  const temporal = testTemporal();
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'stratus-test-'));
  const port = await freePort();
  const config = loadConfig({
    STRATUS_DATA_DIR: dataDir,
    STRATUS_API_PORT: String(port),
    TEMPORAL_ADDRESS: temporal.address,
    TEMPORAL_NAMESPACE: temporal.namespace,
    STRATUS_HOST_NAME: `test-${randomBytes(4).toString('hex')}`,
    STRATUS_HOST_HEARTBEAT_SECONDS: '1',
    STRATUS_ADMIN_PASSWORD: ADMIN_PASSWORD,
    STRATUS_LIBVIRT_URI: 'test:///default',
    ...(options.databaseUrl ? { DATABASE_URL: options.databaseUrl } : {}),
    ...options.env,
  });
  const log = createLogger(process.env.STRATUS_TEST_LOG_LEVEL ?? 'silent');
  const cloud = await startCloud('up', config, log, {
    forwardCoreLogs: false,
    validateResponses: true,
    ...(options.faults ? { faults: options.faults } : {}),
  });
  const baseUrl = `http://127.0.0.1:${port}`;

  const call: TestCloud['call'] = async (method, urlPath, { token, body, headers = {} } = {}) => {
    const res = await fetch(`${baseUrl}${urlPath}`, {
      method,
      headers: {
        ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
        ...(token ? { authorization: `Bearer ${token}` } : {}),
        ...headers,
      },
      ...(body !== undefined ? { body: typeof body === 'string' ? body : JSON.stringify(body) } : {}),
    });
    const text = await res.text();
    let parsed: unknown = text;
    try {
      parsed = text ? JSON.parse(text) : undefined;
    } catch {
      /* not JSON: keep the text */
    }
    return { status: res.status, body: parsed, headers: res.headers };
  };

  return {
    config,
    cloud,
    baseUrl,
    call,
    async login(username = 'admin', password = ADMIN_PASSWORD, project = 'admin') {
      const res = await call('POST', '/v1/auth/tokens', { body: { username, password, project } });
      if (res.status !== 201) throw new Error(`login as ${username} failed: ${res.status} ${JSON.stringify(res.body)}`);
      return (res.body as { token: string }).token;
    },
    async waitFor(urlPath, token, done, timeoutMs = 30_000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const res = await call('GET', urlPath, { token });
        if (done(res)) return res;
        if (Date.now() > deadline) throw new Error(`timed out waiting on ${urlPath}: last ${res.status} ${JSON.stringify(res.body)}`);
        await new Promise((r) => setTimeout(r, 25));
      }
    },
    async stop() {
      await cloud.stop();
      fs.rmSync(dataDir, { recursive: true, force: true });
    },
  };
}
