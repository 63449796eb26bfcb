/**
 * The chaos suite (issue 7): with 30 creates in flight, one fault per scenario, against a cloud of
 * separate processes (test/chaos/cluster.ts). A scenario passes when it meets the done-criteria: 0
 * servers stuck in BUILD once converged, 0 duplicates, 0 leaked ports / IPs / volumes / claims /
 * domains / disks / workflows / operations (a dead host's disks may wait in the leftovers ledger, and
 * must be gone once it returns), and nothing left after the servers are deleted.
 *
 * Run by `npm test` (test/chaos/chaos.test.ts, one jest test per scenario) and, for a developer, by
 * `npm run test:chaos [-- <keys>]` (test/chaos/run.ts); both drive the same ChaosSuite below.
 *
 * "Stuck" is measured honestly but not after 3 minutes: a scenario must converge (every server ACTIVE
 * or ERROR, no task running) within STRATUS_CHAOS_CONVERGE_S (default 90 s) after its fault ended;
 * whatever is still BUILD then counts as stuck. Process logs stay in $TMPDIR/stratus-chaos/<run>/.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import knex, { type Knex } from 'knex';
import { createLogger } from '../../core/log';
import { openHypervisor, type Hypervisor } from '../../libvirt';
import { connectTemporal } from '../../temporal/connection';
import { apiCaller } from '../support/cloud';
import { freePort } from '../support/ports';
import { createNetwork, flavorId, uploadRawImage, type ApiOf } from '../support/stratus-fixtures';
import { snapshotLibvirt, takeCensus, totalLeaked, type Census, type LibvirtSnapshot } from './census';
import { ChaosCluster, HEARTBEAT_SECONDS, UNLIMITED_QUOTAS, killGroup, LIBVIRT_URI, sleep, spawnStratus, waitReady, type RoleProcess } from './cluster';

const SERVERS = Number(process.env.STRATUS_CHAOS_SERVERS ?? 30);
const CONVERGE_S = Number(process.env.STRATUS_CHAOS_CONVERGE_S ?? 90);
/** The fault strikes this long after the first POST (boots are in flight by then). */
const FAULT_AFTER_MS = 1500;

interface Env {
  cluster: ChaosCluster;
  api: ApiOf;
  token: string;
  body: (name: string) => Record<string, unknown>;
  db: Knex;
  hv: Hypervisor;
}

interface Scenario {
  key: string;
  title: string;
  /** When the fault strikes after the first POST (default FAULT_AFTER_MS). */
  faultAfterMs?: number;
  /** Runs while the creates are in flight; returns once the fault is over (the part is back). */
  fault(env: Env): Promise<void>;
  /** After the census: bring back what the fault left down (a dead host returns). */
  recover?(env: Env): Promise<void>;
}

const scenarios: Scenario[] = [
  {
    key: 'conductor',
    title: 'conductor SIGKILL, restarted',
    fault: ({ cluster }) => cluster.restart('conductor'),
  },
  {
    key: 'agent',
    title: 'host agent SIGKILL during boots, restarted after 3 s',
    fault: ({ cluster }) => cluster.restart('h1', 3000),
  },
  {
    key: 'api',
    title: 'API SIGKILL, POSTs retried with their Idempotency-Key',
    faultAfterMs: 150, // while the POSTs are being answered
    fault: ({ cluster }) => cluster.restart('api'),
  },
  {
    key: 'temporal',
    title: 'Temporal server SIGKILL, restarted on its db after 5 s',
    async fault({ cluster }) {
      await cluster.killTemporal();
      await sleep(5000);
      await cluster.startTemporal();
    },
  },
  {
    key: 'postgres',
    title: 'PostgreSQL down 10 s (every connection cut)',
    async fault({ cluster }) {
      await cluster.pgProxy!.down();
      await sleep(10_000);
      await cluster.pgProxy!.up();
    },
  },
  {
    key: 'dead-host',
    title: 'host agent SIGKILL, never returns (h2 up)',
    async fault({ cluster }) {
      await cluster.kill('h1');
    },
    async recover({ cluster }) {
      await cluster.startRole('h1');
    },
  },
];

const UP_TITLE = 'whole `stratus up` SIGKILL, restarted on its data dir';

export interface Row {
  scenario: string;
  census: Census;
  convergeS: number | null;
  unanswered: number;
  replayMismatches: number;
  afterDelete: number;
  afterReturn?: number;
  problems: string[];
}

/** Every scenario's key, in the order they run (the whole-`up` scenario last, with its own cloud). */
export const SCENARIOS: Array<{ key: string; title: string }> = [...scenarios.map(({ key, title }) => ({ key, title })), { key: 'up', title: UP_TITLE }];
export const SCENARIO_KEYS: string[] = SCENARIOS.map((s) => s.key);

/**
 * Runs scenarios one at a time and keeps their rows. The cloud of separate processes starts with the
 * first scenario that needs it and stops before the whole-`up` scenario (which brings its own), so the
 * two never compete for the machine's cores.
 */
export class ChaosSuite {
  readonly rows: Row[] = [];
  private readonly log = createLogger(process.env.STRATUS_CHAOS_LOG_LEVEL ?? 'silent');
  private readonly baseDir = path.join(os.tmpdir(), 'stratus-chaos');
  private readonly cluster = new ChaosCluster(this.log, this.baseDir);
  private readonly started = Date.now();
  private hv: Hypervisor | undefined;
  private db: Knex | undefined;
  private env: Env | undefined;
  private clusterStopped = false;

  /** Where every process's log of this run is kept (removed by stop() when every scenario passed). */
  get logDir(): string {
    return this.cluster.dir;
  }

  async run(key: string): Promise<Row> {
    if (!SCENARIO_KEYS.includes(key)) throw new Error(`no chaos scenario "${key}" (known: ${SCENARIO_KEYS.join(', ')})`);
    const hv = await this.hypervisor();
    let row: Row;
    if (key === 'up') {
      await this.stopCluster();
      row = await runUpScenario(this.log, this.baseDir, hv);
    } else {
      if (this.clusterStopped) throw new Error(`chaos: scenario "${key}" after the whole-up scenario (the cloud of separate processes is stopped)`);
      const env = this.env ?? (await this.startCluster(hv));
      row = await runScenario(scenarios.find((s) => s.key === key)!, env, [this.cluster.poolName('h1'), this.cluster.poolName('h2')], this.cluster.poolName('h1'));
    }
    this.rows.push(row);
    return row;
  }

  /** The table of every scenario run so far (markdown, as in the README). */
  table(): string {
    return formatTable(this.rows, (Date.now() - this.started) / 1000);
  }

  get failed(): Row[] {
    return this.rows.filter((r) => r.problems.length > 0);
  }

  /** Stops everything; the logs are removed unless a scenario failed. */
  async stop(): Promise<void> {
    await this.stopCluster();
    await this.hv?.close();
    this.hv = undefined;
    if (this.failed.length === 0) fs.rmSync(this.cluster.dir, { recursive: true, force: true });
  }

  private async hypervisor(): Promise<Hypervisor> {
    this.hv ??= await openHypervisor(LIBVIRT_URI).catch((err: Error) => {
      throw new Error(`chaos needs libvirtd's test driver at ${LIBVIRT_URI} (scripts/setup-qemu.sh starts libvirtd): ${err.message}`);
    });
    return this.hv;
  }

  private async startCluster(hv: Hypervisor): Promise<Env> {
    process.stderr.write(`chaos: starting the cloud (${this.cluster.dir})\n`);
    await this.cluster.start();
    this.db = knex({ client: 'pg', connection: this.cluster.directDatabaseUrl, pool: { min: 0, max: 4 } });
    const api = { baseUrl: this.cluster.apiUrl, call: apiCaller(this.cluster.apiUrl) };
    this.env = await prepare(this.cluster, api, this.cluster.adminPassword, this.db, hv, { anchor: true });
    return this.env;
  }

  private async stopCluster(): Promise<void> {
    if (this.clusterStopped) return;
    this.clusterStopped = true;
    await this.db?.destroy();
    await this.cluster.stop().catch((err: Error) => process.stderr.write(`chaos: stopping the cloud: ${err.message}\n`));
  }
}

async function prepare(cluster: ChaosCluster, api: ApiOf, password: string, db: Knex, hv: Hypervisor, options: { anchor?: boolean } = {}): Promise<Env> {
  const login = await api.call('POST', '/v1/auth/tokens', { body: { username: 'admin', password, project: 'admin' } });
  if (login.status !== 201) throw new Error(`login: ${login.status} ${JSON.stringify(login.body)}`);
  const token = login.body.token as string;
  const imageId = await uploadRawImage(api, token);
  const tiny = await flavorId(api, token);
  const { networkId } = await createNetwork(api, token, '10.77.0.0/22');
  const body = (name: string) => ({ name, flavor_id: tiny, image_id: imageId, networks: [{ network_id: networkId }], volumes: [{ size_gb: 1, delete_on_termination: true }] });
  // Both agents share one libvirtd, hence one libvirt network for the Stratus network (real hosts
  // each have their own). A network no reservation uses is removed, and the next scenario's first
  // boots on h1 and h2 would then define it at the same moment: the second definition replaces the
  // first's persistent reservations while the running network keeps its own, and adds and removes
  // are refused from then on. A server kept for the whole suite keeps the network, as a host's own
  // libvirtd would never have the two agents race. (The whole-`up` scenario has one agent: none.)
  if (!options.anchor) return { cluster, api, token, db, hv, body };
  const anchor = await api.call('POST', '/v1/servers', { token, body: body('chaos-anchor') });
  if (anchor.status !== 202) throw new Error(`anchor server: ${anchor.status} ${JSON.stringify(anchor.body)}`);
  const deadline = Date.now() + 60_000;
  for (let status = ''; status !== 'ACTIVE'; ) {
    if (Date.now() > deadline || status === 'ERROR') throw new Error(`anchor server: ${status} after 60 s`);
    await sleep(250);
    status = (await api.call('GET', `/v1/servers/${anchor.body.server.id as string}`, { token })).body.status as string;
  }
  return { cluster, api, token, db, hv, body };
}

/**
 * POST with an Idempotency-Key as a careful client does: a network error, a 5xx or a 409 (the
 * same key in flight) is retried with the same key until `deadline`.
 */
async function createWithRetry(env: Pick<Env, 'api' | 'token'>, body: Record<string, unknown>, key: string, deadline: { at: number }): Promise<string | undefined> {
  for (;;) {
    const res = await env.api.call('POST', '/v1/servers', { token: env.token, body, headers: { 'idempotency-key': key } }).catch(() => undefined);
    if (res?.status === 202) return res.body.server.id as string;
    if (res && res.status < 500 && res.status !== 409 && res.status !== 401) return undefined;
    if (Date.now() > deadline.at) return undefined;
    await sleep(1000);
  }
}

async function waitConverged(db: Knex, prefix: string, count: number, deadline: number): Promise<boolean> {
  for (;;) {
    const rows: Array<{ status: string; task_state: string | null }> = await db('servers').where('name', 'like', `${prefix}-%`).select('status', 'task_state').catch(() => []);
    if (rows.length >= count && rows.every((r) => r.status !== 'BUILD' && r.task_state === null)) return true;
    if (Date.now() > deadline) return false;
    await sleep(500);
  }
}

async function ledger(env: Pick<Env, 'api' | 'token'>): Promise<Array<Record<string, unknown>> | null> {
  const res = await env.api.call('GET', '/v1/leftovers?limit=1000', { token: env.token }).catch(() => undefined);
  if (!res || res.status === 404) return null;
  const body = res.body as Record<string, unknown>;
  const items = (body.leftovers ?? body.items ?? []) as Array<Record<string, unknown>>;
  return Array.isArray(items) ? items : [];
}

async function runScenario(scenario: Scenario, env: Env, pools: string[], deadHostPool: string): Promise<Row> {
  process.stderr.write(`chaos: ${scenario.key}: ${scenario.title}\n`);
  const prefix = `c-${scenario.key}-${randomBytes(2).toString('hex')}`;
  const before = await snapshotLibvirt(env.hv, pools);
  const keys = Array.from({ length: SERVERS }, (_, i) => ({ name: `${prefix}-${i}`, key: `${prefix}-key-${i}` }));
  const t0 = Date.now();
  const postDeadline = { at: Number.POSITIVE_INFINITY }; // set once the fault is over
  const posts = keys.map((k) => createWithRetry(env, env.body(k.name), k.key, postDeadline));
  await sleep(scenario.faultAfterMs ?? FAULT_AFTER_MS);
  await scenario.fault(env);
  const healed = Date.now();
  postDeadline.at = healed + CONVERGE_S * 1000;
  const ids = await Promise.all(posts);
  // Every client retries its POST once more with the same key: it must get the same server back.
  const replays = await Promise.all(keys.map((k) => createWithRetry(env, env.body(k.name), k.key, postDeadline)));
  const replayMismatches = replays.filter((id, i) => id !== ids[i]).length;
  const converged = await waitConverged(env.db, prefix, SERVERS, healed + CONVERGE_S * 1000);
  const convergeS = converged ? (Date.now() - t0) / 1000 : null;
  // What is still held 10 s after convergence (a workflow finishes a moment after its server's row).
  let census = await censusOf(env, prefix, before, pools);
  for (let i = 0; i < 10 && totalLeaked(census) > 0; i += 1) {
    await sleep(1000);
    census = await censusOf(env, prefix, before, pools);
  }
  const unanswered = ids.filter((id) => !id).length;
  // A dead host's disks may wait in the leftovers ledger (not leaked), and must go once it returns.
  const onDeadHost = scenario.recover ? (census.disksByPool[deadHostPool] ?? 0) : 0;
  if (onDeadHost > 0 && census.leftovers !== null && census.leftovers >= onDeadHost) census.leaked.disks -= onDeadHost;
  const problems = judge(census, converged, unanswered, replayMismatches);
  let afterReturn: number | undefined;
  if (scenario.recover) {
    await scenario.recover(env);
    afterReturn = await waitUntil(async () => (await censusOf(env, prefix, before, pools)).disksByPool[deadHostPool] ?? 0, 60_000);
    if (afterReturn !== 0) problems.push(`${afterReturn} disks still on the returned host after 60 s`);
  }
  const { left: afterDelete, what: leftAfterDelete } = await deleteAll(env, prefix, before, pools);
  if (afterDelete !== 0) problems.push(`${afterDelete} servers or things left 60 s after deleting every server (${leftAfterDelete})`);
  const row: Row = { scenario: scenario.title, census, convergeS, unanswered, replayMismatches, afterDelete, problems };
  const faults = new Map<string, number>();
  for (const s of census.servers.filter((x) => x.status === 'ERROR')) {
    const f = s.fault as { step?: string; code?: string; message?: string } | null;
    const text = `${f?.step}/${f?.code}: ${(f?.message ?? '').replace(/[0-9a-f]{8}-[0-9a-f-]{27}/g, '<id>').slice(0, 160)}`;
    faults.set(text, (faults.get(text) ?? 0) + 1);
  }
  for (const [text, n] of faults) process.stderr.write(`chaos: ${scenario.key}:   ERROR ×${n} ${text}\n`);
  if (afterReturn !== undefined) row.afterReturn = afterReturn;
  process.stderr.write(`chaos: ${scenario.key}: ${census.active} ACTIVE / ${census.error} ERROR / ${census.stuck} stuck, ${convergeS ?? '>' + CONVERGE_S} s, leaked ${JSON.stringify(census.leaked)}, after delete ${afterDelete}\n`);
  return row;
}

function judge(c: Census, converged: boolean, unanswered: number, replayMismatches: number): string[] {
  const problems: string[] = [];
  if (!converged || c.stuck > 0) problems.push(`${c.stuck} stuck in BUILD after ${CONVERGE_S} s`);
  if (unanswered > 0) problems.push(`${unanswered} POSTs never answered 202`);
  if (c.duplicates > 0) problems.push(`${c.duplicates} duplicates`);
  if (replayMismatches > 0) problems.push(`${replayMismatches} retries with the same key got another server`);
  const leaks = Object.entries(c.leaked).filter(([, n]) => n > 0);
  if (leaks.length > 0) problems.push(`leaked ${leaks.map(([k, n]) => `${n} ${k}`).join(', ')}`);
  return problems;
}

async function censusOf(env: Env, prefix: string, before: LibvirtSnapshot, pools: string[]): Promise<Census> {
  const { connection, client } = await connectTemporal(env.cluster.temporalAddress, 'stratus');
  try {
    return await takeCensus({ db: env.db, hv: env.hv, temporal: client, prefix, before, pools, leftovers: () => ledger(env) });
  } finally {
    await connection.close();
  }
}

/**
 * DELETEs every server of the scenario; what is left once nothing has changed for 20 s (longer than
 * a reconciler round, STRATUS_RECONCILE_SECONDS = 15 s: what a delete left in the ledger, e.g. on a
 * host that has just come back, goes at the next round; 10 s failed 2 runs in 5), or after 60 s, and
 * what it is. A server stuck in BUILD cannot be deleted: it and what it holds stay counted.
 */
async function deleteAll(env: Env, prefix: string, before: LibvirtSnapshot, pools: string[]): Promise<{ left: number; what: string }> {
  const rows: Array<{ id: string }> = await env.db('servers').where('name', 'like', `${prefix}-%`).whereNot({ status: 'DELETED' }).select('id');
  await Promise.all(rows.map((r) => env.api.call('DELETE', `/v1/servers/${r.id}`, { token: env.token }).catch(() => undefined)));
  let what = '';
  const left = await waitUntil(async () => {
    const c = await censusOf(env, prefix, before, pools);
    const servers = c.servers.filter((s) => s.status !== 'DELETED');
    what = [servers.length > 0 ? `servers ${servers.map((s) => `${s.status}/${s.task_state ?? '-'}`).join(' ')}` : '', ...Object.entries(c.leaked).filter(([, n]) => n > 0).map(([k, n]) => `${k} ${n}`)]
      .filter(Boolean)
      .join(', ');
    return servers.length + totalLeaked(c);
  }, 60_000, 20_000);
  return { left, what };
}

/** Polls `count` until it is 0, or unchanged for `stableMs`, or `timeoutMs` passed; returns the last count. */
async function waitUntil(count: () => Promise<number>, timeoutMs: number, stableMs = Number.POSITIVE_INFINITY): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  let last = Number.NaN;
  let since = Date.now();
  for (;;) {
    const n = await count().catch(() => Number.NaN);
    if (n !== last) [last, since] = [n, Date.now()];
    if (n === 0 || Date.now() > deadline || Date.now() - since >= stableMs) return Number.isNaN(n) ? -1 : n;
    await sleep(1000);
  }
}

/**
 * The whole `stratus up` (its embedded Temporal dev server included: it dies with its parent)
 * SIGKILLed with creates in flight, then started again on the same data dir. The database is
 * PostgreSQL (DATABASE_URL) so this process can count rows while `up` runs.
 */
async function runUpScenario(log: ReturnType<typeof createLogger>, baseDir: string, hv: Hypervisor): Promise<Row> {
  const sidecar = new ChaosCluster(log, baseDir); // for its database (and the census's Temporal address) only
  const [apiPort, temporalPort, uiPort] = [await freePort(), await freePort(), await freePort()];
  sidecar.temporalPort = temporalPort;
  const dataDir = path.join(sidecar.dir, 'up');
  await sidecar.startDatabaseOnly();
  const pool = `${sidecar.runId}-up`;
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH,
    HOME: process.env.HOME,
    TMPDIR: process.env.TMPDIR,
    LOG_LEVEL: 'info',
    STRATUS_DATA_DIR: dataDir,
    STRATUS_API_PORT: String(apiPort),
    TEMPORAL_PORT: String(temporalPort),
    TEMPORAL_UI_PORT: String(uiPort),
    DATABASE_URL: sidecar.databaseUrl,
    STRATUS_ADMIN_PASSWORD: sidecar.adminPassword,
    STRATUS_HOST_NAME: pool,
    STRATUS_LIBVIRT_URI: LIBVIRT_URI,
    STRATUS_STORAGE_POOL: pool,
    STRATUS_HOST_HEARTBEAT_SECONDS: HEARTBEAT_SECONDS,
    STRATUS_HOST_VCPUS: '64',
    STRATUS_HOST_RAM_MB: '65536',
    STRATUS_HOST_DISK_GB: '2000',
    ...UNLIMITED_QUOTAS,
  };
  if (process.env.TEMPORAL_CLI_PATH) env.TEMPORAL_CLI_PATH = process.env.TEMPORAL_CLI_PATH;
  const logFile = path.join(sidecar.dir, 'up.log');
  let up: RoleProcess = spawnStratus('up', env, logFile, 'up');
  let passed = false;
  const db = knex({ client: 'pg', connection: sidecar.directDatabaseUrl, pool: { min: 0, max: 4 } });
  try {
    await waitReady(up, logFile, 120_000);
    const api = { baseUrl: `http://127.0.0.1:${apiPort}`, call: apiCaller(`http://127.0.0.1:${apiPort}`) };
    const e = await prepare(sidecar, api, sidecar.adminPassword, db, hv);
    const row = await runScenario(
      {
        key: 'up',
        title: UP_TITLE,
        async fault() {
          killGroup(up.child, 'SIGKILL');
          await up.exited;
          up = spawnStratus('up', env, logFile, 'up');
          await waitReady(up, logFile, 120_000);
        },
      },
      e,
      [pool],
      pool,
    );
    passed = row.problems.length === 0;
    if (!passed) process.stderr.write(`chaos: up: logs in ${sidecar.dir}\n`);
    return row;
  } finally {
    killGroup(up.child, 'SIGTERM');
    const timer = setTimeout(() => killGroup(up.child, 'SIGKILL'), 10_000);
    await up.exited;
    clearTimeout(timer);
    await db.destroy();
    await sidecar.stop();
    if (passed) fs.rmSync(sidecar.dir, { recursive: true, force: true }); // its logs stay when the scenario failed
  }
}

function formatTable(rows: Row[], seconds: number): string {
  const head = ['fault', 'ACTIVE', 'ERROR', 'stuck', 'dup', 'converged s', 'ports', 'IPs', 'volumes', 'claims', 'domains', 'disks', 'workflows', 'ops running', 'ledger', 'after delete'];
  const lines = rows.map((r) => {
    const c = r.census;
    return [
      r.scenario,
      c.active,
      c.error,
      c.stuck,
      c.duplicates + r.replayMismatches,
      r.convergeS === null ? `>${CONVERGE_S}` : r.convergeS.toFixed(1),
      c.leaked.ports,
      c.leaked.ips,
      c.leaked.volumes,
      c.leaked.claims,
      c.leaked.domains,
      c.leaked.disks,
      c.leaked.workflows,
      c.leaked.operations,
      c.leftovers === null ? 'n/a' : c.leftovers,
      r.afterDelete,
    ].map(String);
  });
  const out = [
    `Chaos: ${SERVERS} creates in flight per fault (separate api / conductor / 2 agents, PostgreSQL, Temporal dev server); leaked = held by no ACTIVE server; converged = every server ACTIVE or ERROR (bound ${CONVERGE_S} s after the fault)`,
    `| ${head.join(' | ')} |`,
    `|${head.map(() => '---').join('|')}|`,
    ...lines.map((l) => `| ${l.join(' | ')} |`),
    `total ${seconds.toFixed(0)} s`,
  ];
  return out.join('\n');
}
