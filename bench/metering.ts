/**
 * What metering costs: N servers metered (a meter row each, and the host's sampler woken, as
 * startMetering does) on one host whose sampler (meterHost) reads N domains of libvirt's test
 * driver every BENCH_INTERVAL_MS, against a scratch Temporal dev server, one conductor and one host agent in
 * this process, and a database (PostgreSQL when BENCH_PG_URL or a local server answers, else PGlite).
 * After one interval of warm-up it measures BENCH_SECONDS of steady state: samples written and
 * missed, bulk libvirt calls, and CPU time of this process (conductor + agent + libvirt) and of the
 * Temporal server, then says what 1,000 servers at the default 60 s interval would cost.
 *
 *   npm run bench:metering                                  # 1000 servers, 10 s interval, 60 s
 *   BENCH_SERVERS=200 BENCH_INTERVAL_MS=2000 npm run bench:metering
 *   BENCH_SERVERS=200 BENCH_PAGE_SIZE=20 npm run bench:metering  # 10 pages a tick (default: the sampler's 1,000)
 */
import fs from 'node:fs';
import os from 'node:os';
import { randomBytes, randomUUID } from 'node:crypto';
import { Client, Connection } from '@temporalio/client';
import { DefaultLogger, NativeConnection, Runtime, Worker } from '@temporalio/worker';
import pg from 'pg';
import { createMeteringHostActivities } from '../activities/metering/host';
import { loadConfig } from '../core/config';
import { createLogger } from '../core/log';
import { metrics } from '../core/metrics';
import { openDatabase, type Database } from '../db/connect';
import { migrateLatest } from '../db/migrate';
import { ImageUrlSigner } from '../images/signed-url';
import { openHypervisor } from '../libvirt';
import { hostTaskQueue, meterHostWorkflowId } from '../temporal/constants';
import { startScratchDevServer } from '../temporal/dev-server';
import { bundleWorkflows, createConductorWorker } from '../workers/conductor';
import type { meterHost } from '../workflows/meter-host';
import * as meters from '../db/repositories/meters';
import { runBench } from './run';

const SERVERS = Number(process.env.BENCH_SERVERS ?? 1000);
const INTERVAL_MS = Number(process.env.BENCH_INTERVAL_MS ?? 10_000);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 60);
const PAGE_SIZE = process.env.BENCH_PAGE_SIZE ? Number(process.env.BENCH_PAGE_SIZE) : undefined;
const PG_URL = process.env.BENCH_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';

/** utime + stime of a process in seconds (Linux /proc). */
function procCpuSeconds(pid: number): number {
  const fields = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100; // clock ticks (USER_HZ = 100)
}
const selfCpuSeconds = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
};

async function openBenchDatabase(): Promise<{ db: Database; dispose: () => Promise<void>; engine: string }> {
  const name = `stratus_bench_${randomBytes(4).toString('hex')}`;
  const admin = new pg.Client({ connectionString: PG_URL });
  try {
    await admin.connect();
    await admin.query(`create database ${name}`);
    await admin.end();
    const url = new URL(PG_URL);
    url.pathname = `/${name}`;
    const db = await openDatabase({ kind: 'postgres', url: url.toString() });
    return {
      db,
      engine: 'postgresql',
      dispose: async () => {
        await db.close();
        const c = new pg.Client({ connectionString: PG_URL });
        await c.connect();
        await c.query(`drop database if exists ${name}`);
        await c.end();
      },
    };
  } catch {
    await admin.end().catch(() => undefined);
    const db = await openDatabase({ kind: 'pglite-memory' });
    return { db, engine: 'pglite', dispose: () => db.close() };
  }
}

async function main(): Promise<void> {
  Runtime.install({ logger: new DefaultLogger('WARN'), telemetryOptions: { logging: { filter: { core: 'ERROR', other: 'ERROR' }, console: {} } } });
  const log = createLogger('warn');
  const config = loadConfig();
  const taskQueue = config.temporal.conductorTaskQueue;
  const server = await startScratchDevServer(config, log);
  const { db, dispose, engine } = await openBenchDatabase();
  await migrateLatest(db);
  const hv = await openHypervisor('test:///default');
  const hostName = `bench-${randomBytes(3).toString('hex')}`;
  const domains = Array.from({ length: SERVERS }, (_, i) => `stratus-bench-${hostName}-${i}`);
  const native = await NativeConnection.connect({ address: server.address });
  const connection = await Connection.connect({ address: server.address });
  const client = new Client({ connection, namespace: server.namespace });
  const conductor = await createConductorWorker({
    connection: native,
    namespace: server.namespace,
    taskQueue,
    db,
    log,
    workflowBundle: await bundleWorkflows(log),
    heartbeatSeconds: 10,
    images: { signer: new ImageUrlSigner('x'.repeat(32)), apiBaseUrl: 'http://127.0.0.1:1', urlTtlSeconds: 60 },
  });
  const agent = await Worker.create({
    connection: native,
    namespace: server.namespace,
    taskQueue: hostTaskQueue(hostName),
    activities: createMeteringHostActivities({ hypervisor: hv, hostName, log }),
    maxConcurrentActivityTaskExecutions: 1000,
  });
  const running = [conductor.run(), agent.run()];
  try {
    for (let i = 0; i < domains.length; i += 100) {
      await Promise.all(
        domains.slice(i, i + 100).map(async (name) => {
          await hv.defineDomain({ name, vcpus: 1, memoryMb: 128, domainType: 'test', disks: [], interfaces: [] });
          await hv.startDomain(name);
        }),
      );
    }
    // What startMetering does per server: the meter row and the host's sampler woken.
    const startedAt = Date.now();
    for (let i = 0; i < SERVERS; i += 50) {
      await Promise.all(
        domains.slice(i, i + 50).map(async (domainName) => {
          const serverId = randomUUID();
          const allocation = { projectId: serverId, host: hostName, domainName, vcpus: 1, ramMb: 128, diskGb: 1, intervalMs: INTERVAL_MS };
          await meters.start(db, { serverId, allocation });
          await client.workflow.signalWithStart<typeof meterHost>('meterHost', {
            workflowId: meterHostWorkflowId(hostName, INTERVAL_MS),
            taskQueue,
            args: [{ hostName, intervalMs: INTERVAL_MS, ...(PAGE_SIZE ? { pageSize: PAGE_SIZE } : {}) }],
            signal: 'wake',
            signalArgs: [],
          });
        }),
      );
    }
    const startMs = Date.now() - startedAt;
    console.log(
      `metering bench: ${os.cpus().length} cores, ${SERVERS} servers, interval ${INTERVAL_MS} ms, page size ${PAGE_SIZE ?? 'default'}, ${engine}; ${SERVERS} meters started in ${(startMs / 1000).toFixed(1)} s`,
    );
    await new Promise((r) => setTimeout(r, INTERVAL_MS + 2000)); // warm-up: every meter has ticked once

    const calls = async () => (await metrics().hostStatsCalls.get()).values.reduce((s, v) => s + v.value, 0);
    const t0 = Date.now();
    const cpu0 = { self: selfCpuSeconds(), temporal: procCpuSeconds(server.pid) };
    const calls0 = await calls();
    await new Promise((r) => setTimeout(r, SECONDS * 1000));
    const t1 = Date.now();
    const cpu1 = { self: selfCpuSeconds(), temporal: procCpuSeconds(server.pid) };
    const calls1 = await calls();

    const rows = (await db('meter_samples')
      .select('status')
      .count({ n: '*' })
      .where('sampled_at', '>=', new Date(t0))
      .where('sampled_at', '<', new Date(t1))
      .groupBy('status')) as Array<{ status: string; n: string | number }>;
    const count = (s: string) => Number(rows.find((r) => r.status === s)?.n ?? 0);
    const wall = (t1 - t0) / 1000;
    const expected = Math.floor((SERVERS * wall * 1000) / INTERVAL_MS);
    const ok = count('ok');
    const missed = count('missed');
    const selfCpu = cpu1.self - cpu0.self;
    const temporalCpu = cpu1.temporal - cpu0.temporal;
    const perSampleMs = ((selfCpu + temporalCpu) * 1000) / Math.max(1, ok + missed);
    console.log(`  window ${wall.toFixed(1)} s: ${ok} samples ok, ${missed} missed (expected ~${expected}); ${calls1 - calls0} bulk libvirt calls`);
    console.log(
      `  CPU: conductor+agent ${((selfCpu / wall) * 100).toFixed(1)}% of a core, Temporal ${((temporalCpu / wall) * 100).toFixed(1)}% → ${perSampleMs.toFixed(2)} ms CPU per sample`,
    );
    const rate = 1000 / 60;
    console.log(`  1,000 servers at 60 s = ${rate.toFixed(1)} samples/s → ~${((rate * perSampleMs) / 10).toFixed(1)}% of one core (linear in servers ÷ interval)`);
  } finally {
    conductor.shutdown();
    agent.shutdown();
    await Promise.allSettled(running);
    await native.close();
    await connection.close();
    for (const name of domains) await hv.undefineDomain(name).catch(() => undefined);
    await hv.close();
    await dispose();
    await server.stop();
  }
}

runBench(main);
