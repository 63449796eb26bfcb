/**
 * Read load on the API with thousands of servers: a fixed rate of `GET /v1/servers?limit=100` and of
 * `GET /v1/servers/{id}` (200 req/s for each, from a pool of 20 connections), against a whole
 * `stratus up` (its own embedded Temporal, libvirt's test driver) on PostgreSQL and on PGlite.
 * Each is offered by two generators (bench/api-load-client.ts says how they differ): `fixed-rate`,
 * evenly spaced requests, which the goals are measured with, and autocannon, whose "rate" comes in
 * bursts of 20 concurrent requests at the start of each second (kept to compare with earlier figures).
 *
 *   npm run bench:api                                  # 10,000 servers, both engines, 20 s per run
 *   BENCH_ENGINES=pglite BENCH_SERVERS=2000 BENCH_SECONDS=10 BENCH_GENERATORS=fixed-rate BENCH_ROUTES=show npm run bench:api
 *   BENCH_API=separate npm run bench:api             # requests to a `stratus api` beside `up` (PostgreSQL)
 *   BENCH_SHOWS=4000 BENCH_ROUTES=show npm run bench:api  # every show rendered afresh (none sent as kept)
 *
 * `stratus up` runs as a user runs it: `bin/stratus up` in a child process (the compiled bundle, the
 * node flags bin/node-flags gives `up`, STRATUS_NODE_FLAGS to try others). It is started once to
 * bootstrap (admin, flavors), stopped, and the servers are written straight into its database
 * (test/support/seed-servers.ts: each ACTIVE with a port, an attached volume and a finished create
 * operation; 10,000 creates would take an hour and measure the create path, not reads); PGlite is
 * one process's, hence the stop. Then it is started again and measured. Lists walk the pages of all
 * of them (each request asks for a random page's marker); shows pick random servers.
 *
 * The load generator runs in a process of its own (bench/api-load-client.ts), and so does a probe of
 * what the machine itself delays an idle process (bench/stall-probe.ts). Each row prints the CPU time
 * of the `up` process per request answered (PGlite is inside it) and of PostgreSQL's backends.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fork } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { loadConfig } from '../core/config';
import { freePort } from '../core/ports';
import { openDatabase } from '../db/connect';
import { seedServers } from '../test/support/seed-servers';
import { BENCH_PASSWORD, benchUpEnv } from './cloud';
import { jsonCaller } from './http';
import { cpuSecondsOf, nodeFlagsOf, spawnStratus, waitFor, type StratusProcess } from './stratus-process';
import type { Generator, LoadFigures, LoadRun } from './api-load-client';
import { runBench } from './run';
import type { StallFigures } from './stall-probe';

const SERVERS = Number(process.env.BENCH_SERVERS ?? 10_000);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 20);
const RATE = Number(process.env.BENCH_RATE ?? 200);
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 20);
const ENGINES = (process.env.BENCH_ENGINES ?? 'postgres,pglite').split(',');
const GENERATORS = (process.env.BENCH_GENERATORS ?? 'fixed-rate,autocannon').split(',') as Generator[];
/**
 * Which rows to run: list, show, floor (`/healthz` of the same `up`), bare (a bare Node HTTP server:
 * what the machine and Node cost per request, once for all engines), and (not by default)
 * list-churn: lists while servers are written.
 */
const ROUTES = new Set((process.env.BENCH_ROUTES ?? 'list,show,floor,bare').split(','));
const CHURN_PER_SECOND = Number(process.env.BENCH_CHURN ?? 20);
/**
 * How many servers the show row asks for in turn (random ones, each once): the first request of
 * each is rendered from the database, later ones are sent as kept while nothing changed. The default
 * 1,000 makes the first 5 s of a 20 s run renders; BENCH_SHOWS=4000 (rate × seconds) makes every
 * request one, as when each poll finds its server changed (a cloud busy building).
 */
const SHOWS = Number(process.env.BENCH_SHOWS ?? 1000);
/**
 * BENCH_API=separate: the requests go to a `stratus api` process of its own (beside `up`, which keeps
 * Temporal, the conductor and the host agent), as a deployment beyond one machine runs it; its CPU is
 * the one counted. PostgreSQL only: PGlite is one process's.
 */
const SEPARATE_API = process.env.BENCH_API === 'separate';
const PG_URL = process.env.BENCH_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';

interface RunResult {
  name: string;
  p50: number;
  p99: number;
  max: number;
  served: number;
  errors: number;
  /** Why the first few failed (fixed-rate only). */
  reasons: string[];
  /** CPU time of the process serving the requests (`up`: the API, its workers, PGlite when embedded; or `api`) per request answered. */
  cpuMs: number;
  /** CPU time of the PostgreSQL backends serving this database per request (0 with PGlite, counted in cpuMs). */
  dbCpuMs: number;
  /** What the machine itself delayed an idle process meanwhile (bench/stall-probe.ts): the floor under every p99. */
  machine: StallFigures;
}

/** `count` of `items` in random order, each at most once (all of them, shuffled, if there are fewer). */
function pickRandom<T>(items: readonly T[], count: number): T[] {
  const pool = [...items];
  const n = Math.min(count, pool.length);
  for (let i = 0; i < n; i++) {
    const j = i + Math.floor(Math.random() * (pool.length - i));
    [pool[i], pool[j]] = [pool[j]!, pool[i]!];
  }
  return pool.slice(0, n);
}

/** One run of the load generator, in its own process (bench/api-load-client.ts); the server's CPU is measured meanwhile. */
async function load(name: string, generator: Generator, url: string, token: string, paths: string[], server: StratusProcess, dbCpuMs: () => Promise<number>, seconds = SECONDS): Promise<RunResult> {
  const client = fork(path.join(__dirname, 'api-load-client.ts'), { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const done = new Promise<LoadFigures>((resolve, reject) => {
    client.once('message', (figures: LoadFigures) => resolve(figures));
    client.once('exit', (code) => reject(new Error(`load generator exited with ${code}`)));
  });
  const probe = await startStallProbe();
  const cpu = cpuSecondsOf(server.child.pid!);
  const dbCpu = await dbCpuMs();
  const run: LoadRun = { generator, url, token, paths, connections: CONNECTIONS, rate: RATE, seconds };
  client.send(run);
  const figures = await done;
  const usedMs = (cpuSecondsOf(server.child.pid!) - cpu) * 1000;
  const machine = await probe();
  const dbUsed = (await dbCpuMs()) - dbCpu;
  return {
    name: `${name}, ${generator}`,
    p50: figures.p50,
    p99: figures.p99,
    max: figures.max,
    served: figures.ok / seconds,
    errors: figures.failed,
    reasons: figures.reasons ?? [],
    cpuMs: usedMs / Math.max(1, figures.ok + figures.failed),
    // A backend that ended meanwhile (the pool closes idle connections) takes its ticks with it.
    dbCpuMs: Math.max(0, dbUsed) / Math.max(1, figures.ok + figures.failed),
    machine,
  };
}

/** Starts bench/stall-probe.ts beside a run; the function returned stops it and gives its figures. */
async function startStallProbe(): Promise<() => Promise<StallFigures>> {
  const probe = fork(path.join(__dirname, 'stall-probe.ts'), { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  await new Promise((resolve) => probe.once('message', resolve));
  return () =>
    new Promise((resolve, reject) => {
      probe.once('message', (figures: StallFigures) => resolve(figures));
      probe.once('exit', (code) => reject(new Error(`stall probe exited with ${code}`)));
      probe.send('stop');
    });
}

/** The CPU time (ms) the PostgreSQL backends connected to `database` have used so far, from /proc (PostgreSQL on this machine). */
async function backendsCpuMs(database: string): Promise<number> {
  const c = new pg.Client({ connectionString: PG_URL });
  await c.connect();
  try {
    const { rows } = await c.query<{ pid: number }>('select pid from pg_stat_activity where datname = $1', [database]);
    let ticks = 0;
    for (const { pid } of rows) {
      try {
        // Fields after the command's closing parenthesis: utime and stime are the 12th and 13th.
        const fields = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
        ticks += Number(fields[11]) + Number(fields[12]);
      } catch {
        // a backend gone meanwhile, or PostgreSQL not on this machine
      }
    }
    return ticks * 10; // USER_HZ = 100 on Linux
  } finally {
    await c.end();
  }
}

async function withDatabase(engine: string): Promise<{ env: Record<string, string>; cpuMs: () => Promise<number>; drop: () => Promise<void> }> {
  if (engine === 'pglite') return { env: {}, cpuMs: async () => 0, drop: async () => undefined };
  const name = `stratus_bench_${randomBytes(4).toString('hex')}`;
  const admin = new pg.Client({ connectionString: PG_URL });
  await admin.connect();
  await admin.query(`create database "${name}"`);
  await admin.end();
  const url = new URL(PG_URL);
  url.pathname = `/${name}`;
  return {
    env: { DATABASE_URL: url.toString() },
    cpuMs: () => backendsCpuMs(name),
    async drop() {
      const c = new pg.Client({ connectionString: PG_URL });
      await c.connect();
      await c.query(`drop database if exists "${name}" with (force)`);
      await c.end();
    },
  };
}

/** Starts `stratus up` and waits for it to be ready; returns it with an admin token. */
async function startUp(env: NodeJS.ProcessEnv, api: string): Promise<{ up: StratusProcess; token: string; user: string; project: string }> {
  const up = spawnStratus('up', env);
  try {
    await waitFor('stratus up', async () => ((await fetch(`${api}/readyz`)).ok ? true : undefined), 120_000);
    const login = await jsonCaller(api)('POST', '/v1/auth/tokens', undefined, { username: 'admin', password: BENCH_PASSWORD, project: 'admin' });
    if (login.status !== 201) throw new Error(`login: ${login.status} ${JSON.stringify(login.body)}`);
    return { up, token: login.body.token as string, user: login.body.user.id as string, project: login.body.project.id as string };
  } catch (err) {
    await up.stop();
    throw err;
  }
}

async function bench(engine: string): Promise<RunResult[]> {
  const database = await withDatabase(engine);
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'stratus-bench-api-'));
  const env: NodeJS.ProcessEnv = {
    ...(await benchUpEnv(dataDir)),
    // Shared by `up` and a separate `api` (BENCH_API=separate): both sign image download URLs.
    STRATUS_SECRET_KEY: randomBytes(32).toString('hex'),
    ...database.env,
  };
  let api = `http://127.0.0.1:${env.STRATUS_API_PORT}`;
  let up: StratusProcess | undefined;
  let apiProcess: StratusProcess | undefined;
  try {
    // The first start bootstraps the admin and the flavors the seeded servers refer to.
    const first = await startUp(env, api);
    up = first.up;
    const flavor = ((await jsonCaller(api)('GET', '/v1/flavors', first.token)).body.flavors as Array<{ id: string; name: string }>).find((f) => f.name === 'm1.tiny')!;
    await up.stop();
    const seeding = performance.now();
    const db = await openDatabase(loadConfig({ ...process.env, ...env }).database);
    const ids = await seedServers(db, { projectId: first.project, userId: first.user, flavorId: flavor.id, host: 'bench-host' }, SERVERS).finally(() => db.close());
    console.log(`[${engine}] seeded ${SERVERS} servers straight into the database in ${((performance.now() - seeding) / 1000).toFixed(1)} s`);
    const started = await startUp(env, api);
    up = started.up;
    const token = started.token;
    if (SEPARATE_API) {
      const port = await freePort();
      apiProcess = spawnStratus('api', { ...env, STRATUS_API_PORT: String(port), TEMPORAL_ADDRESS: `127.0.0.1:${env.TEMPORAL_PORT}` });
      api = `http://127.0.0.1:${port}`;
      await waitFor('stratus api', async () => ((await fetch(`${api}/readyz`)).ok ? true : undefined), 60_000);
    }
    const served = apiProcess ?? up;
    const get = async (p: string) => (await jsonCaller(api)('GET', p, token)).body as Record<string, unknown>;

    // Every page's marker, walked once (not timed): list requests then spread over the whole table.
    const listPaths = ['/v1/servers?limit=100'];
    for (let marker = (await get('/v1/servers?limit=100')).next as string | null; marker; ) {
      listPaths.push(`/v1/servers?limit=100&marker=${encodeURIComponent(marker)}`);
      marker = (await get(`/v1/servers?limit=100&marker=${encodeURIComponent(marker)}`)).next as string | null;
    }
    // Shows pick from servers the warm-up did not touch, so the measured run starts with none of its
    // responses kept: the first request for each of them is rendered from the database.
    const warmIds = ids.slice(0, Math.min(300, Math.floor(ids.length / 10))); // a tenth at most: the rest are shown
    const showIds = ids.slice(warmIds.length);
    const showPaths = pickRandom(showIds, SHOWS).map((id) => `/v1/servers/${id}`);

    // Every route measured is served for a while first (JIT, the validator's lazily compiled schemas,
    // the pool), as a server that has been up for a while would have: lists of the last pages, which
    // the list row then reaches last, and shows of servers the show row never asks for.
    const warmPaths = [...listPaths.slice(-10), ...warmIds.map((id) => `/v1/servers/${id}`), '/healthz'];
    await load('warm-up', 'fixed-rate', api, token, warmPaths, served, database.cpuMs, 5);
    // What `up` uses with no request (Temporal workers polling, the host agent, timers): part of
    // each row's CPU per request, the more so the fewer requests a run serves.
    const idleFrom = cpuSecondsOf(served.child.pid!);
    await new Promise((r) => setTimeout(r, 3000));
    console.log(`[${engine}] stratus ${apiProcess ? 'api' : 'up'} idle: ${(((cpuSecondsOf(served.child.pid!) - idleFrom) * 1000) / 3).toFixed(0)} ms of CPU per second`);
    const results: RunResult[] = [];
    // The floor: the cheapest route of the same app (no database, no token), at the same rate.
    const rows: Array<[string, string, string[]]> = [['list', 'list (limit=100)', listPaths], ['show', 'show', showPaths], ['floor', 'floor: /healthz', ['/healthz']]];
    for (const [, name, paths] of rows.filter(([route]) => ROUTES.has(route))) {
      for (const generator of GENERATORS) results.push(await load(name, generator, api, token, paths, served, database.cpuMs));
    }
    // Lists while servers change: kept pages go stale at every write (one version for the whole
    // cloud), so this row shows what a page costs when most are rendered afresh. The writes come
    // from another connection, as another process's would; PGlite is `up`'s alone, so PostgreSQL only.
    if (ROUTES.has('list-churn') && engine === 'pglite') console.log('[pglite] list-churn: skipped (only `up` can write to its PGlite)');
    if (ROUTES.has('list-churn') && engine === 'postgres') {
      const writer = await openDatabase(loadConfig({ ...process.env, ...env }).database);
      let writing = true;
      const writes = (async () => {
        for (let n = 0; writing; n += 1) {
          await writer('servers').where({ id: ids[n % ids.length]! }).update({ metadata: JSON.stringify({ churn: String(n) }) });
          await new Promise((r) => setTimeout(r, 1000 / CHURN_PER_SECOND));
        }
      })();
      try {
        for (const generator of GENERATORS) results.push(await load(`list, ${CHURN_PER_SECOND} writes/s`, generator, api, token, listPaths, served, database.cpuMs));
      } finally {
        writing = false;
        await writes;
        await writer.close();
      }
    }
    return results;
  } finally {
    await apiProcess?.stop();
    await up?.stop();
    await database.drop();
    fs.rmSync(dataDir, { recursive: true, force: true });
  }
}

/** The rows of a bare Node HTTP server (bench/bare-server.ts), each generator in turn. */
async function bare(): Promise<RunResult[]> {
  const child = fork(path.join(__dirname, 'bare-server.ts'), { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const port = await new Promise<number>((resolve) => child.once('message', (p: number) => resolve(p)));
  const server: StratusProcess = { child, stop: async () => void child.kill() };
  try {
    const results: RunResult[] = [];
    for (const generator of GENERATORS) results.push(await load('floor: bare Node http', generator, `http://127.0.0.1:${port}`, 'none', ['/healthz'], server, async () => 0));
    return results;
  } finally {
    child.kill();
  }
}

async function main(): Promise<void> {
  const cpus = os.cpus();
  console.log(`bench:api — ${SERVERS} servers, ${CONNECTIONS} connections offering ${RATE} req/s for ${SECONDS} s per run (${GENERATORS.join(', ')})`);
  console.log(`stratus up: bin/stratus with node flags \`${nodeFlagsOf('up') || '(none)'}\``);
  if (SEPARATE_API) console.log(`requests go to a \`stratus api\` process of its own (node flags \`${nodeFlagsOf('api') || '(none)'}\`); PostgreSQL only`);
  console.log(`cores: ${cpus.length} × ${cpus[0]?.model ?? '?'}, load average ${os.loadavg().map((l) => l.toFixed(1)).join(' ')}`);
  const rows: string[] = [];
  const print = (label: string, r: RunResult) => {
    const row = `${label.padEnd(9)} ${r.name.padEnd(29)} p50 ${String(r.p50).padStart(5)} ms   p99 ${String(r.p99).padStart(5)} ms   max ${String(r.max).padStart(5)} ms   served ${r.served.toFixed(0).padStart(4)} req/s   errors ${r.errors}   CPU/req: server ${r.cpuMs.toFixed(1)} ms${label === 'postgres' ? `, PostgreSQL ${r.dbCpuMs.toFixed(1)} ms` : ''}   machine: ${r.machine.stalls} stalls > 10 ms (max ${r.machine.max} ms), steal ${r.machine.stealPercent}%${r.reasons.length > 0 ? `   first errors: ${r.reasons.join('; ')}` : ''}`;
    console.log(row);
    rows.push(row);
  };
  for (const engine of ENGINES.filter((e) => !SEPARATE_API || e === 'postgres')) {
    for (const r of await bench(engine)) print(engine, r);
  }
  if (ROUTES.has('bare')) for (const r of await bare()) print('node', r);
  console.log(`\nsummary (load average now ${os.loadavg().map((l) => l.toFixed(1)).join(' ')}):\n${rows.join('\n')}`);
}

runBench(main);
