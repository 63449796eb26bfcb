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
 *
 * The servers are written straight into the database (test/support/seed-servers.ts: each ACTIVE with
 * a port, an attached volume and a finished create operation), not created through the API: 10,000
 * creates would take an hour and measure the create path, not reads. Lists walk the pages of all of
 * them (each request asks for a random page's marker); shows pick random servers.
 *
 * This process runs the cloud (API, workers, PGlite when embedded); the generator runs in a child
 * process (bench/api-load-client.ts), so the load generator neither shares the server's event loop nor its
 * CPU time as measured: each row also prints this process's CPU time per request answered
 * (PostgreSQL's and the Temporal server's own processes are not counted).
 */
import fs from 'node:fs';
import inspector from 'node:inspector';
import os from 'node:os';
import path from 'node:path';
import { fork } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { seedServers } from '../test/support/seed-servers';
import { BENCH_PASSWORD, startBenchCloud } from './cloud';
import type { Generator, LoadFigures, LoadRun } from './api-load-client';
import { runBench } from './run';

const SERVERS = Number(process.env.BENCH_SERVERS ?? 10_000);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 20);
const RATE = Number(process.env.BENCH_RATE ?? 200);
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 20);
const ENGINES = (process.env.BENCH_ENGINES ?? 'postgres,pglite').split(',');
const GENERATORS = (process.env.BENCH_GENERATORS ?? 'fixed-rate,autocannon').split(',') as Generator[];
/** Which rows to run: list, show, floor, and (not by default) list-churn: lists while servers are written. */
const ROUTES = new Set((process.env.BENCH_ROUTES ?? 'list,show,floor').split(','));
const CHURN_PER_SECOND = Number(process.env.BENCH_CHURN ?? 20);
const PG_URL = process.env.BENCH_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const PASSWORD = BENCH_PASSWORD;
/** BENCH_PROFILE=dir: write a V8 CPU profile of the server's process for each run (open in Chrome's DevTools). */
const PROFILE_DIR = process.env.BENCH_PROFILE;

interface RunResult {
  name: string;
  p50: number;
  p99: number;
  max: number;
  served: number;
  errors: number;
  /** CPU time of this process (the API, its workers, PGlite when embedded) per request answered. */
  cpuMs: number;
  /** CPU time of the PostgreSQL backends serving this database per request (0 with PGlite, counted in cpuMs). */
  dbCpuMs: number;
}

/** One run of the load generator, in its own process (bench/api-load-client.ts); the server's CPU is measured meanwhile. */
async function load(name: string, generator: Generator, url: string, token: string, paths: string[], dbCpuMs: () => Promise<number>, seconds = SECONDS): Promise<RunResult> {
  const client = fork(path.join(__dirname, 'api-load-client.ts'), { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const done = new Promise<LoadFigures>((resolve, reject) => {
    client.once('message', (figures: LoadFigures) => resolve(figures));
    client.once('exit', (code) => reject(new Error(`load generator exited with ${code}`)));
  });
  const profiler = PROFILE_DIR ? await startProfiler() : undefined;
  const cpu = process.cpuUsage();
  const dbCpu = await dbCpuMs();
  const run: LoadRun = { generator, url, token, paths, connections: CONNECTIONS, rate: RATE, seconds };
  client.send(run);
  const figures = await done;
  const used = process.cpuUsage(cpu);
  const dbUsed = (await dbCpuMs()) - dbCpu;
  if (profiler) {
    const file = path.join(PROFILE_DIR!, `api-${name.replace(/\W+/g, '-')}-${Date.now()}.cpuprofile`);
    fs.writeFileSync(file, JSON.stringify(await profiler()));
    console.log(`server CPU profile: ${file}`);
  }
  return {
    name: `${name}, ${generator}`,
    p50: figures.p50,
    p99: figures.p99,
    max: figures.max,
    served: figures.ok / seconds,
    errors: figures.failed,
    cpuMs: (used.user + used.system) / 1000 / Math.max(1, figures.ok + figures.failed),
    // A backend that ended meanwhile (the pool closes idle connections) takes its ticks with it.
    dbCpuMs: Math.max(0, dbUsed) / Math.max(1, figures.ok + figures.failed),
  };
}

/** Starts V8's CPU profiler in this (the server's) process; the function returned stops it and gives the profile. */
async function startProfiler(): Promise<() => Promise<object>> {
  const session = new inspector.Session();
  session.connect();
  const post = (method: string, params?: object) =>
    new Promise<Record<string, unknown>>((resolve, reject) => session.post(method, params, (err, result) => (err ? reject(err) : resolve(result as Record<string, unknown>))));
  await post('Profiler.enable');
  await post('Profiler.setSamplingInterval', { interval: 200 });
  await post('Profiler.start');
  return async () => {
    const { profile } = await post('Profiler.stop');
    session.disconnect();
    return profile as object;
  };
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

async function bench(engine: string): Promise<RunResult[]> {
  const database = await withDatabase(engine);
  const { cloud, api, stop } = await startBenchCloud(database.env);
  try {
    const login = await fetch(`${api}/v1/auth/tokens`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ username: 'admin', password: PASSWORD, project: 'admin' }),
    });
    const { token, user, project } = (await login.json()) as { token: string; user: { id: string }; project: { id: string } };
    // Retried once: a keep-alive socket the server closed while the bench was seeding resets the first try.
    const fetchJson = async (p: string) => (await fetch(`${api}${p}`, { headers: { authorization: `Bearer ${token}` } })).json() as Promise<Record<string, unknown>>;
    const get = (p: string) => fetchJson(p).catch(() => fetchJson(p));
    const flavor = ((await get('/v1/flavors')).flavors as Array<{ id: string; name: string }>).find((f) => f.name === 'm1.tiny')!;

    const seeding = performance.now();
    const ids = await seedServers(cloud.db!, { projectId: project.id, userId: user.id, flavorId: flavor.id, host: 'bench-host' }, SERVERS);
    console.log(`[${engine}] seeded ${SERVERS} servers straight into the database in ${((performance.now() - seeding) / 1000).toFixed(1)} s`);

    // Every page's marker, walked once (not timed): list requests then spread over the whole table.
    const listPaths = ['/v1/servers?limit=100'];
    for (let marker = (await get('/v1/servers?limit=100')).next as string | null; marker; ) {
      listPaths.push(`/v1/servers?limit=100&marker=${encodeURIComponent(marker)}`);
      marker = (await get(`/v1/servers?limit=100&marker=${encodeURIComponent(marker)}`)).next as string | null;
    }
    const showPaths = Array.from({ length: 1000 }, () => `/v1/servers/${ids[Math.floor(Math.random() * ids.length)]!}`);

    await load('warm-up', 'fixed-rate', api, token, listPaths.slice(0, 10), database.cpuMs, 3); // JIT, caches, pool
    // What this process uses with no request (Temporal workers polling, the host agent, timers): part of
    // each row's CPU per request, the more so the fewer requests a run serves.
    const idleFrom = process.cpuUsage();
    await new Promise((r) => setTimeout(r, 3000));
    const idle = process.cpuUsage(idleFrom);
    console.log(`[${engine}] this process idle: ${((idle.user + idle.system) / 1000 / 3).toFixed(0)} ms of CPU per second`);
    const results: RunResult[] = [];
    // The floor: the cheapest route of the same app (no database, no token), at the same rate.
    const rows: Array<[string, string, string[]]> = [['list', 'list (limit=100)', listPaths], ['show', 'show', showPaths], ['floor', 'floor: /healthz', ['/healthz']]];
    for (const [, name, paths] of rows.filter(([route]) => ROUTES.has(route))) {
      for (const generator of GENERATORS) results.push(await load(name, generator, api, token, paths, database.cpuMs));
    }
    // Lists while servers change: kept pages go stale at every write (one version for the whole
    // cloud), so this row shows what a page costs when most are rendered afresh.
    if (ROUTES.has('list-churn')) {
      let writing = true;
      const writes = (async () => {
        for (let n = 0; writing; n += 1) {
          await cloud.db!('servers').where({ id: ids[n % ids.length]! }).update({ metadata: JSON.stringify({ churn: String(n) }) });
          await new Promise((r) => setTimeout(r, 1000 / CHURN_PER_SECOND));
        }
      })();
      try {
        for (const generator of GENERATORS) results.push(await load(`list, ${CHURN_PER_SECOND} writes/s`, generator, api, token, listPaths, database.cpuMs));
      } finally {
        writing = false;
        await writes;
      }
    }
    return results;
  } finally {
    await stop();
    await database.drop();
  }
}

async function main(): Promise<void> {
  const cpus = os.cpus();
  console.log(`bench:api — ${SERVERS} servers, ${CONNECTIONS} connections offering ${RATE} req/s for ${SECONDS} s per run (${GENERATORS.join(', ')})`);
  console.log(`cores: ${cpus.length} × ${cpus[0]?.model ?? '?'}, load average ${os.loadavg().map((l) => l.toFixed(1)).join(' ')}`);
  const rows: string[] = [];
  for (const engine of ENGINES) {
    for (const r of await bench(engine)) {
      const row = `${engine.padEnd(9)} ${r.name.padEnd(29)} p50 ${String(r.p50).padStart(5)} ms   p99 ${String(r.p99).padStart(5)} ms   max ${String(r.max).padStart(5)} ms   served ${r.served.toFixed(0).padStart(4)} req/s   errors ${r.errors}   CPU/req: server ${r.cpuMs.toFixed(1)} ms${engine === 'postgres' ? `, PostgreSQL ${r.dbCpuMs.toFixed(1)} ms` : ''}`;
      console.log(row);
      rows.push(row);
    }
  }
  console.log(`\nsummary (load average now ${os.loadavg().map((l) => l.toFixed(1)).join(' ')}):\n${rows.join('\n')}`);
}

runBench(main);
