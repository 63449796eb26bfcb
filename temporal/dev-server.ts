/**
 * The embedded Temporal dev server (`temporal server start-dev`) as a child process.
 *
 * - The binary is spawned directly (never through a shell that forks it: the grandchild would keep
 *   the pipes open and teardown would hang).
 * - It binds 127.0.0.1 only, registers the Stratus namespace and search attributes, never calls home
 *   (no UI news fetch, no server version check), and logs JSON at warn into our pino logger.
 * - Ready means: the namespace is described successfully and every Stratus search attribute exists.
 * - If this process dies, even by SIGKILL, the server gets SIGTERM from the kernel (setpriv --pdeathsig);
 *   a pid file (optional) also lets the next start kill a server that a crashed run left behind.
 *
 * Measured on the 2-core dev machine: ready 0.14-0.29 s after spawn (0.25-0.6 s with both cores busy);
 * SIGTERM → exit 1.3-1.9 s.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import readline from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import { Connection } from '@temporalio/client';
import type { Config } from '../core/config';
import { MissingDependency } from '../core/errors';
import { assertPortFree, freePort } from '../core/ports';
import type { Logger } from '../core/log';
import { resolveTemporalCli } from './binary';
import { SEARCH_ATTRIBUTE_FLAGS } from './constants';

export interface DevServerOptions {
  /** The Temporal CLI binary (see resolveTemporalCli). */
  cliPath: string;
  /** Frontend gRPC port (on 127.0.0.1). */
  port: number;
  /** Web UI port (on 127.0.0.1); ignored when headless. */
  uiPort: number;
  /** SQLite file that keeps workflows across restarts; undefined = in-memory. */
  dbFile: string | undefined;
  /** Namespace to create at launch (with the Stratus search attributes). */
  namespace: string;
  log: Logger;
  /** No Web UI. */
  headless?: boolean;
  /**
   * Pid file. When given, a server recorded there by a previous run whose owner process is gone is
   * killed before starting (only if that pid's command line is a `temporal ... start-dev`).
   */
  pidFile?: string;
  /** How long to wait for readiness; default 30 s. */
  readyTimeoutMs?: number;
  /** The server's own log level; default warn. */
  logLevel?: 'debug' | 'info' | 'warn' | 'error';
  /** Variable names quoted in "port in use" errors; default TEMPORAL_PORT / TEMPORAL_UI_PORT. */
  portVariable?: string;
  uiPortVariable?: string;
}

export interface DevServer {
  /** host:port for Connection.connect. */
  address: string;
  /** Web UI base URL, undefined when headless. */
  uiUrl: string | undefined;
  pid: number;
  namespace: string;
  /** Spawn → ready, in milliseconds. */
  readyMs: number;
  /** Resolves when the process exits, for whatever reason (stop() or a crash). */
  exited: Promise<ExitInfo>;
  /** SIGTERM, then SIGKILL after 5 s; resolves once the process has exited. Idempotent. */
  stop(): Promise<void>;
}

export interface ExitInfo {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** Where `stratus up` keeps the dev server's state under the data directory. */
export function devServerPaths(dataDir: string): { dir: string; dbFile: string; pidFile: string } {
  const dir = path.join(dataDir, 'temporal');
  return { dir, dbFile: path.join(dir, 'temporal.db'), pidFile: path.join(dir, 'temporal.pid') };
}

/** The embedded dev server as `stratus up` runs it: binary resolved from config, state under the data dir. */
export async function startEmbeddedDevServer(config: Config, log: Logger): Promise<DevServer> {
  const { dbFile, pidFile } = devServerPaths(config.dataDir);
  return startDevServer({
    cliPath: resolveTemporalCli(config),
    port: config.temporal.port,
    uiPort: config.temporal.uiPort,
    dbFile,
    pidFile,
    namespace: config.temporal.namespace,
    log,
  });
}

/** A throwaway dev server for benchmarks: in memory, headless, on free ports, CLI resolved as usual. */
export async function startScratchDevServer(config: { temporal: Pick<Config['temporal'], 'cliPath'> }, log: Logger, namespace = 'stratus'): Promise<DevServer> {
  return startDevServer({
    cliPath: resolveTemporalCli(config),
    port: await freePort(),
    uiPort: await freePort(),
    dbFile: undefined,
    namespace,
    log,
    headless: true,
  });
}

const STOP_GRACE_MS = 5_000;
/** The dev server listens on loopback only. */
export const DEV_SERVER_HOST = '127.0.0.1';
const STDERR_LINES_KEPT = 8;

export async function startDevServer(options: DevServerOptions): Promise<DevServer> {
  const log = options.log.child({ component: 'temporal' });
  const headless = options.headless ?? false;
  const timeoutMs = options.readyTimeoutMs ?? 30_000;
  const host = DEV_SERVER_HOST;

  if (options.pidFile) {
    const stale = await reapStaleDevServer(options.pidFile, log);
    if (stale.state === 'owner-alive') {
      throw new MissingDependency(
        `a Temporal dev server (pid ${stale.pid}) owned by running process ${stale.ownerPid} already uses ${options.pidFile}: stop that process, or delete the pid file if it is wrong`,
      );
    }
  }

  await assertPortFree(host, options.port, options.portVariable ?? 'TEMPORAL_PORT');
  if (!headless) await assertPortFree(host, options.uiPort, options.uiPortVariable ?? 'TEMPORAL_UI_PORT');

  if (options.dbFile) fs.mkdirSync(path.dirname(path.resolve(options.dbFile)), { recursive: true });

  const args = [
    'server', 'start-dev',
    '--ip', host,
    '--port', String(options.port),
    '--namespace', options.namespace,
    ...SEARCH_ATTRIBUTE_FLAGS.flatMap((flag) => ['--search-attribute', flag]),
    '--log-format', 'json',
    '--log-level', options.logLevel ?? 'warn',
    // Offline machines: never call home. Updates on, as the SDK's own test server does.
    '--dynamic-config-value', 'frontend.enableServerVersionCheck=false',
    '--dynamic-config-value', 'frontend.enableUpdateWorkflowExecution=true',
    '--dynamic-config-value', 'frontend.enableUpdateWorkflowExecutionAsyncAccepted=true',
    // The dev server has one history shard, so its transfer/timer queue readers are capped at their
    // default 20 polls/s: every task dispatch then waits up to 50 ms once traffic is steady
    // (bench/temporal-dispatch.ts). A cluster spreads this over its shards; one shard needs more.
    '--dynamic-config-value', 'history.transferProcessorMaxPollRPS=1000',
    '--dynamic-config-value', 'history.timerProcessorMaxPollRPS=1000',
    // One node: task-queue partitions only add poll/task forwarding between them.
    '--dynamic-config-value', 'matching.numTaskqueueReadPartitions=1',
    '--dynamic-config-value', 'matching.numTaskqueueWritePartitions=1',
    // A persistent store: SQLite in WAL mode with synchronous=NORMAL commits without an fsync per
    // transaction (the default journal fsyncs every task the server writes); a crash of any process
    // loses nothing, a power cut at most the last commits, never the file.
    ...(options.dbFile
      ? ['--db-filename', path.resolve(options.dbFile), '--sqlite-pragma', 'journal_mode=wal', '--sqlite-pragma', 'synchronous=normal']
      : []),
    ...(headless ? ['--headless'] : ['--ui-port', String(options.uiPort), '--ui-disable-news-fetch']),
  ];

  const started = Date.now();
  // With setpriv (util-linux), the kernel sends the server SIGTERM if this process dies, even by
  // SIGKILL. setpriv execs (no fork), so the child's pid is the server's own.
  const [command, argv] = parentDeathWrapper()
    ? ['setpriv', ['--pdeathsig', 'SIGTERM', '--', options.cliPath, ...args]]
    : [options.cliPath, args];
  const child = spawn(command, argv, { stdio: ['ignore', 'pipe', 'pipe'] });
  let stopping = false;
  let ready = false;
  const stderrTail: string[] = [];
  // 'close' comes after 'exit', once the pipes are drained: the last stderr lines are in by then.
  const closed = new Promise<void>((resolve) => child.once('close', () => resolve()));

  const exited = new Promise<ExitInfo>((resolve) => {
    child.once('exit', (code, signal) => resolve({ code, signal }));
    // spawn failures (ENOENT, EACCES) emit 'error' and never 'exit'
    child.once('error', (err) => {
      stderrTail.push(err.message);
      resolve({ code: null, signal: null });
    });
  });

  // A normal exit of this Node process (including an uncaught exception) must not leave it behind.
  const killOnExit = (): void => {
    child.kill('SIGKILL');
  };
  process.once('exit', killOnExit);
  void exited.then(({ code, signal }) => {
    process.removeListener('exit', killOnExit);
    if (options.pidFile) removePidFile(options.pidFile, child.pid);
    // Before ready, the rejection of startDevServer says it; after, nobody else would.
    if (ready && !stopping) log.error({ code, signal }, 'temporal dev server exited unexpectedly');
  });

  pipeOutput(child, log, () => stopping, stderrTail);

  if (child.pid === undefined) {
    stopping = true; // the error below says it all
    await exited;
    throw new MissingDependency(
      `cannot run the Temporal CLI ${options.cliPath}: ${stderrTail.join(' | ')}`,
    );
  }
  const pid = child.pid;
  if (options.pidFile) writePidFile(options.pidFile, { pid, ownerPid: process.pid, cliPath: options.cliPath });

  const address = `${host}:${options.port}`;
  const stop = once(async () => {
    stopping = true;
    await terminate(child, exited);
  });

  const cancel = { cancelled: false };
  const earlyExit = exited.then(async ({ code, signal }) => {
    if (ready) return;
    await Promise.race([closed, sleep(500, undefined, { ref: false })]);
    const how = signal ? `signal ${signal}` : `code ${code}`;
    const tail = stderrTail.slice(-5).join(' | ') || 'no output';
    throw new MissingDependency(`temporal dev server exited (${how}) before it was ready: ${tail}`);
  });
  try {
    await Promise.race([
      waitUntilReady(address, options.namespace, started + timeoutMs, cancel),
      earlyExit,
    ]);
    ready = true;
  } catch (err) {
    cancel.cancelled = true;
    stopping = true;
    await terminate(child, exited);
    if (err instanceof MissingDependency) throw err;
    const tail = stderrTail.slice(-5).join(' | ') || 'no output';
    throw new MissingDependency(
      `temporal dev server on ${address} was not ready within ${Math.round(timeoutMs / 1000)} s (${(err as Error).message}); its last output: ${tail}`,
    );
  }

  const readyMs = Date.now() - started;
  const uiUrl = headless ? undefined : `http://${host}:${options.uiPort}`;
  log.info(
    { address, uiUrl, pid, namespace: options.namespace, dbFile: options.dbFile ?? 'in-memory', readyMs },
    'temporal dev server ready',
  );
  return { address, uiUrl, pid, namespace: options.namespace, readyMs, exited, stop };
}

let setprivWorks: boolean | undefined;
/** True when `setpriv --pdeathsig` is available (util-linux >= 2.33, Linux). Probed once. */
function parentDeathWrapper(): boolean {
  if (setprivWorks === undefined) {
    const probe = spawnSync('setpriv', ['--pdeathsig', 'SIGTERM', '--', 'true'], { stdio: 'ignore', timeout: 5000 });
    setprivWorks = process.platform === 'linux' && probe.status === 0;
  }
  return setprivWorks;
}

/** Throws a one-line MissingDependency when `host:port` cannot be bound. */

/** Polls until the frontend answers, the namespace describes and every Stratus search attribute exists. */
async function waitUntilReady(
  address: string,
  namespace: string,
  deadline: number,
  cancel: { cancelled: boolean },
): Promise<void> {
  const [host, portText] = address.split(':') as [string, string];
  const port = Number(portText);
  const wanted = SEARCH_ATTRIBUTE_FLAGS.map((flag) => flag.split('=')[0] ?? flag);
  let lastProblem = 'port never opened';

  // A plain TCP probe first: a gRPC channel that meets a closed port backs off for ~1 s.
  while (!(await tcpAnswers(host, port))) {
    if (cancel.cancelled) return;
    if (Date.now() > deadline) throw new Error(lastProblem);
    await sleep(50);
  }

  while (!cancel.cancelled) {
    if (Date.now() > deadline) throw new Error(lastProblem);
    const connection = Connection.lazy({ address, connectTimeout: Math.max(1000, deadline - Date.now()) });
    try {
      await connection.ensureConnected();
      while (!cancel.cancelled) {
        try {
          await connection.workflowService.describeNamespace({ namespace });
          const { customAttributes } = await connection.operatorService.listSearchAttributes({ namespace });
          const missing = wanted.filter((name) => !(customAttributes && name in customAttributes));
          if (missing.length === 0) return;
          lastProblem = `search attributes not registered yet: ${missing.join(', ')}`;
        } catch (err) {
          lastProblem = `namespace ${namespace}: ${(err as Error).message}`;
        }
        if (Date.now() > deadline) throw new Error(lastProblem);
        await sleep(100);
      }
    } catch (err) {
      lastProblem = (err as Error).message;
      await sleep(100);
    } finally {
      await connection.close();
    }
  }
}

function tcpAnswers(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host, port });
    socket.setTimeout(1000);
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('timeout', () => {
      socket.destroy();
      resolve(false);
    });
    socket.once('error', () => resolve(false));
  });
}

/** SIGTERM, wait up to STOP_GRACE_MS, then SIGKILL; resolves when the process has exited. */
async function terminate(child: ChildProcess, exited: Promise<ExitInfo>): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) {
    await exited;
    return;
  }
  child.kill('SIGTERM');
  const timer = sleep(STOP_GRACE_MS, 'timeout' as const, { ref: false });
  if ((await Promise.race([exited, timer])) === 'timeout') {
    child.kill('SIGKILL');
    await exited;
  }
}

// ---------------------------------------------------------------------------------------------
// Output: the server logs JSON lines on stderr (--log-format json) and a banner on stdout.

const LEVELS: Record<string, 'debug' | 'info' | 'warn' | 'error' | 'fatal'> = {
  DEBUG: 'debug',
  INFO: 'info',
  WARN: 'warn',
  ERROR: 'error',
  DPANIC: 'error',
  PANIC: 'fatal',
  FATAL: 'fatal',
};

/** Harmless messages the dev server logs at warn on every start. */
const BENIGN = [/Cluster Id in Cluster Metadata config is not a valid uuid/];

function pipeOutput(child: ChildProcess, log: Logger, stopping: () => boolean, stderrTail: string[]): void {
  if (child.stdout) {
    readline.createInterface({ input: child.stdout }).on('line', (line) => {
      if (line.trim() !== '') log.debug({ stream: 'stdout' }, line);
    });
  }
  if (child.stderr) {
    readline.createInterface({ input: child.stderr }).on('line', (line) => {
      if (line.trim() === '') return;
      const entry = parseLogLine(line);
      stderrTail.push(entry.msg);
      if (stderrTail.length > STDERR_LINES_KEPT) stderrTail.shift();
      // While shutting down, the server logs a burst of cancelled polls at error: not news.
      const level = stopping() || BENIGN.some((re) => re.test(entry.msg)) ? 'debug' : entry.level;
      log[level](entry.fields, entry.msg);
    });
  }
}

function parseLogLine(line: string): {
  level: 'debug' | 'info' | 'warn' | 'error' | 'fatal';
  msg: string;
  fields: Record<string, unknown>;
} {
  if (line.startsWith('{')) {
    try {
      const parsed = JSON.parse(line) as Record<string, unknown>;
      const { level, msg, time: _time, service, ...fields } = parsed;
      // `service` would clash with our own base binding (service: 'stratus')
      if (service !== undefined) fields.temporalService = service;
      return {
        level: LEVELS[String(level).toUpperCase()] ?? 'info',
        msg: typeof msg === 'string' ? msg : line,
        fields,
      };
    } catch {
      // not JSON after all: fall through
    }
  }
  // Plain lines are start-up failures such as "Error: can't set frontend port ...".
  return { level: 'error', msg: line, fields: {} };
}

// ---------------------------------------------------------------------------------------------
// Pid file: { pid, ownerPid, cliPath, startedAt }.

interface PidRecord {
  pid: number;
  ownerPid: number;
  cliPath: string;
  startedAt?: string;
}

export type StaleState =
  | { state: 'none' }
  | { state: 'killed'; pid: number }
  | { state: 'owner-alive'; pid: number; ownerPid: number };

/**
 * Looks at a pid file left by a previous start. If its server is still running, is a
 * `temporal ... start-dev` and its owner process is gone, kills it (SIGTERM, then SIGKILL) and
 * removes the file. A server whose owner still runs is left alone ('owner-alive').
 */
export async function reapStaleDevServer(pidFile: string, log: Logger): Promise<StaleState> {
  let record: PidRecord;
  try {
    record = JSON.parse(fs.readFileSync(pidFile, 'utf8')) as PidRecord;
  } catch {
    removePidFile(pidFile);
    return { state: 'none' };
  }
  if (!Number.isInteger(record.pid) || !isTemporalDevServer(record.pid)) {
    removePidFile(pidFile);
    return { state: 'none' };
  }
  if (Number.isInteger(record.ownerPid) && isAlive(record.ownerPid)) {
    return { state: 'owner-alive', pid: record.pid, ownerPid: record.ownerPid };
  }
  log.warn({ stalePid: record.pid, pidFile }, 'killing a stale temporal dev server left by a previous run');
  signal(record.pid, 'SIGTERM');
  const deadline = Date.now() + STOP_GRACE_MS;
  while (isAlive(record.pid) && Date.now() < deadline) await sleep(50);
  if (isAlive(record.pid)) {
    signal(record.pid, 'SIGKILL');
    const killDeadline = Date.now() + 2_000;
    while (isAlive(record.pid) && Date.now() < killDeadline) await sleep(20);
  }
  removePidFile(pidFile);
  return { state: 'killed', pid: record.pid };
}

function writePidFile(pidFile: string, record: PidRecord): void {
  fs.mkdirSync(path.dirname(pidFile), { recursive: true });
  fs.writeFileSync(pidFile, JSON.stringify({ ...record, startedAt: new Date().toISOString() }) + '\n');
}

/** Removes the pid file, but only if it is still ours when `pid` is given. */
function removePidFile(pidFile: string, pid?: number): void {
  try {
    if (pid !== undefined) {
      const record = JSON.parse(fs.readFileSync(pidFile, 'utf8')) as Partial<PidRecord>;
      if (record.pid !== pid) return;
    }
    fs.rmSync(pidFile, { force: true });
  } catch {
    // already gone or unreadable: nothing to do
  }
}

/** True when `pid` runs a `temporal` binary with `start-dev` in its arguments (Linux /proc). */
function isTemporalDevServer(pid: number): boolean {
  try {
    const argv = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
    return path.basename(argv[0] ?? '') === 'temporal' && argv.includes('start-dev') && isAlive(pid);
  } catch {
    return false;
  }
}

/** Alive and not a zombie. */
function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return true; // no /proc: trust kill(0)
  }
}

function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    // gone already
  }
}

function once(fn: () => Promise<void>): () => Promise<void> {
  let running: Promise<void> | undefined;
  return () => (running ??= fn());
}
