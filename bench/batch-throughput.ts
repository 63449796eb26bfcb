/**
 * Batch provisioning throughput on libvirt's test driver, through the whole stack (API, batch and
 * create workflows, conductor, host agent, database), against the engine's floor measured in the same
 * run on the same Temporal server: N bare workflows running the same number of no-op activities as a
 * create (local ones on the conductor side, one on a host queue), with the same parallelism.
 *
 *   npm run bench:batch -- --count 1000 [--parallel 50] [--db postgres|pglite] [--no-fairness] [--no-floor]
 *
 * Also measures fairness: one create of another project, alone, and then while the batch runs.
 * PostgreSQL: a fresh database on STRATUS_TEST_PG_URL (default postgres://postgres@127.0.0.1:5432/postgres).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { Client, Connection } from '@temporalio/client';
import { NativeConnection, Worker } from '@temporalio/worker';
import { loadConfig } from '../core/config';
import { createLogger } from '../core/log';
import { startCloud } from '../workers/cloud';
import { BENCH_PASSWORD, benchUpEnv } from './cloud';
import { cpuPer, cpuSeconds, freshPostgres, jsonCaller, seedServerTemplate } from './http';
import { runBench } from './run';

const { values: args } = parseArgs({
  options: {
    count: { type: 'string', default: '1000' },
    parallel: { type: 'string', default: '50' },
    db: { type: 'string', default: 'postgres' },
    'no-fairness': { type: 'boolean', default: false },
    'no-floor': { type: 'boolean', default: false },
  },
});
const COUNT = Number(args.count);
const PARALLEL = Number(args.parallel);
/**
 * What one create runs today (1 NIC, no volume), counted in workflows/create-server.ts: local activities
 * before boot (authenticate with its quota, select image, claim a host, allocate the port, spawning;
 * the progress writes ride on them), boot on the host, local ones after (start metering, finish).
 * servers.test.ts asserts the same list from a create's history.
 */
const SHAPE = { localBefore: 5, remote: 1, localAfter: 2 };

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))] ?? 0;
}


async function main(): Promise<void> {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'stratus-bench-batch-'));
  const database = args.db === 'postgres' ? await freshPostgres() : null;
  const config = loadConfig({
    ...process.env,
    ...(await benchUpEnv(dataDir)),
    STRATUS_HOST_VCPUS: String(COUNT * 2 + 64),
    STRATUS_HOST_RAM_MB: String((COUNT + 64) * 256),
    STRATUS_HOST_DISK_GB: String((COUNT + 64) * 2),
    STRATUS_QUOTA_SERVERS: '-1', STRATUS_QUOTA_VCPUS: '-1', STRATUS_QUOTA_RAM_MB: '-1', STRATUS_QUOTA_PORTS: '-1', STRATUS_QUOTA_VOLUMES: '-1', STRATUS_QUOTA_VOLUME_GB: '-1',
    ...(database ? { DATABASE_URL: database.url } : {}),
  });
  const started = performance.now();
  const cloud = await startCloud('up', config, createLogger('warn'));
  const api = `http://127.0.0.1:${config.api.port}`;
  const call = jsonCaller(api);
  const db = cloud.db!;
  try {
    console.log(`cloud up in ${((performance.now() - started) / 1000).toFixed(1)} s (${args.db}); ${os.cpus().length} cores × ${os.cpus()[0]?.model ?? '?'}`);
    const { token, template: seeded } = await seedServerTemplate(api, BENCH_PASSWORD, '10.96.0.0/16');
    const template = { ...seeded, name: 'member' };

    /** POST → ACTIVE of one create, polled every 20 ms. */
    const single = async (name: string): Promise<number> => {
      const t0 = performance.now();
      const res = await call('POST', '/v1/servers', token, { ...template, name });
      if (res.status !== 202) throw new Error(`create: ${res.status} ${JSON.stringify(res.body)}`);
      for (;;) {
        const s = (await call('GET', `/v1/servers/${res.body.server.id}`, token)).body;
        if (s.status === 'ACTIVE') return performance.now() - t0;
        if (s.status === 'ERROR') throw new Error(`single create failed: ${JSON.stringify(s.fault)}`);
        await new Promise((r) => setTimeout(r, 20));
      }
    };
    const fairness = !args['no-fairness'];
    const alone: number[] = [];
    if (fairness) {
      await single('warm-up'); // pulls the image into the host cache
      for (let i = 0; i < 5; i += 1) alone.push(await single(`alone-${i}`));
    }

    const dbName = database ? new URL(database.url).pathname.slice(1) : undefined;
    // BENCH_QUERIES=1: which SQL statements the batch runs, and how often (knex's query events).
    const queries = new Map<string, number>();
    if (process.env.BENCH_QUERIES) {
      db.on('query', (q: { sql: string }) => {
        const key = q.sql.replace(/\$\d+/g, '?').replace(/\(\?(, \?)*\)/g, '(…)').slice(0, 160);
        queries.set(key, (queries.get(key) ?? 0) + 1);
      });
    }
    const cpu0 = cpuSeconds(dbName);
    const t0 = performance.now();
    const created = await call('POST', '/v1/server-batches', token, { template, count: COUNT, max_parallel: PARALLEL });
    if (created.status !== 202) throw new Error(`batch: ${created.status} ${JSON.stringify(created.body)}`);
    const batchId = created.body.batch.id as string;
    const during: number[] = [];
    let batch: { status: string; counts: { active: number; pending: number }; fault: unknown };
    let lastPrint = performance.now();
    for (;;) {
      batch = (await call('GET', `/v1/server-batches/${batchId}?limit=1`, token)).body;
      if (!['running', 'cancelling'].includes(batch.status)) break;
      if (performance.now() - lastPrint > 60_000) {
        lastPrint = performance.now();
        console.log(`  ${((lastPrint - t0) / 1000).toFixed(0)} s: ${JSON.stringify(batch.counts)} (load average ${os.loadavg()[0]!.toFixed(1)})`);
      }
      if (fairness && during.length < 5 && batch.counts.active > COUNT * 0.1 && batch.counts.pending > 0) during.push(await single(`during-${during.length}`));
      else await new Promise((r) => setTimeout(r, 250));
    }
    const seconds = (performance.now() - t0) / 1000;
    const batchCpu = cpuPer(cpu0, cpuSeconds(dbName), COUNT);
    if (queries.size > 0) {
      const total = [...queries.values()].reduce((a, n) => a + n, 0);
      console.log(`SQL statements per server: ${(total / COUNT).toFixed(1)}; the most frequent:`);
      for (const [sql, n] of [...queries].sort((a, b) => b[1] - a[1]).slice(0, 25)) console.log(`  ${(n / COUNT).toFixed(2)}  ${sql}`);
    }
    if (batch.status === 'failed' && (batch.counts as { error?: number }).error) {
      // What a user does with a batch whose members failed: retry it once; only the failed members run again.
      const failed = await db('servers').where({ batch_id: batchId, status: 'ERROR' }).select('fault');
      console.log(`  the batch ended failed: ${JSON.stringify(batch.counts)}; faults: ${JSON.stringify([...new Set(failed.map((f: { fault: unknown }) => JSON.stringify(f.fault)))])}`);
      const r0 = performance.now();
      const retried = await call('POST', `/v1/server-batches/${batchId}/retry`, token);
      if (retried.status !== 202) throw new Error(`retry: ${retried.status} ${JSON.stringify(retried.body)}`);
      for (;;) {
        batch = (await call('GET', `/v1/server-batches/${batchId}?limit=1`, token)).body;
        if (!['running', 'cancelling'].includes(batch.status)) break;
        await new Promise((r) => setTimeout(r, 500));
      }
      console.log(`  retried: ${batch.status} in ${((performance.now() - r0) / 1000).toFixed(1)} s: ${JSON.stringify(batch.counts)}`);
    }
    if (batch.status !== 'succeeded') throw new Error(`batch ended ${batch.status}: ${JSON.stringify(batch.counts)} ${JSON.stringify(batch.fault)}`);
    const rows = (await db('operations')
      .join('servers', 'servers.id', 'operations.resource_id')
      .where('servers.batch_id', batchId)
      .andWhere('operations.kind', 'server.create')
      .select('operations.created_at', 'operations.updated_at')) as Array<{ created_at: Date; updated_at: Date }>;
    const member = rows.map((r) => new Date(r.updated_at).getTime() - new Date(r.created_at).getTime()).sort((a, b) => a - b);
    const rate = COUNT / seconds;

    // The floor: the same Temporal server, bare workflows with the same activities, the same parallelism.
    const measureFloor = async (): Promise<{ rate: number; cpu: string }> => {
      const address = `127.0.0.1:${config.temporal.port}`;
      const native = await NativeConnection.connect({ address });
      const connection = await Connection.connect({ address });
      const client = new Client({ connection, namespace: config.temporal.namespace });
      const noop = { noop: async () => undefined };
      const conductor = await Worker.create({ connection: native, namespace: config.temporal.namespace, taskQueue: 'batch-floor', workflowsPath: require.resolve('./batch-floor/workflows'), activities: noop });
      const hostWorker = await Worker.create({ connection: native, namespace: config.temporal.namespace, taskQueue: 'batch-floor-host', activities: noop });
      const running = [conductor.run(), hostWorker.run()];
      const fcpu0 = cpuSeconds(dbName);
      const f0 = performance.now();
      let next = 0;
      const lane = async () => {
        while (next < COUNT) {
          const i = next++;
          await client.workflow.execute('floorCreate', { taskQueue: 'batch-floor', workflowId: `floor-${batchId}-${i}`, args: [SHAPE] });
        }
      };
      await Promise.all(Array.from({ length: PARALLEL }, lane));
      const result = { rate: COUNT / ((performance.now() - f0) / 1000), cpu: cpuPer(fcpu0, cpuSeconds(dbName), COUNT) };
      conductor.shutdown();
      hostWorker.shutdown();
      await Promise.all(running);
      await connection.close();
      await native.close();
      return result;
    };
    const floor = args['no-floor'] ? null : await measureFloor();

    const fmt = (xs: number[]) => {
      const s = [...xs].sort((a, b) => a - b);
      return `p50 ${percentile(s, 50).toFixed(0)} ms, p99 ${percentile(s, 99).toFixed(0)} ms`;
    };
    console.log(`batch of ${COUNT}, max_parallel ${PARALLEL}, test driver, ${args.db}:`);
    console.log(`  ${rate.toFixed(1)} servers/s (${seconds.toFixed(1)} s to all ACTIVE); per member accepted → ACTIVE ${fmt(member)}`);
    if (floor) {
      console.log(`  engine floor (${COUNT} bare workflows × ${SHAPE.localBefore + SHAPE.localAfter} local + ${SHAPE.remote} host no-op activities, ${PARALLEL} in flight): ${floor.rate.toFixed(1)} workflows/s`);
      console.log(`  ratio: ${(rate / floor.rate).toFixed(2)} × the floor`);
    }
    console.log(`  CPU per server: ${batchCpu}${floor ? `; per floor workflow: ${floor.cpu}` : ''} (load average now ${os.loadavg().map((l) => l.toFixed(1)).join(' ')})`);
    if (fairness) {
      console.log(`  another create, alone: ${fmt(alone)}; while the batch runs: ${fmt(during)} (${during.length} samples)`);
    }
  } finally {
    await cloud.stop();
    fs.rmSync(dataDir, { recursive: true, force: true });
    await database?.drop();
  }
}

runBench(main);
