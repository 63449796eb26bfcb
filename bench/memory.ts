/**
 * Memory of `stratus up` (issue 8, item 5): RSS of the all-in-one after N creates, the Temporal
 * server not counted (it is its own process), and of a lone host agent beside it.
 *
 *   npm run bench:memory -- --count 1000 [--db pglite|postgres]
 *
 * Runs `bin/stratus up` and `bin/stratus agent` as real processes (as a user runs them), creates N
 * servers on the test driver through one server batch, waits for every member to be ACTIVE, lets the
 * processes settle, and prints RSS (from /proc) with the V8 heap of `up` (from its /metrics), and the
 * CPU each used per server (to weigh node flags: STRATUS_NODE_FLAGS, see bin/stratus).
 * PostgreSQL: a fresh database on STRATUS_TEST_PG_URL (default postgres://postgres@127.0.0.1:5432/postgres).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { freePort } from '../core/ports';
import { BENCH_PASSWORD } from './cloud';
import { freshPostgres, seedServerTemplate } from './http';
import { cpuSecondsOf, spawnStratus, waitFor, type StratusProcess } from './stratus-process';

const { values: args } = parseArgs({
  options: {
    count: { type: 'string', default: '1000' },
    db: { type: 'string', default: 'pglite' },
    parallel: { type: 'string', default: '50' },
  },
});
const COUNT = Number(args.count);

/** Resident set (MiB) of a process and its descendants, except the Temporal CLI (counted apart). */
function rssMiB(pid: number): { total: number; parts: Record<string, number> } {
  const parts: Record<string, number> = {};
  const visit = (p: number) => {
    let status: string;
    try {
      status = fs.readFileSync(`/proc/${p}/status`, 'utf8');
    } catch {
      return;
    }
    const name = /^Name:\s+(.+)$/m.exec(status)?.[1] ?? '?';
    const kb = Number(/^VmRSS:\s+(\d+)/m.exec(status)?.[1] ?? 0);
    if (name === 'temporal') return;
    parts[`${name}[${p}]`] = Math.round(kb / 1024);
    const children = fs.readFileSync(`/proc/${p}/task/${p}/children`, 'utf8').trim();
    for (const c of children ? children.split(/\s+/) : []) visit(Number(c));
  };
  visit(pid);
  return { total: Object.values(parts).reduce((a, b) => a + b, 0), parts };
}

async function heapMiB(metricsUrl: string): Promise<Record<string, number>> {
  const text = await (await fetch(metricsUrl)).text();
  const pick = (name: string) => Number(new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, 'm').exec(text)?.[1] ?? NaN) / 2 ** 20;
  return {
    heapUsed: Math.round(pick('stratus_process_nodejs_heap_size_used_bytes')),
    heapTotal: Math.round(pick('stratus_process_nodejs_heap_size_total_bytes')),
    external: Math.round(pick('stratus_process_nodejs_external_memory_bytes')),
  };
}

async function main(): Promise<void> {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'stratus-bench-memory-'));
  const [apiPort, temporalPort, uiPort] = [await freePort(), await freePort(), await freePort()];
  const database = args.db === 'postgres' ? await freshPostgres() : undefined;
  const common = {
    STRATUS_DATA_DIR: dataDir,
    STRATUS_LIBVIRT_URI: 'test:///default',
    STRATUS_ADMIN_PASSWORD: BENCH_PASSWORD,
    LOG_LEVEL: 'warn',
    ...(database ? { DATABASE_URL: database.url } : {}),
  };
  const up = spawnStratus('up', {
    ...common,
    STRATUS_API_PORT: String(apiPort),
    TEMPORAL_PORT: String(temporalPort),
    TEMPORAL_UI_PORT: String(uiPort),
    STRATUS_HOST_NAME: 'bench-up',
    STRATUS_QUOTA_SERVERS: '-1',
    STRATUS_QUOTA_VCPUS: '-1',
    STRATUS_QUOTA_RAM_MB: '-1',
    STRATUS_QUOTA_PORTS: '-1',
    STRATUS_HOST_VCPUS: '100000',
    STRATUS_HOST_RAM_MB: '100000000',
    STRATUS_HOST_DISK_GB: '100000',
  });
  let agent: StratusProcess | undefined;
  const api = `http://127.0.0.1:${apiPort}`;
  try {
    await waitFor('stratus up', async () => ((await fetch(`${api}/readyz`)).ok ? true : undefined), 120_000);
    const agentMetricsPort = await freePort();
    // A second host: a lone agent process (`stratus agent`), taking its share of the boots.
    agent = spawnStratus('agent', {
      ...common,
      TEMPORAL_ADDRESS: `127.0.0.1:${temporalPort}`,
      STRATUS_HOST_NAME: 'bench-agent',
      STRATUS_HOST_VCPUS: '100000',
      STRATUS_HOST_RAM_MB: '100000000',
      STRATUS_HOST_DISK_GB: '100000',
      STRATUS_METRICS_PORT: String(agentMetricsPort),
    });
    const { token, call, template } = await seedServerTemplate(api, BENCH_PASSWORD, '10.80.0.0/16');
    await waitFor('the second host', async () => {
      const hosts = (await call('GET', '/v1/hosts', token)).body.hosts as Array<{ name: string; state?: string }>;
      return hosts.some((h) => h.name === 'bench-agent') ? true : undefined;
    }, 60_000);
    const before = { up: rssMiB(up.child.pid!), agent: rssMiB(agent.child.pid!) };
    console.log(`idle: up ${before.up.total} MiB, agent ${before.agent.total} MiB (${args.db})`);

    const started = performance.now();
    const cpuBefore = { up: cpuSecondsOf(up.child.pid!), agent: cpuSecondsOf(agent.child.pid!) };
    const created = await call('POST', '/v1/server-batches', token, { template, count: COUNT, max_parallel: Number(args.parallel) });
    if (created.status !== 202) throw new Error(`batch: ${created.status} ${JSON.stringify(created.body)}`);
    const batchId = created.body.batch.id as string;
    const done = await waitFor('the batch', async () => {
      const b = (await call('GET', `/v1/server-batches/${batchId}?limit=1`, token)).body;
      return b.status === 'running' ? undefined : b;
    }, 3 * 60 * 60_000);
    const secs = (performance.now() - started) / 1000;
    const cpuMs = (role: 'up' | 'agent', pid: number) => (((cpuSecondsOf(pid) - cpuBefore[role]) * 1000) / COUNT).toFixed(0);
    console.log(`batch of ${COUNT}: ${done.status}, ${JSON.stringify(done.counts)} in ${secs.toFixed(0)} s; CPU per server: up ${cpuMs('up', up.child.pid!)} ms, agent ${cpuMs('agent', agent.child.pid!)} ms`);
    if (done.counts.error > 0) {
      const failed = (await call('GET', `/v1/server-batches/${batchId}?limit=1000`, token)).body.members.items.find((m: { status: string }) => m.status === 'ERROR');
      console.log(`a failed member: ${JSON.stringify(failed?.fault)}`);
    }
    // RSS moves with V8's lazy collections (garbage waits for the next major GC): sample it every 5 s
    // for a minute after the batch, as a user's monitoring would, and print the range.
    const samples = { up: [] as number[], agent: [] as number[] };
    for (let i = 0; i < 12; i++) {
      await new Promise((r) => setTimeout(r, 5000));
      samples.up.push(rssMiB(up.child.pid!).total);
      samples.agent.push(rssMiB(agent.child.pid!).total);
    }
    const range = (xs: number[]) => `${Math.min(...xs)}–${Math.max(...xs)}`;
    const heap = await heapMiB(`${api}/metrics`);
    const agentHeap = await heapMiB(`http://127.0.0.1:${agentMetricsPort}/metrics`);
    console.log(`the minute after ${COUNT} creates: up ${range(samples.up)} MiB (last ${samples.up.at(-1)}, heap ${JSON.stringify(heap)}); lone agent ${range(samples.agent)} MiB (last ${samples.agent.at(-1)}, heap ${JSON.stringify(agentHeap)})`);
    console.log(`| db | servers | up idle MiB | up after MiB (min–max over 60 s) | agent idle MiB | agent after MiB (min–max) |`);
    console.log(`| ${args.db} | ${COUNT} | ${before.up.total} | ${range(samples.up)} | ${before.agent.total} | ${range(samples.agent)} |`);
  } finally {
    await Promise.all([agent?.stop(), up.stop()]);
    await database?.drop();
    fs.rmSync(dataDir, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
