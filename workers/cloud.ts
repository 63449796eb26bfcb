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
import type { FaultPlan } from '../activities/fault-injection';
import type { Config } from '../core/config';
import { ConfigError } from '../core/config';
import { MissingDependency } from '../core/errors';
import type { Logger } from '../core/log';
import type { Database } from '../db/connect';
import { ImageUrlSigner, resolveSecretKey } from '../images/signed-url';
import { connectTemporal, ensureNamespaceAndSearchAttributes } from '../temporal/connection';
import { assertPortFree } from '../core/ports';
import { resolveTemporalCli } from '../temporal/binary';
import { DEV_SERVER_HOST, devServerPaths, startEmbeddedDevServer } from '../temporal/dev-server';
import { close, listen } from './http';
import { serveMetrics } from './metrics';
import { installTemporalRuntime } from './temporal-runtime';

export type Role = 'up' | 'api' | 'conductor' | 'agent';

/*
 * Each part's code is loaded only by a process that runs it (dynamic imports below): a lone host
 * agent never loads the API, the conductor, the workflow bundler or a database driver, which keeps
 * its memory to what it uses (README, "Memory").
 */

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
  /** The database this process opened (embedding and tests: PGlite admits one opener per directory). */
  db?: Database;
}

/** Components stop in reverse start order, each within a bound; bin/serve.ts exits after 9 s whatever happens. */
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
            timer = setTimeout(() => reject(new Error('did not stop within 6 s')), 6000);
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
  /** Tests only: failures injected on purpose (create-flow steps on the conductor, hypervisor calls on the agent). */
  faults?: FaultPlan;
  /** `up` without its host agent (tests that bring their own hosts: test/support/hosts.ts). Default true. */
  agent?: boolean;
  /** A workflow bundle built beforehand (tests build one per run); by default the conductor bundles workflows/ itself. */
  workflowBundle?: { code: string };
}

export async function startCloud(role: Role, config: Config, log: Logger, options: StartOptions = {}): Promise<RunningCloud> {
  const started = Date.now();
  const stack = new Stack(log);
  const failures: Array<(err: Error) => void> = [];
  const failed = new Promise<Error>((resolve) => failures.push(resolve));
  let stopping = false;
  // A part that exits while we stop it on purpose is not a failure.
  const fail = (err: Error) => {
    if (!stopping) failures.forEach((f) => f(err));
  };
  const runs = { api: role === 'up' || role === 'api', conductor: role === 'up' || role === 'conductor', agent: (role === 'up' && options.agent !== false) || role === 'agent' };
  if (role !== 'up') requireSharedServices(config, role, role !== 'agent');
  // api and conductor share the key that signs image download URLs (`up` keeps a generated one in the data dir).
  const signer = runs.api || runs.conductor ? new ImageUrlSigner(resolveSecretKey(config, role)) : undefined;

  try {
    fs.mkdirSync(config.dataDir, { recursive: true });
    // Fail in a second, not after everything else started (PGlite's initdb, the workflow bundle: 10-20 s
    // on a busy machine), when the API port is taken, the embedded Temporal server has no binary or
    // its ports are taken, or libvirt does not open: the same one-line errors, checked first.
    if (runs.api) await assertPortFree(config.api.host, config.api.port, 'STRATUS_API_PORT');
    if (!config.temporal.address) {
      resolveTemporalCli(config);
      // A dev server left by a killed `up` holds the ports: startDevServer reaps it (its pid file) first.
      if (!fs.existsSync(devServerPaths(config.dataDir).pidFile)) {
        await assertPortFree(DEV_SERVER_HOST, config.temporal.port, 'TEMPORAL_PORT');
        await assertPortFree(DEV_SERVER_HOST, config.temporal.uiPort, 'TEMPORAL_UI_PORT');
      }
    }
    const hypervisor = runs.agent
      ? await (await import('../libvirt')).openHypervisor(config.host.libvirtUri).catch((err: Error) => {
          if (err instanceof MissingDependency) throw err;
          throw new MissingDependency(`libvirt: ${err.message}: check STRATUS_LIBVIRT_URI (default test:///default)`);
        })
      : undefined;
    if (hypervisor) stack.add('hypervisor', () => hypervisor.close());

    // 1. In parallel: Temporal (the embedded dev server, or the cluster at TEMPORAL_ADDRESS), the
    //    database (api and conductor only: host agents hold no database credentials), and the
    //    workflow bundle (conductor only). PGlite's first open (~3-4 s of WASM initdb) dominates.
    const startTemporal = async (): Promise<string> => {
      if (config.temporal.address) return config.temporal.address;
      const server = await startEmbeddedDevServer(config, log);
      stack.add('temporal dev server', () => server.stop());
      server.exited.then(
        (exit) => fail(new Error(`the Temporal dev server exited (code ${exit.code}, signal ${exit.signal})`)),
        () => undefined,
      );
      return server.address;
    };
    const startDatabase = async (): Promise<Database | undefined> => {
      if (!runs.api && !runs.conductor) return undefined;
      const [{ openDatabase }, { migrateLatest }] = await Promise.all([import('../db/connect'), import('../db/migrate')]);
      const opened = await openDatabase(config.database, log);
      stack.add('database', () => opened.close());
      await migrateLatest(opened);
      return opened;
    };
    const [address, db, workflowBundle] = await allOrFirstError([
      startTemporal(),
      startDatabase(),
      runs.conductor
        ? options.workflowBundle
          ? Promise.resolve(options.workflowBundle)
          : import('./conductor').then((c) => c.bundleWorkflows(log))
        : Promise.resolve(undefined),
    ] as const);

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

    // 2. Conductor worker.
    if (runs.conductor && db && workflowBundle) {
      const { createConductorWorker, startReconciler } = await import('./conductor');
      const images = signer ? { signer, apiBaseUrl: config.api.publicUrl, urlTtlSeconds: config.images.urlTtlSeconds } : undefined;
      runWorker(
        'conductor',
        await createConductorWorker({
          connection: native,
          namespace: config.temporal.namespace,
          taskQueue: config.temporal.conductorTaskQueue,
          db,
          log,
          workflowBundle,
          workflowCacheSize: config.temporal.workflowCacheSize,
          temporal: client,
          heartbeatSeconds: config.host.heartbeatSeconds,
          placement: config.scheduler,
          quotaDefaults: config.quotas,
          meterIntervalSeconds: config.metering.intervalSeconds,
          images: images!,
          ...(options.faults ? { faults: options.faults } : {}),
        }),
      );
      await startReconciler({ client, taskQueue: config.temporal.conductorTaskQueue }, config.reconcile);
    }

    // 3. Host agent.
    let agentReady: Promise<void> = Promise.resolve();
    if (hypervisor) {
      const { createHostAgent } = await import('./agent');
      const agent = await createHostAgent({
        connection: native,
        client,
        namespace: config.temporal.namespace,
        conductorTaskQueue: config.temporal.conductorTaskQueue,
        hypervisor,
        host: config.host,
        log,
        maxConcurrentActivities: config.agent.maxConcurrentActivities,
        ...(options.faults ? { faults: options.faults } : {}),
      });
      runWorker('agent', agent.worker);
      stack.add('agent heartbeats', () => agent.stopHeartbeats());
      agentReady = agent.heartbeat();
    }

    // Metrics on a port of their own (any role; `up` and `api` also serve them on the API's /metrics).
    if (db && runs.conductor) (await import('../services/hosts')).collectHostGauges(db);
    if (config.metricsPort !== undefined) {
      const metricsServer = await serveMetrics(config.api.host, config.metricsPort);
      stack.add('metrics endpoint', () => close(metricsServer));
    }

    // 4. API.
    let apiUrl: string | undefined;
    let localApiUrl: string | undefined;
    let generatedAdminPassword: string | undefined;
    if (runs.api && db && signer) {
      const [{ createApp }, { createIdentityService }, { FilesystemImageStore }] = await Promise.all([
        import('../api/app'),
        import('../services/identity'),
        import('../images/store'),
      ]);
      const identity = createIdentityService({ db: db, tokenTtlSeconds: config.identity.tokenTtlSeconds });
      generatedAdminPassword = (await identity.bootstrapAdmin(config.identity.adminPassword)).generatedPassword;
      const images = { store: new FilesystemImageStore(config.images.storeDir), signer };
      const changes = await (await import('../db/change-feed')).openChangeFeed(db, log);
      stack.add('change feed', () => changes.close());
      const app = createApp({ config, db, temporal: client, identity, log, images, validateResponses: options.validateResponses ?? false, changes });
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
      ...(db ? { db } : {}),
      stop: () => {
        stopping = true;
        return stack.stopAll();
      },
      failed,
    };
  } catch (err) {
    stopping = true;
    await stack.stopAll();
    throw err;
  }
}

/**
 * Awaits every promise even when one fails (so each part that did start is on the stack before it
 * is unwound), then throws the first failure.
 */
async function allOrFirstError<T extends readonly unknown[]>(promises: { [K in keyof T]: Promise<T[K]> }): Promise<T> {
  const settled = await Promise.allSettled(promises);
  const failed = settled.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) throw failed.reason;
  return settled.map((r) => (r as PromiseFulfilledResult<unknown>).value) as unknown as T;
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
