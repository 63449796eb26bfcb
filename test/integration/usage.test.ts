/**
 * Metering end to end over HTTP, against a whole in-process cloud on PostgreSQL (so it can be
 * restarted on the same data) with a 1 s meter interval: a server running N intervals has N samples
 * and exactly flavor × time of allocation; a deleted server stops being metered; cost is exact and
 * the same across calls and a restart; who may read whose usage; /metrics parses and its counters
 * move as a create runs.
 */
import parsePrometheusTextFormat from 'parse-prometheus-text-format';
import * as meters from '../../db/repositories/meters';
import { connectTemporal } from '../../temporal/connection';
import { startTestCloud, type TestCloud } from '../support/cloud';
import { engines, type TestDatabase } from '../support/databases';
import { createNetwork, flavorId, uploadRawImage, waitGone, waitSettled } from '../support/stratus-fixtures';

let database: TestDatabase;
let t: TestCloud;
let admin: string;
const env = { STRATUS_METER_INTERVAL: '1' };

beforeAll(async () => {
  database = await engines.find((e) => e.name === 'postgres')!.create({ migrate: false });
  t = await startTestCloud({ databaseUrl: database.url!, env });
  admin = await t.login();
}, 120_000);

afterAll(async () => {
  await t?.stop();
  await database?.dispose();
});

/**
 * The sum of a counter's or gauge's samples matching `labels`, as the text-format parser reads them
 * (it throws on a malformed line). For a histogram, the sum of its `_count` series: this parser merges
 * a labelled histogram's series into one, so those lines are read directly.
 */
function metricValue(text: string, name: string, labels: Record<string, string> = {}): number {
  const family = parsePrometheusTextFormat(text).find((f) => f.name === name);
  const matches = (l: Record<string, string> | undefined) => Object.entries(labels).every(([k, v]) => l?.[k] === v);
  if (family?.type === 'HISTOGRAM') {
    return text
      .split('\n')
      .filter((line) => line.startsWith(`${name}_count{`))
      .map((line) => ({ labels: Object.fromEntries([...line.matchAll(/(\w+)="([^"]*)"/g)].map((m) => [m[1]!, m[2]!])), value: Number(line.split(' ').at(-1)) }))
      .filter((s) => matches(s.labels))
      .reduce((sum, s) => sum + s.value, 0);
  }
  return (family?.metrics ?? []).filter((m) => matches(m.labels)).reduce((sum, m) => sum + Number(m.value ?? 0), 0);
}
const scrape = async () => (await fetch(`${t.baseUrl}/metrics`)).text();

const db = () => t.cloud.db!;
async function until<T>(read: () => Promise<T>, ok: (v: T) => boolean, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await read();
    if (ok(v)) return v;
    if (Date.now() > deadline) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 200));
  }
}

let serverId: string;
let firstTick: number;
const N = 3;
const iso = (ms: number) => new Date(ms).toISOString();
/** For query strings: the validator wants reserved characters (':') encoded. */
const enc = (ms: number) => encodeURIComponent(iso(ms));

test('a create moves the metrics: requests by route and status, operations by kind and outcome, step durations, samples, host gauges', async () => {
  const image = await uploadRawImage(t, admin);
  const net = await createNetwork(t, admin, '10.40.0.0/24');
  const before = await scrape();
  const created = await t.call('POST', '/v1/servers', {
    token: admin,
    body: { name: 'metered', flavor_id: await flavorId(t, admin), image_id: image, networks: [{ network_id: net.networkId }], volumes: [{ size_gb: 1, delete_on_termination: true }] },
  });
  expect(created.status).toBe(202);
  serverId = created.body.server.id;
  expect((await waitSettled(t, admin, serverId)).status).toBe('ACTIVE');
  await until(() => meters.listSamples(db(), serverId), (s) => s.filter((x) => x.status === 'ok').length >= N + 1);

  const after = await scrape();
  const d = (name: string, labels: Record<string, string> = {}) => metricValue(after, name, labels) - metricValue(before, name, labels);
  expect(d('stratus_http_requests_total', { method: 'POST', route: '/v1/servers', status: '202' })).toBe(1);
  expect(d('stratus_http_request_duration_seconds', { method: 'POST', route: '/v1/servers' })).toBe(1);
  expect(d('stratus_operations_total', { kind: 'server.create', outcome: 'succeeded' })).toBe(1);
  expect(d('stratus_operation_duration_seconds', { kind: 'server.create', outcome: 'succeeded' })).toBe(1);
  expect(d('stratus_workflow_step_duration_seconds', { workflow: 'createServer', step: 'bootServer', outcome: 'completed' })).toBe(1);
  expect(d('stratus_meter_samples_total', { status: 'ok' })).toBeGreaterThanOrEqual(N + 1);
  expect(d('stratus_host_domain_stats_calls_total', { host: t.config.host.name })).toBeGreaterThanOrEqual(N);
  expect(metricValue(after, 'stratus_host_usage', { host: t.config.host.name, resource: 'vcpus' })).toBe(1);
  expect(metricValue(after, 'stratus_host_capacity', { host: t.config.host.name, resource: 'vcpus' })).toBeGreaterThan(0);
  expect(parsePrometheusTextFormat(after).find((f) => f.name === 'stratus_http_requests_total')?.type).toBe('COUNTER');
}, 90_000);

test('N intervals: N samples and allocation exactly flavor × time', async () => {
  // N consecutive readings (a tick the loaded machine ran late would be a gap: start after it).
  const samples = await until(
    () => meters.listSamples(db(), serverId),
    (list) => list.some((_, i) => list.slice(i, i + N).length === N && list.slice(i, i + N).every((x) => x.status === 'ok')),
  );
  const start = samples.findIndex((_, i) => samples.slice(i, i + N).length === N && samples.slice(i, i + N).every((x) => x.status === 'ok'));
  firstTick = samples[start]!.sampledAt.getTime();
  const from = firstTick;
  const to = firstTick + N * 1000;
  const res = await t.call('GET', `/v1/usage?from=${enc(from)}&to=${enc(to)}&granularity=hour`, { token: admin });
  expect(res.body).toMatchObject({ servers: expect.any(Array) });
  const server = res.body.servers.find((s: { server_id: string }) => s.server_id === serverId);
  expect(server).toMatchObject({ vcpus: 1, ram_mb: 128, disk_gb: 1, metered_until: null });
  expect(server.usage).toMatchObject({
    samples: N,
    missed_samples: 0,
    vcpu_seconds: `${N}.000`,
    ram_mb_seconds: `${128 * N}.000`,
    disk_gb_seconds: `${N}.000`,
    vcpu_hours: (N / 3600).toFixed(6),
  });
  // The volume (1 GiB) existed the whole window too; the total adds it.
  expect(res.body.total).toMatchObject({ vcpu_seconds: `${N}.000`, volume_gb_seconds: `${N}.000`, samples: N });
  // Periods add up to the total.
  const sum = res.body.periods.reduce((acc: number, p: { usage: { samples: number } }) => acc + p.usage.samples, 0);
  expect(sum).toBe(N);
});

test('a member reads only their project; a reader may read; bad input is a 400 naming the field', async () => {
  const project = (await t.call('POST', '/v1/projects', { token: admin, body: { name: 'usage-team' } })).body;
  const user = (await t.call('POST', '/v1/users', { token: admin, body: { name: 'usage-reader', password: 'reader-password' } })).body;
  await t.call('PUT', `/v1/projects/${project.id}/users/${user.id}/roles/reader`, { token: admin });
  const reader = await t.login('usage-reader', 'reader-password', 'usage-team');
  const q = `from=${enc(firstTick)}&to=${enc(firstTick + 1000)}`;
  const own = await t.call('GET', `/v1/usage?${q}`, { token: reader });
  expect(own.status).toBe(200);
  expect(own.body).toMatchObject({ project_id: project.id, servers: [] });
  expect((await t.call('GET', `/v1/usage?${q}&project_id=all`, { token: reader })).status).toBe(403);
  const adminProject = (await t.call('GET', '/v1/auth/tokens/current', { token: admin })).body.project.id;
  expect((await t.call('GET', `/v1/usage/cost?${q}&project_id=${adminProject}`, { token: reader })).status).toBe(403);
  const all = await t.call('GET', `/v1/usage?${q}&project_id=all`, { token: admin });
  expect(all.body.servers.map((s: { server_id: string }) => s.server_id)).toContain(serverId);
  const bad = await t.call('GET', `/v1/usage?from=yesterday&to=${enc(firstTick)}`, { token: admin });
  expect(bad.status).toBe(400);
  expect(JSON.stringify(bad.body)).toContain('from');
  const backwards = await t.call('GET', `/v1/usage?from=${enc(firstTick)}&to=${enc(firstTick - 1000)}`, { token: admin });
  expect(backwards.status).toBe(400);
  expect(JSON.stringify(backwards.body)).toContain('query.to');
  expect((await t.call('POST', '/v1/rates', { token: reader, body: { unit: 'vcpu_hour', currency: 'EUR', price: '1' } })).status).toBe(403);
  // The fuzzer's find: a rate from the year 17 (a valid date-time) was a 500, and so was every list after it.
  const ancient = await t.call('POST', '/v1/rates', { token: admin, body: { unit: 'volume_gb_hour', currency: 'DTN', price: '892240', effective_from: '0017-08-24T17:29:02.22895Z' } });
  expect(ancient.status).toBe(400);
  expect(JSON.stringify(ancient.body)).toContain('body.effective_from');
  expect((await t.call('GET', '/v1/rates', { token: admin })).status).toBe(200);
});

test('a deleted server stops being metered, with a final sample', async () => {
  expect((await t.call('DELETE', `/v1/servers/${serverId}`, { token: admin })).status).toBe(202);
  await waitGone(t, admin, serverId);
  // The delete flow's stop_metering wrote the final sample (no reading: the domain is gone by then).
  const after = await meters.listSamples(db(), serverId);
  expect(after.at(-1)).toMatchObject({ status: 'final', counters: { powerState: null, cpuTimeNs: null } });
  // No workflow meters the server on its own: only the host's sampler ran.
  const { connection, client } = await connectTemporal(t.config.temporal.address!, t.config.temporal.namespace);
  try {
    const own = await client.workflow.count(`WorkflowId = "meter:${serverId}"`);
    expect(own.count).toBe(0);
  } finally {
    await connection.close();
  }
  await new Promise((r) => setTimeout(r, 2500));
  expect(await meters.listSamples(db(), serverId)).toHaveLength(after.length);
  const meter = (await meters.allocation(db(), serverId))!;
  expect(meter.stoppedAt).not.toBeNull();
  // Allocation ends with metering: the whole life, to the millisecond.
  const life = meter.stoppedAt!.getTime() - meter.startedAt.getTime();
  const res = await t.call('GET', `/v1/usage?from=${enc(meter.startedAt.getTime() - 60_000)}&to=${enc(meter.stoppedAt!.getTime() + 60_000)}`, { token: admin });
  const server = res.body.servers.find((s: { server_id: string }) => s.server_id === serverId);
  expect(server.usage.vcpu_seconds).toBe((life / 1000).toFixed(3));
  expect(server.metered_until).toBe(meter.stoppedAt!.toISOString());
}, 60_000);

test('cost of a fixed period is exact and the same across calls and a restart', async () => {
  const from = enc(firstTick);
  const to = enc(firstTick + N * 1000);
  const effective = iso(firstTick - 3_600_000);
  const vcpu = await t.call('POST', '/v1/rates', { token: admin, body: { unit: 'vcpu_hour', currency: 'EUR', price: '3600.5', effective_from: effective } });
  expect(vcpu.status).toBe(201);
  expect(vcpu.body.price).toBe('3600.500000000');
  await t.call('POST', '/v1/rates', { token: admin, body: { unit: 'ram_gb_hour', currency: 'EUR', price: '1000', effective_from: effective } });
  // A rate starting before the latest one is refused (one timeline per unit and currency).
  const overlapping = await t.call('POST', '/v1/rates', { token: admin, body: { unit: 'vcpu_hour', currency: 'EUR', price: '1', effective_from: iso(firstTick - 7_200_000) } });
  expect(overlapping.status).toBe(409);

  const cost = async () => (await t.call('GET', `/v1/usage/cost?from=${from}&to=${to}`, { token: admin })).body;
  const first = await cost();
  // vCPU: 1 × 3 s at 3600.5 per hour = 3.000416… → 3.00; RAM: 128 MiB × 3 s = 384/(1024·3600) GiB·h at 1000 = 0.1041… → 0.10
  expect(first.lines.map((l: { unit: string; amount: string; amount_minor: number }) => [l.unit, l.amount, l.amount_minor])).toEqual([
    ['ram_gb_hour', '0.10', 10],
    ['vcpu_hour', '3.00', 300],
  ]);
  expect(first.totals).toEqual([{ currency: 'EUR', amount: '3.10', amount_minor: 310 }]);
  expect(await cost()).toEqual(first);

  await t.stop();
  t = await startTestCloud({ databaseUrl: database.url!, env });
  admin = await t.login();
  expect(await cost()).toEqual(first);
}, 120_000);

test('concurrent rate changes of one unit leave one timeline without overlaps', async () => {
  const base = Date.UTC(2030, 0, 1);
  const results = await Promise.all(
    Array.from({ length: 6 }, (_, i) =>
      t.call('POST', '/v1/rates', { token: admin, body: { unit: 'io_gb', currency: 'USD', price: `0.0${i + 1}`, effective_from: iso(base + i * 3_600_000) } }),
    ),
  );
  expect(results.every((r) => r.status === 201 || r.status === 409)).toBe(true);
  const timeline = ((await t.call('GET', '/v1/rates', { token: admin })).body.rates as Array<{ unit: string; currency: string; effective_from: string; effective_to: string | null }>)
    .filter((r) => r.unit === 'io_gb' && r.currency === 'USD');
  expect(timeline.length).toBe(results.filter((r) => r.status === 201).length);
  for (let i = 0; i < timeline.length - 1; i++) expect(timeline[i]!.effective_to).toBe(timeline[i + 1]!.effective_from);
  expect(timeline.at(-1)!.effective_to).toBeNull();
});
