/**
 * Scheduling decision latency with 100 and 1,000 registered hosts:
 *  - pure: services/scheduler.ts `schedule` alone (filters + weighers over every host), in memory;
 *  - claim: the conductor's whole `claimHost` activity against a database — read every host and its
 *    claims, decide, claim the winner under its row lock, record the decision — on PGlite (in memory)
 *    and, when reachable, PostgreSQL (a scratch database dropped afterwards).
 * Each claimed server's claim is released (untimed) so the hosts never fill up.
 *
 *   npm run bench:schedule
 *   BENCH_DECISIONS=500 BENCH_PG_URL=postgres://postgres@127.0.0.1:5432/postgres npm run bench:schedule
 */
import { randomUUID } from 'node:crypto';
import os from 'node:os';
import pg from 'pg';
import { createComputeControlActivities } from '../activities/compute/control';
import { silentLogger } from '../core/log';
import { openDatabase, type Database } from '../db/connect';
import { migrateLatest } from '../db/migrate';
import { DEFAULT_RATIOS, schedule, type HostState } from '../services/scheduler';

const DECISIONS = Number(process.env.BENCH_DECISIONS ?? 300);
const PG_URL = process.env.BENCH_PG_URL ?? process.env.STRATUS_TEST_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const SIZES = [100, 1000];
const FLAVOR = { id: randomUUID(), name: 'bench.tiny', vcpus: 1, ramMb: 512, diskGb: 5 };

function pct(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

function summary(ms: number[]): string {
  const s = [...ms].sort((a, b) => a - b);
  return `p50 ${pct(s, 50).toFixed(3)} ms  p99 ${pct(s, 99).toFixed(3)} ms  (n=${s.length})`;
}

/** A deterministic spread of host sizes and loads. */
function hostSpec(i: number) {
  return {
    name: `bench-${String(i).padStart(4, '0')}`,
    vcpus: 16 + (i % 4) * 16,
    ramMb: 65536 + (i % 3) * 32768,
    diskGb: 1000,
    claimed: { vcpus: (i * 7) % 32, ramMb: ((i * 4099) % 60000) & ~511, diskGb: (i * 13) % 500 },
    zone: i % 10 === 0 ? 'az-2' : 'nova',
  };
}

function benchPure(n: number): string {
  const now = Date.now();
  const hosts: HostState[] = Array.from({ length: n }, (_, i) => {
    const h = hostSpec(i);
    return {
      name: h.name,
      enabled: i % 50 !== 7,
      alive: i % 97 !== 3,
      availabilityZone: h.zone,
      capacity: { vcpus: h.vcpus, ramMb: h.ramMb, diskGb: h.diskGb },
      ratios: DEFAULT_RATIOS,
      claimed: h.claimed,
      capabilities: { driver: 'Test', architecture: 'x86_64' },
      lastBuildFailureAt: i % 31 === 0 ? now - 1000 : null,
    };
  });
  const req = { vcpus: 1, ramMb: 512, diskGb: 5, group: { id: 'g', name: 'g', policy: 'soft-anti-affinity' as const, memberHosts: ['bench-0001'] } };
  for (let i = 0; i < 200; i += 1) schedule(hosts, req, undefined, now); // warm-up
  const ms: number[] = [];
  for (let i = 0; i < DECISIONS * 10; i += 1) {
    const t0 = performance.now();
    schedule(hosts, req, undefined, now);
    ms.push(performance.now() - t0);
  }
  return summary(ms);
}

async function seedHosts(db: Database, n: number): Promise<void> {
  await db('host_claims').delete();
  await db('hosts').delete();
  const specs = Array.from({ length: n }, (_, i) => hostSpec(i));
  for (let i = 0; i < specs.length; i += 500) {
    await db('hosts').insert(
      specs.slice(i, i + 500).map((h) => ({
        name: h.name,
        libvirt_uri: 'test:///default',
        vcpus: h.vcpus,
        ram_mb: h.ramMb,
        disk_gb: h.diskGb,
        capabilities: JSON.stringify({ driver: 'Test', architecture: 'x86_64' }),
        status: 'up',
        last_seen_at: db.fn.now(),
        availability_zone: h.zone,
      })),
    );
    await db('host_claims').insert(
      specs.slice(i, i + 500).map((h) => ({ server_id: randomUUID(), host_name: h.name, vcpus: h.claimed.vcpus, ram_mb: h.claimed.ramMb, disk_gb: h.claimed.diskGb })),
    );
  }
}

async function benchClaims(db: Database, n: number): Promise<string> {
  await seedHosts(db, n);
  const acts = createComputeControlActivities({ db, log: silentLogger, heartbeatSeconds: 3600 });
  const once = async () => {
    const serverId = randomUUID();
    const t0 = performance.now();
    await acts.claimHost({ serverId, flavor: FLAVOR, excludeHosts: [] });
    const ms = performance.now() - t0;
    await acts.releaseClaim({ serverId });
    return ms;
  };
  for (let i = 0; i < 10; i += 1) await once(); // warm-up
  const ms: number[] = [];
  for (let i = 0; i < DECISIONS; i += 1) ms.push(await once());
  return summary(ms);
}

async function withPostgres<T>(work: (db: Database) => Promise<T>): Promise<T | string> {
  const name = `stratus_bench_${randomUUID().replace(/-/g, '').slice(0, 12)}`;
  const admin = new pg.Client({ connectionString: PG_URL, connectionTimeoutMillis: 3000 });
  try {
    await admin.connect();
  } catch (err) {
    return `skipped (PostgreSQL at ${PG_URL.replace(/\/\/[^@]*@/, '//')} unreachable: ${(err as Error).message})`;
  }
  await admin.query(`create database "${name}"`);
  const url = new URL(PG_URL);
  url.pathname = `/${name}`;
  const db = await openDatabase({ kind: 'postgres', url: url.toString() });
  try {
    await migrateLatest(db);
    return await work(db);
  } finally {
    await db.close();
    await admin.query(`drop database if exists "${name}" with (force)`);
    await admin.end();
  }
}

async function main(): Promise<void> {
  console.log(
    `scheduling decisions (flavor 1 vCPU / 512 MiB / 5 GiB; ${DECISIONS} claims, ${DECISIONS * 10} pure decisions per row; ` +
      `${os.cpus().length} cores, load average ${os.loadavg()[0]!.toFixed(1)})`,
  );
  for (const n of SIZES) console.log(`  pure decision     ${String(n).padStart(5)} hosts: ${benchPure(n)}`);
  const pglite = await openDatabase({ kind: 'pglite-memory' });
  try {
    await migrateLatest(pglite);
    for (const n of SIZES) console.log(`  claim, PGlite     ${String(n).padStart(5)} hosts: ${await benchClaims(pglite, n)}`);
  } finally {
    await pglite.close();
  }
  for (const n of SIZES) {
    console.log(`  claim, PostgreSQL ${String(n).padStart(5)} hosts: ${await withPostgres((db) => benchClaims(db, n))}`);
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
