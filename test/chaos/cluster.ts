/**
 * A Stratus cloud as separate processes, for the chaos suite: each part can be SIGKILLed and
 * restarted on its own.
 *
 *   temporal     an embedded Temporal dev server on its own SQLite file (restarted on that file)
 *   postgres     the machine's PostgreSQL (127.0.0.1:5432), a fresh database, reached through a TCP
 *                proxy this process owns: "PostgreSQL down" closes the proxy and cuts every
 *                connection (exactly what a server restart does to clients) without touching the
 *                cluster that other tests share
 *   api, conductor, agents h1/h2
 *                `node --import tsx bin/stratus.ts <role>`, each its own process group
 *   up           (the whole-cloud scenario) `bin/stratus.ts up` on a data dir with PGlite
 *
 * Hypervisor: every agent uses libvirtd's test driver (`test+unix:///default`): its state lives in
 * libvirtd, so it outlives an agent SIGKILL as a real host's domains do, and this process can take a
 * census of it. Each agent has its own storage pool (`<run>-<host>`), so disks are attributable to a
 * host; domain names carry the server id and share one namespace (their host comes from the database).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import type { Logger } from '../../core/log';
import { resolveTemporalCli } from '../../temporal/binary';
import { startDevServer, type DevServer } from '../../temporal/dev-server';
import { loadConfig } from '../../core/config';
import { freePort } from '../support/ports';

const ROOT = path.resolve(__dirname, '..', '..');
export const LIBVIRT_URI = process.env.STRATUS_CHAOS_LIBVIRT_URI ?? 'test+unix:///default';
/** Agents heartbeat every 5 s (a host is down after 3 missed): a conductor restart (~10 s) must not look like dead hosts. */
export const HEARTBEAT_SECONDS = '5';
/** No quota limits: 30 creates per scenario, and a failing scenario's stuck servers keep theirs. */
export const UNLIMITED_QUOTAS: Record<string, string> = Object.fromEntries(
  ['SERVERS', 'VCPUS', 'RAM_MB', 'VOLUMES', 'VOLUME_GB', 'PORTS'].map((r) => [`STRATUS_QUOTA_${r}`, '-1']),
);
const PG_ADMIN_URL = process.env.STRATUS_TEST_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';

/** A TCP proxy in front of PostgreSQL that can go down (refuse + cut every connection) and come back. */
export class TcpProxy {
  private server: net.Server | undefined;
  private readonly sockets = new Set<net.Socket>();
  constructor(
    readonly port: number,
    private readonly target: { host: string; port: number },
  ) {}

  async up(): Promise<void> {
    if (this.server) return;
    const server = net.createServer((client) => {
      const upstream = net.connect(this.target.port, this.target.host);
      for (const s of [client, upstream]) {
        this.sockets.add(s);
        s.on('close', () => this.sockets.delete(s));
        s.on('error', () => undefined);
      }
      client.pipe(upstream).pipe(client);
      client.on('close', () => upstream.destroy());
      upstream.on('close', () => client.destroy());
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.port, '127.0.0.1', () => resolve());
    });
    this.server = server;
  }

  /** Stops listening and cuts every open connection. */
  async down(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    for (const s of this.sockets) s.destroy();
    this.sockets.clear();
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}

export interface RoleProcess {
  name: string;
  child: ChildProcess;
  exited: Promise<void>;
}

export type RoleName = 'api' | 'conductor' | 'h1' | 'h2';

export class ChaosCluster {
  readonly runId = `chaos${randomBytes(3).toString('hex')}`;
  /** Every role names it (STRATUS_CONDUCTOR_TASK_QUEUE): the setting, through separate processes. */
  readonly conductorTaskQueue = `stratus-conductor-${this.runId}`;
  readonly dir: string;
  readonly secretKey = randomBytes(32).toString('hex');
  readonly adminPassword = 'chaos-admin-pw';
  temporal: DevServer | undefined;
  temporalPort = 0;
  apiPort = 0;
  pgProxy: TcpProxy | undefined;
  databaseUrl = '';
  /** The same database without the proxy (the census reads through it while the proxy is down). */
  directDatabaseUrl = '';
  private databaseName = '';
  readonly roles = new Map<RoleName, RoleProcess>();

  constructor(
    private readonly log: Logger,
    baseDir: string,
    /** More variables for every role (e.g. a shorter STRATUS_CONSOLE_IDLE_SECONDS). */
    private readonly extraEnv: NodeJS.ProcessEnv = {},
  ) {
    this.dir = path.join(baseDir, this.runId);
    fs.mkdirSync(this.dir, { recursive: true });
  }

  get apiUrl(): string {
    return `http://127.0.0.1:${this.apiPort}`;
  }

  get temporalAddress(): string {
    return `127.0.0.1:${this.temporalPort}`;
  }

  hostName(role: 'h1' | 'h2'): string {
    return `${this.runId}-${role}`;
  }

  poolName(role: 'h1' | 'h2'): string {
    return `${this.runId}-${role}`;
  }

  async start(agents: Array<'h1' | 'h2'> = ['h1', 'h2']): Promise<void> {
    [this.temporalPort, this.apiPort] = [await freePort(), await freePort()];
    await this.startDatabaseOnly();
    await this.startTemporal();
    // The API first: it migrates the database. Then the conductor and the agents together.
    await this.startRole('api');
    await Promise.all([this.startRole('conductor'), ...agents.map((a) => this.startRole(a))]);
  }

  /** A fresh database on the machine's PostgreSQL, behind the proxy (databaseUrl). */
  async startDatabaseOnly(): Promise<void> {
    const pgPort = await freePort();
    this.databaseName = `stratus_chaos_${randomBytes(5).toString('hex')}`;
    await adminQuery(`create database "${this.databaseName}"`);
    const target = new URL(PG_ADMIN_URL);
    this.pgProxy = new TcpProxy(pgPort, { host: target.hostname, port: Number(target.port || 5432) });
    await this.pgProxy.up();
    const url = new URL(PG_ADMIN_URL);
    url.port = String(pgPort);
    url.pathname = `/${this.databaseName}`;
    this.databaseUrl = url.toString();
    url.port = target.port || '5432';
    this.directDatabaseUrl = url.toString();
  }

  async startTemporal(): Promise<void> {
    this.temporal = await startDevServer({
      cliPath: resolveTemporalCli(loadConfig()),
      port: this.temporalPort,
      uiPort: 0,
      headless: true,
      dbFile: path.join(this.dir, 'temporal.db'),
      namespace: 'stratus',
      log: this.log,
    });
  }

  /** SIGKILL of the Temporal server; resolves once it is gone. */
  async killTemporal(): Promise<void> {
    const t = this.temporal;
    if (!t) return;
    process.kill(t.pid, 'SIGKILL');
    await t.exited;
    this.temporal = undefined;
  }

  env(role: RoleName): NodeJS.ProcessEnv {
    const base: NodeJS.ProcessEnv = {
      PATH: process.env.PATH,
      TEMPORAL_CLI_PATH: process.env.TEMPORAL_CLI_PATH,
      HOME: process.env.HOME,
      TMPDIR: process.env.TMPDIR,
      LOG_LEVEL: process.env.STRATUS_CHAOS_LOG_LEVEL ?? 'info',
      TEMPORAL_ADDRESS: this.temporalAddress,
      TEMPORAL_NAMESPACE: 'stratus',
      STRATUS_CONDUCTOR_TASK_QUEUE: this.conductorTaskQueue,
      STRATUS_HOST_HEARTBEAT_SECONDS: HEARTBEAT_SECONDS,
      STRATUS_DATA_DIR: path.join(this.dir, role),
      ...this.extraEnv,
    };
    if (role === 'api' || role === 'conductor') {
      return {
        ...base,
        DATABASE_URL: this.databaseUrl,
        STRATUS_SECRET_KEY: this.secretKey,
        STRATUS_ADMIN_PASSWORD: this.adminPassword,
        STRATUS_API_PORT: String(this.apiPort),
        STRATUS_PUBLIC_URL: this.apiUrl,
        STRATUS_IMAGE_DIR: path.join(this.dir, 'images'),
        ...UNLIMITED_QUOTAS,
      };
    }
    return {
      ...base,
      STRATUS_HOST_NAME: this.hostName(role),
      STRATUS_LIBVIRT_URI: LIBVIRT_URI,
      STRATUS_STORAGE_POOL: this.poolName(role),
      STRATUS_HOST_VCPUS: '64',
      STRATUS_HOST_RAM_MB: '65536',
      STRATUS_HOST_DISK_GB: '2000',
    };
  }

  /** Starts `role` and resolves when it logged "stratus ready" (fails after 90 s or on exit). */
  async startRole(role: RoleName): Promise<void> {
    const command = role === 'h1' || role === 'h2' ? 'agent' : role;
    this.roles.set(role, spawnStratus(command, this.env(role), path.join(this.dir, `${role}.log`), role));
    await waitReady(this.roles.get(role)!, path.join(this.dir, `${role}.log`), 90_000);
  }

  /** SIGKILL of one role's process; resolves once it exited. */
  async kill(role: RoleName): Promise<void> {
    const p = this.roles.get(role);
    if (!p) return;
    this.roles.delete(role);
    killGroup(p.child, 'SIGKILL');
    await p.exited;
  }

  /** SIGKILL of `role`, `downMs` of nothing, then the role started again. */
  async restart(role: RoleName, downMs = 0): Promise<void> {
    await this.kill(role);
    if (downMs > 0) await sleep(downMs);
    await this.startRole(role);
  }

  isRunning(role: RoleName): boolean {
    return this.roles.has(role);
  }

  async stop(): Promise<void> {
    await Promise.all(
      [...this.roles.values()].map(async (p) => {
        killGroup(p.child, 'SIGTERM');
        const timer = setTimeout(() => killGroup(p.child, 'SIGKILL'), 10_000);
        await p.exited;
        clearTimeout(timer);
      }),
    );
    this.roles.clear();
    await this.temporal?.stop();
    await this.pgProxy?.down();
    if (this.databaseName) await adminQuery(`drop database if exists "${this.databaseName}" with (force)`).catch(() => undefined);
  }
}

/** `node --import tsx bin/stratus.ts <command>` in its own process group, output appended to `logFile`. */
export function spawnStratus(command: string, env: NodeJS.ProcessEnv, logFile: string, name: string): RoleProcess {
  const out = fs.openSync(logFile, 'a');
  fs.writeSync(out, `\n==== ${new Date().toISOString()} start ${name} ====\n`);
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(ROOT, 'bin', 'stratus.ts'), command], {
    cwd: ROOT,
    env: Object.fromEntries(Object.entries(env).filter(([, v]) => v !== undefined)),
    stdio: ['ignore', out, out],
    detached: true,
  });
  fs.closeSync(out);
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  return { name, child, exited };
}

export function killGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
  try {
    process.kill(-child.pid, signal);
  } catch {
    /* already gone */
  }
}

/** Resolves when the log file (since this start) says "stratus ready". */
export async function waitReady(p: RoleProcess, logFile: string, timeoutMs: number): Promise<void> {
  const startSize = (() => {
    const text = fs.readFileSync(logFile, 'utf8');
    return text.lastIndexOf(`start ${p.name} ====`);
  })();
  let exited = false;
  void p.exited.then(() => (exited = true));
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const text = fs.readFileSync(logFile, 'utf8').slice(startSize);
    if (text.includes('stratus ready')) return;
    if (exited) throw new Error(`${p.name} exited while starting: ${text.slice(-2000)}`);
    await sleep(100);
  }
  throw new Error(`${p.name} did not become ready within ${timeoutMs / 1000} s (log: ${logFile})`);
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

async function adminQuery(sql: string): Promise<void> {
  const client = new pg.Client({ connectionString: PG_ADMIN_URL });
  await client.connect();
  try {
    await client.query(sql);
  } finally {
    await client.end();
  }
}
