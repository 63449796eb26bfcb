/**
 * Starts the parts of a Stratus cloud that one process runs, and stops them in reverse order.
 *
 *   up         the embedded Temporal dev server (unless TEMPORAL_ADDRESS), the database, the api,
 *              a conductor and one host agent — everything in one process (PGlite allows one process)
 *   api        the HTTP API alone         (needs DATABASE_URL and TEMPORAL_ADDRESS)
 *   conductor  the conductor worker alone (needs DATABASE_URL and TEMPORAL_ADDRESS)
 *   agent      one host agent alone       (needs TEMPORAL_ADDRESS; no database)
 */
import fs from 'node:fs';
import type { Server } from 'node:http';
import { NativeConnection, type Worker } from '@temporalio/worker';
import { createApp } from '../api/app';
import type { Config } from '../core/config';
import { ConfigError } from '../core/config';
import type { Logger } from '../core/log';
import { openDatabase, type Database } from '../db/connect';
import { migrateLatest } from '../db/migrate';
import { openHypervisor } from '../libvirt';
import { createIdentityService } from '../services/identity';
import { connectTemporal, ensureNamespaceAndSearchAttributes } from '../temporal/connection';
import { startEmbeddedDevServer } from '../temporal/dev-server';
import { createHostAgent } from './agent';
import { createConductorWorker } from './conductor';
import { close, listen } from './http';
import { installTemporalRuntime } from './temporal-runtime';

export type Role = 'up' | 'api' | 'conductor' | 'agent';

export interface RunningCloud {
  /** Base URL of the API, when this process runs it. */
  apiUrl?: string;
  /** The admin password generated at first start (printed once), if one was. */
  generatedAdminPassword?: string;
  /** Start → every part of this process running (for `up`: the host registered and /readyz green). */
  readyMs: number;
  /** Stops everything this process started, in reverse order. Idempotent. */
  stop(): Promise<void>;
  /** Resolves if a part of the cloud dies on its own (a worker crash, the dev server exiting). */
  failed: Promise<Error>;
}

/** Components stop in reverse start order; each gets a bounded time so SIGTERM finishes in < 10 s. */
class Stack {
  private readonly parts: Array<{ name: string; stop: () => Promise<unknown> }> = [];
  constructor(private readonly log: Logger) {}
  add(name: string, stop: () => Promise<unknown>): void {
    this.parts.push({ name, stop });
  }
  async stopAll(): Promise<void> {
    for (const part of this.parts.splice(0).reverse()) {
      const started = Date.now();
      let timer: NodeJS.Timeout | undefined;
      try {
        await Promise.race([
          part.stop(),
          new Promise((_, reject) => {
            timer = setTimeout(() => reject(new Error('did not stop within 4 s')), 4000);
          }),
        ]);
        this.log.debug({ part: part.name, ms: Date.now() - started }, 'stopped');
      } catch (err) {
        this.log.warn({ err, part: part.name }, 'stopping failed');
      } finally {
        clearTimeout(timer);
      }
    }
  }
}

function requireSharedServices(config: Config, role: Role, needsDatabase: boolean): void {
  if (!config.temporal.address) {
    throw new ConfigError(`stratus ${role} runs beside other processes: set TEMPORAL_ADDRESS (or use \`stratus up\`)`);
  }
  if (needsDatabase && config.database.kind !== 'postgres') {
    throw new ConfigError(
      `stratus ${role} shares the database with other processes: set DATABASE_URL (embedded PGlite serves one process; use \`stratus up\`)`,
    );
  }
}

export interface StartOptions {
  /** Forward the Temporal core's native logs into pino (off in jest: forwarding keeps it from exiting). */
  forwardCoreLogs?: boolean;
  /** Validate API responses against the spec (tests). */
  validateResponses?: boolean;
}

export async function startCloud(role: Role, config: Config, log: Logger, options: StartOptions = {}): Promise<RunningCloud> {
  const started = Date.now();
  const stack = new Stack(log);
  const failures: Array<(err: Error) => void> = [];
  const failed = new Promise<Error>((resolve) => failures.push(resolve));
  const fail = (err: Error) => failures.forEach((f) => f(err));
  const runs = { api: role === 'up' || role === 'api', conductor: role === 'up' || role === 'conductor', agent: role === 'up' || role === 'agent' };
  if (role !== 'up') requireSharedServices(config, role, role !== 'agent');

  try {
    fs.mkdirSync(config.dataDir, { recursive: true });

    // 1. Temporal: the embedded dev server, or the cluster at TEMPORAL_ADDRESS.
    let address = config.temporal.address;
    if (!address) {
      const server = await startEmbeddedDevServer(config, log);
      stack.add('temporal dev server', () => server.stop());
      server.exited.then(
        (exit) => fail(new Error(`the Temporal dev server exited (code ${exit.code}, signal ${exit.signal})`)),
        () => undefined,
      );
      address = server.address;
      log.info({ address, ui: config.temporal.uiUrl, ms: server.readyMs }, 'temporal dev server ready');
    }
    const { connection, client } = await connectTemporal(address, config.temporal.namespace);
    stack.add('temporal client', () => connection.close());
    if (config.temporal.address) await ensureNamespaceAndSearchAttributes(connection, config.temporal.namespace);

    installTemporalRuntime(log, { forwardCoreLogs: options.forwardCoreLogs ?? true });
    const native = await NativeConnection.connect({ address });
    stack.add('temporal worker connection', () => native.close());
    const runWorker = (name: string, worker: Worker) => {
      const running = worker.run();
      running.catch((err: Error) => fail(new Error(`the ${name} worker stopped: ${err.message}`)));
      stack.add(`${name} worker`, async () => {
        if (worker.getState() === 'RUNNING') worker.shutdown();
        await running.catch(() => undefined);
      });
    };

    // 2. Database (api and conductor only: host agents hold no database credentials).
    let db: Database | undefined;
    if (runs.api || runs.conductor) {
      db = await openDatabase(config.database, log);
      const opened = db;
      stack.add('database', () => opened.close());
      await migrateLatest(opened);
    }

    // 3. Conductor worker.
    if (runs.conductor && db) {
      runWorker('conductor', await createConductorWorker({ connection: native, namespace: config.temporal.namespace, db: db, log }));
    }

    // 4. Host agent.
    let agentReady: Promise<void> = Promise.resolve();
    if (runs.agent) {
      const hypervisor = await openHypervisor(config.host.libvirtUri);
      stack.add('hypervisor', () => hypervisor.close());
      const agent = await createHostAgent({
        connection: native,
        client,
        namespace: config.temporal.namespace,
        hypervisor,
        host: config.host,
        log,
      });
      runWorker('agent', agent.worker);
      stack.add('agent heartbeats', () => agent.stopHeartbeats());
      agentReady = agent.heartbeat();
    }

    // 5. API.
    let apiUrl: string | undefined;
    let localApiUrl: string | undefined;
    let generatedAdminPassword: string | undefined;
    if (runs.api && db) {
      const identity = createIdentityService({ db: db, tokenTtlSeconds: config.identity.tokenTtlSeconds });
      generatedAdminPassword = (await identity.bootstrapAdmin(config.identity.adminPassword)).generatedPassword;
      const app = createApp({ config, db, temporal: client, identity, log, validateResponses: options.validateResponses ?? false });
      const server: Server = await listen(app, config.api.host, config.api.port);
      stack.add('api', () => close(server));
      apiUrl = config.api.publicUrl;
      const bound = server.address();
      const port = typeof bound === 'object' && bound ? bound.port : config.api.port;
      localApiUrl = `http://${config.api.host === '0.0.0.0' || config.api.host === '::' ? '127.0.0.1' : config.api.host}:${port}`;
    }

    await agentReady;
    if (role === 'up' && localApiUrl) await waitForReady(localApiUrl, 30_000);
    return {
      ...(apiUrl ? { apiUrl } : {}),
      ...(generatedAdminPassword ? { generatedAdminPassword } : {}),
      readyMs: Date.now() - started,
      stop: () => stack.stopAll(),
      failed,
    };
  } catch (err) {
    await stack.stopAll();
    throw err;
  }
}

/** Polls /readyz until it is 200 (the first heartbeat travels agent → Temporal → conductor → database). */
async function waitForReady(apiUrl: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  while (Date.now() < deadline) {
    const res = await fetch(`${apiUrl}/readyz`).catch((err: Error) => ({ ok: false, text: async () => err.message }));
    if (res.ok) return;
    last = await res.text();
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`the cloud did not become ready within ${timeoutMs / 1000} s: ${last}`);
}
