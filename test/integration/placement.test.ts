/**
 * Placement across three hosts and project quotas, end to end over HTTP: three host agents (each
 * its own task queue and private test-driver state), the cloud's conductor and API on PostgreSQL
 * (row locks for real), the real Temporal dev server.
 */
import { randomBytes } from 'node:crypto';
import { startTestCloud, type TestCloud } from '../support/cloud';
import { engines, type TestDatabase } from '../support/databases';
import { flavorId, uploadRawImage, waitSettled } from '../support/stratus-fixtures';

let database: TestDatabase;
let t: TestCloud;
let admin: string;
let imageId: string;
let tiny: string;
let adminProject: string;
let hostNames: string[];

/** Each host: 8 pCPU (32 vCPU at 4.0), 1024 MiB RAM (8 × m1.tiny), 100 GiB disk. */
const HOST_ENV = { STRATUS_HOST_VCPUS: '8', STRATUS_HOST_RAM_MB: '1024', STRATUS_HOST_DISK_GB: '100' };

beforeAll(async () => {
  const suffix = randomBytes(2).toString('hex');
  database = await engines.find((e) => e.name === 'postgres')!.create({ migrate: false });
  // 5 s heartbeats (marked down after 15 s without one): under a burst of 50 creates on 2 loaded cores, 1 s heartbeats
  // (alive for 3 s) can fall behind and every host look down.
  t = await startTestCloud({
    databaseUrl: database.url!,
    env: { STRATUS_HOST_HEARTBEAT_SECONDS: '5' },
    builtInAgent: false,
    hosts: ['a', 'b', 'c'].map((n) => ({ name: `pl-${suffix}-${n}`, env: HOST_ENV, heartbeatSeconds: 5 })),
  });
  hostNames = t.hostNames;
  admin = await t.login();
  imageId = await uploadRawImage(t, admin);
  tiny = await flavorId(t, admin);
  const token = await t.call('GET', '/v1/auth/tokens/current', { token: admin });
  adminProject = token.body.project.id;
  // Every host registered before the first decision.
  await t.waitFor('/v1/hosts', admin, (r) => r.status === 200 && hostNames.every((h) => r.body.hosts.some((x: { name: string; alive: boolean }) => x.name === h && x.alive)));
}, 120_000);

afterAll(async () => {
  await t?.stop();
  await database?.dispose();
});

async function create(body: Record<string, unknown> = {}): Promise<{ status: number; id?: string; body: any }> {
  const res = await t.call('POST', '/v1/servers', { token: admin, body: { name: `s-${randomBytes(3).toString('hex')}`, flavor_id: tiny, image_id: imageId, ...body } });
  return { status: res.status, body: res.body, ...(res.status === 202 ? { id: res.body.server.id as string } : {}) };
}

async function createSettled(count: number, body: Record<string, unknown> = {}): Promise<any[]> {
  const created = await Promise.all(Array.from({ length: count }, () => create(body)));
  for (const c of created) expect(c.status).toBe(202);
  return Promise.all(created.map((c) => waitSettled(t, admin, c.id!, 90_000)));
}

/** Deletes every live server of the test and waits until each is gone. */
async function deleteAll(): Promise<void> {
  const { body } = await t.call('GET', '/v1/servers?limit=1000', { token: admin });
  const live = (body.servers as Array<{ id: string }>).map((s) => s.id);
  for (const id of live) expect((await t.call('DELETE', `/v1/servers/${id}`, { token: admin })).status).toBe(202);
  await Promise.all(live.map((id) => t.waitFor(`/v1/servers/${id}`, admin, (r) => r.status === 404, 60_000)));
}

async function setQuota(limits: Record<string, number>): Promise<any> {
  const res = await t.call('PUT', `/v1/projects/${adminProject}/quota`, { token: admin, body: limits });
  expect(res.status).toBe(200);
  return res.body;
}

async function patchHost(name: string, body: Record<string, unknown>): Promise<any> {
  const res = await t.call('PATCH', `/v1/hosts/${name}`, { token: admin, body });
  expect(res.status).toBe(200);
  return res.body;
}

test('GET /v1/hosts shows capacity × ratio, claimed, free and state; PATCH changes settings; bad input is 400/404', async () => {
  const res = await t.call('GET', '/v1/hosts', { token: admin });
  const host = (res.body.hosts as any[]).find((h) => h.name === hostNames[0]);
  expect(host).toMatchObject({
    enabled: true,
    state: 'up',
    availability_zone: 'nova',
    allocation_ratios: { cpu: 4, ram: 1, disk: 1 },
    capacity: { vcpus: 32, ram_mb: 1024, disk_gb: 100 },
    claimed: { vcpus: 0, ram_mb: 0, disk_gb: 0 },
    free: { vcpus: 32, ram_mb: 1024, disk_gb: 100 },
  });
  const patched = await patchHost(hostNames[0]!, { enabled: false, cpu_allocation_ratio: 2 });
  expect(patched).toMatchObject({ enabled: false, state: 'disabled', capacity: { vcpus: 16 } });
  const restored = await patchHost(hostNames[0]!, { enabled: true, cpu_allocation_ratio: null });
  expect(restored).toMatchObject({ enabled: true, state: 'up', capacity: { vcpus: 32 } });
  expect((await t.call('PATCH', `/v1/hosts/${hostNames[0]}`, { token: admin, body: { ram_allocation_ratio: 0 } })).status).toBe(400);
  expect((await t.call('PATCH', '/v1/hosts/no-such-host', { token: admin, body: { enabled: false } })).status).toBe(404);
});

test('spread: three servers on three empty hosts land on three hosts; the decision is recorded with its weights', async () => {
  const servers = [];
  for (let i = 0; i < 3; i += 1) servers.push((await createSettled(1))[0]);
  expect(servers.map((s) => s.status)).toEqual(['ACTIVE', 'ACTIVE', 'ACTIVE']);
  expect(new Set(servers.map((s) => s.host)).size).toBe(3);
  expect(servers[2].placement).toMatchObject({ host: servers[2].host, weights: expect.arrayContaining([expect.objectContaining({ host: servers[2].host, parts: expect.objectContaining({ ram: expect.any(Number) }) })]) });
  await deleteAll();
}, 120_000);

test('anti-affinity: 4 concurrent members → 3 on 3 hosts, the 4th fails naming the policy; affinity: all on one host', async () => {
  const anti = await t.call('POST', '/v1/server-groups', { token: admin, body: { name: 'web', policy: 'anti-affinity' } });
  expect(anti.status).toBe(201);
  const members = await createSettled(4, { group_id: anti.body.id });
  const placed = members.filter((s) => s.status === 'ACTIVE');
  expect(placed).toHaveLength(3);
  expect(new Set(placed.map((s) => s.host)).size).toBe(3);
  const fourth = members.find((s) => s.status === 'ERROR');
  expect(fourth.fault).toMatchObject({ step: 'schedule', code: 'NoValidHost' });
  for (const h of hostNames) expect(fourth.fault.message).toContain(`${h}: server_group: anti-affinity`);
  const group = await t.call('GET', `/v1/server-groups/${anti.body.id}`, { token: admin });
  expect(group.body.members).toHaveLength(4);
  expect(group.body.members.filter((m: { host: string | null }) => m.host !== null)).toHaveLength(3);
  // The operation carries the same explanation.
  const op = await t.call('GET', fourth.links.operation.replace(t.config.api.publicUrl, ''), { token: admin });
  expect(op.body.error.message).toContain('anti-affinity');

  const aff = await t.call('POST', '/v1/server-groups', { token: admin, body: { name: 'db', policy: 'affinity' } });
  const together = await createSettled(3, { group_id: aff.body.id });
  expect(together.map((s) => s.status)).toEqual(['ACTIVE', 'ACTIVE', 'ACTIVE']);
  expect(new Set(together.map((s) => s.host)).size).toBe(1);

  expect((await t.call('DELETE', `/v1/server-groups/${aff.body.id}`, { token: admin })).status).toBe(409);
  await deleteAll();
  expect((await t.call('DELETE', `/v1/server-groups/${aff.body.id}`, { token: admin })).status).toBe(204);
  expect((await t.call('POST', '/v1/servers', { token: admin, body: { name: 'x', flavor_id: tiny, image_id: imageId, group_id: aff.body.id } })).body).toMatchObject({
    status: 400,
    fields: [{ field: 'body.group_id' }],
  });
}, 180_000);

test('availability zone: servers asking for a zone land only in it; an unknown zone is a 400', async () => {
  const zoneHost = hostNames[2]!;
  await patchHost(zoneHost, { availability_zone: 'az-east' });
  try {
    const inZone = await createSettled(3, { availability_zone: 'az-east' });
    expect(inZone.map((s) => [s.status, s.host, s.availability_zone])).toEqual(Array(3).fill(['ACTIVE', zoneHost, 'az-east']));
    const bad = await create({ availability_zone: 'az-nowhere' });
    expect(bad.status).toBe(400);
    expect(bad.body.fields).toEqual([{ field: 'body.availability_zone', message: 'unknown availability zone' }]);

    // Volumes go through the same scheduler: a zone's volume lands on the zone's host.
    const vol = await t.call('POST', '/v1/volumes', { token: admin, body: { name: 'v-east', size_gb: 1, availability_zone: 'az-east' } });
    expect(vol.status).toBe(202);
    const ready = await t.waitFor(`/v1/volumes/${vol.body.volume.id}`, admin, (r) => r.body.status !== 'creating', 60_000);
    expect(ready.body).toMatchObject({ status: 'available', host: zoneHost, availability_zone: 'az-east' });
    expect((await t.call('GET', `/v1/projects/${adminProject}/quota`, { token: admin })).body.volumes).toMatchObject({ used: 1, reserved: 0 });
    expect((await t.call('DELETE', `/v1/volumes/${vol.body.volume.id}`, { token: admin })).status).toBe(202);
    await t.waitFor(`/v1/volumes/${vol.body.volume.id}`, admin, (r) => r.status === 404, 60_000);
    expect((await t.call('GET', `/v1/projects/${adminProject}/quota`, { token: admin })).body.volumes).toMatchObject({ used: 0, reserved: 0 });
  } finally {
    await deleteAll();
    await patchHost(zoneHost, { availability_zone: 'nova' });
  }
}, 120_000);

test('50 concurrent creates against room for 20: exactly 20 ACTIVE, 30 ERROR with explanations, no host over capacity × ratio', async () => {
  await setQuota({ servers: -1, vcpus: -1, ram_mb: -1 });
  // RAM ratios make room for 7 + 7 + 6 m1.tiny (128 MiB): 896, 896 and 768 MiB of 1024.
  await patchHost(hostNames[0]!, { ram_allocation_ratio: 0.875 });
  await patchHost(hostNames[1]!, { ram_allocation_ratio: 0.875 });
  await patchHost(hostNames[2]!, { ram_allocation_ratio: 0.75 });
  try {
    const settled = await createSettled(50);
    const active = settled.filter((s) => s.status === 'ACTIVE');
    const failed = settled.filter((s) => s.status === 'ERROR');
    expect(active).toHaveLength(20);
    expect(failed).toHaveLength(30);
    for (const f of failed) {
      expect(f.fault).toMatchObject({ step: 'schedule', code: 'NoValidHost' });
      for (const h of hostNames) expect(f.fault.message).toMatch(new RegExp(`${h}: (ram: free \\d+ MiB < 128 MiB requested|claim)`));
    }
    const rows = await t.cloud.db!('hosts')
      .leftJoin('host_claims', 'host_claims.host_name', 'hosts.name')
      .whereIn('hosts.name', hostNames)
      .groupBy('hosts.name', 'hosts.vcpus', 'hosts.ram_mb', 'hosts.disk_gb', 'hosts.ram_allocation_ratio')
      .select(
        'hosts.name',
        'hosts.vcpus',
        'hosts.ram_mb',
        'hosts.disk_gb',
        'hosts.ram_allocation_ratio',
        t.cloud.db!.raw('coalesce(sum(host_claims.vcpus), 0)::int as claimed_vcpus'),
        t.cloud.db!.raw('coalesce(sum(host_claims.ram_mb), 0)::int as claimed_ram'),
        t.cloud.db!.raw('coalesce(sum(host_claims.disk_gb), 0)::int as claimed_disk'),
      );
    expect(rows).toHaveLength(3);
    let total = 0;
    for (const r of rows) {
      expect(r.claimed_vcpus).toBeLessThanOrEqual(r.vcpus * 4);
      expect(r.claimed_ram).toBeLessThanOrEqual(Math.floor(r.ram_mb * Number(r.ram_allocation_ratio)));
      expect(r.claimed_disk).toBeLessThanOrEqual(r.disk_gb);
      total += r.claimed_ram;
    }
    expect(total).toBe(20 * 128);
  } finally {
    await deleteAll();
    for (const h of hostNames) await patchHost(h, { ram_allocation_ratio: null });
  }
}, 240_000);

test('quota: 20 concurrent creates against 5 servers → exactly 5 ACTIVE, 15 × 403 naming servers; used and reserved exact after a failure, cancels and deletes', async () => {
  const quota = await setQuota({ servers: 5, vcpus: -1, ram_mb: -1 });
  expect(quota.servers).toEqual({ limit: 5, used: 0, reserved: 0 });
  const attempts = await Promise.all(Array.from({ length: 20 }, () => create()));
  const accepted = attempts.filter((a) => a.status === 202);
  const refused = attempts.filter((a) => a.status === 403);
  expect(accepted).toHaveLength(5);
  expect(refused).toHaveLength(15);
  for (const r of refused) {
    expect(r.body).toMatchObject({ status: 403, fields: [{ field: 'servers' }] });
    expect(r.body.detail).toContain('quota exceeded for servers');
  }
  const get = async () => (await t.call('GET', `/v1/projects/${adminProject}/quota`, { token: admin })).body;
  // While they build, each holds its share: reserved until ACTIVE, then used; never more, never less.
  const building = (await get()).servers;
  expect(building.used + building.reserved).toBe(5);
  const settled = await Promise.all(accepted.map((a) => waitSettled(t, admin, a.id!, 90_000)));
  expect(settled.map((s) => s.status)).toEqual(Array(5).fill('ACTIVE'));
  expect(await get()).toMatchObject({ servers: { limit: 5, used: 5, reserved: 0 }, vcpus: { used: 5, reserved: 0 }, ram_mb: { used: 640, reserved: 0 } });

  // A failed create gives its reservation back: m1.medium (4096 MiB) fits no 1024 MiB host.
  await setQuota({ servers: 6 });
  const medium = await flavorId(t, admin, 'm1.medium');
  const [failed] = await createSettled(1, { flavor_id: medium });
  expect(failed.status).toBe('ERROR');
  expect(failed.fault.code).toBe('NoValidHost');
  expect(await get()).toMatchObject({ servers: { used: 5, reserved: 0 }, vcpus: { used: 5, reserved: 0 }, ram_mb: { used: 640, reserved: 0 } });

  // Cancelled creates (DELETE while in BUILD) give their reservations back too.
  await setQuota({ servers: 8 });
  const cancelled = await Promise.all([create(), create()]);
  for (const c of cancelled) expect((await t.call('DELETE', `/v1/servers/${c.id}`, { token: admin })).status).toBe(202);
  for (const c of cancelled) await t.waitFor(`/v1/servers/${c.id}`, admin, (r) => r.status === 404, 60_000);
  expect(await get()).toMatchObject({ servers: { used: 5, reserved: 0 }, vcpus: { used: 5, reserved: 0 }, ram_mb: { used: 640, reserved: 0 } });

  // Deletes give usage back, the failed server's included (it holds nothing any more).
  for (const s of [settled[0], settled[1], failed]) expect((await t.call('DELETE', `/v1/servers/${s.id}`, { token: admin })).status).toBe(202);
  for (const s of [settled[0], settled[1], failed]) await t.waitFor(`/v1/servers/${s.id}`, admin, (r) => r.status === 404, 60_000);
  expect(await get()).toMatchObject({ servers: { used: 3, reserved: 0 }, vcpus: { used: 3, reserved: 0 }, ram_mb: { used: 384, reserved: 0 } });
  await deleteAll();
  expect(await get()).toMatchObject({ servers: { used: 0, reserved: 0 }, vcpus: { used: 0, reserved: 0 }, ram_mb: { used: 0, reserved: 0 } });

  // Quota API: a reader of another project cannot see it; bad limits are 400.
  expect((await t.call('PUT', `/v1/projects/${adminProject}/quota`, { token: admin, body: { servers: -2 } })).status).toBe(400);
}, 240_000);
