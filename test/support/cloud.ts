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
import { testWorkflowBundle } from './workflow-bundle';
import { startTestHosts, type TestHost, type TestHostOptions } from './hosts';
import { freePort } from './ports';
import { testConductorQueue, testTemporal } from './temporal';

export const ADMIN_PASSWORD = 'admin-secret-pw';

export interface TestCloud {
  config: Config;
  cloud: RunningCloud;
  baseUrl: string;
  /** The extra host agents (`hosts` option), in the order given. */
  hosts: TestHost[];
  /** Every host name the cloud schedules on: the built-in agent's (unless `builtInAgent: false`) and the extra ones. */
  hostNames: string[];
  /** fetch against the API, JSON in and out; `token` adds the bearer header. */
  call(method: string, urlPath: string, options?: { token?: string; body?: unknown; headers?: Record<string, string> }): Promise<{ status: number; body: any; headers: Headers }>;
  login(username?: string, password?: string, project?: string): Promise<string>;
  /** GETs `urlPath` until `done(body)` holds (or the status is `untilStatus`); fails after `timeoutMs`. */
  waitFor(urlPath: string, token: string, done: (res: { status: number; body: any }) => boolean, timeoutMs?: number): Promise<{ status: number; body: any }>;
  stop(): Promise<void>;
}

export async function startTestCloud(
  options: {
    databaseUrl?: string;
    env?: Record<string, string>;
    /** Armed failures for the conductor and the built-in agent (extra hosts take theirs in `hosts`). */
    faults?: FaultPlan;
    /** Extra host agents beside the cloud (test/support/hosts.ts), started before it. */
    hosts?: TestHostOptions[];
    /** Run the cloud's own host agent (test:///default) too. Default true; false needs `hosts`. */
    builtInAgent?: boolean;
    /**
     * STRATUS_PUBLIC_URL = http://127.0.0.1:<the port it listens on>, so the Keystone catalog sends
     * real clients (the `openstack` CLI) back to this cloud. Ignored when `env` sets it.
     */
    publicUrlOnLoopback?: boolean;
  } = {},
): Promise<TestCloud> {
  // A conductor task queue of its own (test/support/temporal.ts), chosen before the hosts start: their
  // monitors run there. `env` may name one (a test of two clouds on one queue).
  const conductorTaskQueue = options.env?.STRATUS_CONDUCTOR_TASK_QUEUE ?? testConductorQueue();
  const temporal = { ...testTemporal(), conductorTaskQueue };
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'stratus-test-'));
  const port = await freePort();
  const config = loadConfig({
    STRATUS_DATA_DIR: dataDir,
    STRATUS_API_PORT: String(port),
    TEMPORAL_ADDRESS: temporal.address,
    TEMPORAL_NAMESPACE: temporal.namespace,
    STRATUS_CONDUCTOR_TASK_QUEUE: conductorTaskQueue,
    STRATUS_HOST_NAME: `test-${randomBytes(4).toString('hex')}`,
    STRATUS_HOST_HEARTBEAT_SECONDS: '1',
    STRATUS_ADMIN_PASSWORD: ADMIN_PASSWORD,
    STRATUS_LIBVIRT_URI: 'test:///default',
    ...(options.databaseUrl ? { DATABASE_URL: options.databaseUrl } : {}),
    ...(options.publicUrlOnLoopback ? { STRATUS_PUBLIC_URL: `http://127.0.0.1:${port}` } : {}),
    ...options.env,
  });
  const log = createLogger(process.env.STRATUS_TEST_LOG_LEVEL ?? 'silent');
  const builtInAgent = options.builtInAgent ?? true;
  if (!builtInAgent && !options.hosts?.length) throw new Error('builtInAgent: false needs at least one host in `hosts`');
  // Hosts first: they need only Temporal, and `up` waits for a registered host before it answers.
  const hosts = await startTestHosts(temporal, log, options.hosts ?? []);
  let cloud: RunningCloud;
  try {
    cloud = await startCloud('up', config, log, {
      forwardCoreLogs: false,
      validateResponses: true,
      agent: builtInAgent,
      workflowBundle: await testWorkflowBundle(),
      ...(options.faults ? { faults: options.faults } : {}),
    });
  } catch (err) {
    await Promise.all(hosts.map((h) => h.stop()));
    throw err;
  }
  const hostNames = [...(builtInAgent ? [config.host.name] : []), ...hosts.map((h) => h.name)];
  const baseUrl = `http://127.0.0.1:${port}`;

  const call = apiCaller(baseUrl);

  return {
    config,
    cloud,
    baseUrl,
    hosts,
    hostNames,
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
      await Promise.all(hosts.map((h) => h.stop()));
      fs.rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/** fetch against a Stratus API at `baseUrl`, JSON in and out (TestCloud.call). */
export function apiCaller(baseUrl: string): TestCloud['call'] {
  return async (method, urlPath, { token, body, headers = {} } = {}) => {
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
}
