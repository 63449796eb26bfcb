/**
 * Server batches through the API of a whole test cloud (Temporal dev server, PGlite, libvirt's test
 * driver): faults in some members, retry of only those, cancel with an empty census, min_count with
 * rollback, and bad input naming the field.
 */
import { FaultPlan } from '../../activities/fault-injection';
import { openHypervisor, type Hypervisor } from '../../libvirt';
import { census } from '../support/libvirt-census';
import { startTestCloud, type TestCloud } from '../support/cloud';
import { createNetwork, flavorId, uploadRawImage } from '../support/stratus-fixtures';

let t: TestCloud;
let admin: string;
let hv: Hypervisor;
const faults = new FaultPlan();
let template: { name: string; flavor_id: string; image_id: string; networks: Array<{ network_id: string }> };

beforeAll(async () => {
  // Room for a few batches at once on the one test host.
  t = await startTestCloud({ faults, env: { STRATUS_HOST_VCPUS: '512', STRATUS_HOST_RAM_MB: '131072', STRATUS_HOST_DISK_GB: '4096', STRATUS_QUOTA_SERVERS: '-1', STRATUS_QUOTA_VCPUS: '-1', STRATUS_QUOTA_RAM_MB: '-1', STRATUS_QUOTA_PORTS: '-1', STRATUS_QUOTA_VOLUMES: '-1', STRATUS_QUOTA_VOLUME_GB: '-1' } });
  admin = await t.login();
  hv = await openHypervisor('test:///default');
  const net = await createNetwork(t, admin, '10.40.0.0/22');
  template = { name: 'node', flavor_id: await flavorId(t, admin), image_id: await uploadRawImage(t, admin), networks: [{ network_id: net.networkId }] };
}, 120_000);

afterAll(async () => {
  await hv?.close();
  await t?.stop();
});

afterEach(() => faults.clear());

/** Waits until the batch leaves running/cancelling; returns it. */
async function settled(id: string, timeoutMs = 150_000): Promise<any> {
  const res = await t.waitFor(`/v1/server-batches/${id}`, admin, (r) => r.status === 200 && !['running', 'cancelling', 'deleting'].includes(r.body.status), timeoutMs);
  return res.body;
}

/** Everything members can hold: ports, claims, volumes, domains and disks of this batch's servers. */
async function holdings(batchId: string) {
  const db = t.cloud.db!;
  const ids = (await db('servers').where({ batch_id: batchId }).select('id')).map((r: { id: string }) => r.id);
  const onHost = await census(hv, t.config.host.storagePool, { only: (name) => ids.some((id: string) => name.includes(id)) });
  return {
    ports: Number((await db('ports').whereIn('device_id', ids).count({ n: '*' }))[0]!.n),
    claims: Number((await db('host_claims').whereIn('server_id', ids).count({ n: '*' }))[0]!.n),
    volumes: Number((await db('volumes').whereIn('server_id', ids).whereNot('status', 'deleted').count({ n: '*' }))[0]!.n),
    domains: onHost.domains.length,
    disks: onHost.volumes.length,
  };
}

test('a batch of 30 with faults in 5 members ends 25 ACTIVE and 5 ERROR; retry ends 30 ACTIVE, 30 distinct servers', async () => {
  faults.failAt('allocate_port', 'fatal', 5);
  const created = await t.call('POST', '/v1/server-batches', { token: admin, body: { template, count: 30, max_parallel: 10 } });
  expect(created.status).toBe(202);
  expect(created.body.batch).toMatchObject({ name: 'node', count: 30, min_count: 30, max_parallel: 10, status: 'running', name_pattern: 'node-{n}' });
  const id = created.body.batch.id as string;

  const first = await settled(id);
  expect(first.status).toBe('failed');
  expect(first.counts).toEqual({ pending: 0, building: 0, active: 25, shutoff: 0, error: 5, deleted: 0 });
  expect(first.fault.code).toBe('BatchBelowMinCount');

  // Members page through, each with its state and fault.
  const pages: any[] = [];
  let marker: string | null = null;
  do {
    const page: any = (await t.call('GET', `/v1/server-batches/${id}?limit=10${marker ? `&marker=${marker}` : ''}`, { token: admin })).body;
    pages.push(...page.members.items);
    marker = page.members.next;
  } while (marker);
  expect(pages).toHaveLength(30);
  const failed = pages.filter((m) => m.status === 'ERROR');
  expect(failed).toHaveLength(5);
  for (const m of failed) expect(m.fault).toMatchObject({ step: 'allocate_port', code: 'InjectedFault' });
  expect(new Set(pages.map((m) => m.name)).size).toBe(30);
  const listed = (await t.call('GET', `/v1/servers?batch_id=${id}&limit=100`, { token: admin })).body.servers;
  expect(listed).toHaveLength(30);
  expect(listed.every((s: { batch_id: string }) => s.batch_id === id)).toBe(true);
  const activeBefore = pages.filter((m) => m.status === 'ACTIVE').map((m) => m.server_id).sort();

  const retry = await t.call('POST', `/v1/server-batches/${id}/retry`, { token: admin });
  expect(retry.status).toBe(202);
  expect(retry.body.operation.kind).toBe('batch.retry');
  const second = await settled(id);
  expect(second.status).toBe('succeeded');
  expect(second.counts).toMatchObject({ active: 30, error: 0, building: 0 });
  const rows = await t.cloud.db!('servers').where({ batch_id: id }).select('id', 'status', 'batch_index');
  expect(rows).toHaveLength(30);
  expect(new Set(rows.map((r: { id: string }) => r.id)).size).toBe(30);
  // The 25 that succeeded the first time were not created again: one create operation each.
  for (const sid of activeBefore) {
    const creates = await t.cloud.db!('operations').where({ resource_id: sid, kind: 'server.create' });
    expect(creates).toHaveLength(1);
  }
  expect((await holdings(id)).ports).toBe(30);
  expect((await t.call('POST', `/v1/server-batches/${id}/retry`, { token: admin })).status).toBe(409);

  // Deleting the batch deletes every member, and leaves nothing behind.
  const del = await t.call('DELETE', `/v1/server-batches/${id}`, { token: admin });
  expect(del.status).toBe(202);
  expect((await settled(id)).status).toBe('deleted');
  expect(await holdings(id)).toEqual({ ports: 0, claims: 0, volumes: 0, domains: 0, disks: 0 });
}, 300_000);

test('cancel in the middle of a batch of 50 leaves an empty census', async () => {
  const created = await t.call('POST', '/v1/server-batches', { token: admin, body: { template: { ...template, name: 'cancelme', volumes: [{ size_gb: 1, delete_on_termination: true }] }, count: 50, max_parallel: 5 } });
  expect(created.status).toBe(202);
  const id = created.body.batch.id as string;
  await t.waitFor(`/v1/server-batches/${id}`, admin, (r) => r.body.counts.active >= 3, 120_000);
  const cancel = await t.call('POST', `/v1/server-batches/${id}/cancel`, { token: admin });
  expect(cancel.status).toBe(202);
  expect(cancel.body.batch.status).toBe('cancelling');
  const done = await settled(id);
  expect(done.status).toBe('cancelled');
  expect(done.counts.pending).toBeGreaterThan(0); // it stopped launching
  expect(done.counts.active + done.counts.building + done.counts.error).toBe(0);
  expect(await holdings(id)).toEqual({ ports: 0, claims: 0, volumes: 0, domains: 0, disks: 0 });
  expect((await t.call('POST', `/v1/server-batches/${id}/cancel`, { token: admin })).status).toBe(409);
}, 300_000);

test('below min_count with rollback_on_failure: the succeeded members are deleted, the failed keep their faults', async () => {
  faults.failAt('allocate_port', 'fatal', 3);
  const created = await t.call('POST', '/v1/server-batches', { token: admin, body: { template: { ...template, name: 'all-or-nothing' }, count: 6, min_count: 5, rollback_on_failure: true } });
  const id = created.body.batch.id as string;
  const done = await settled(id);
  expect(done.status).toBe('failed');
  expect(done.fault.message).toMatch(/3 of 6 members ACTIVE, fewer than min_count 5/);
  expect(done.counts).toMatchObject({ active: 0, error: 3, deleted: 3 });
  expect(await holdings(id)).toEqual({ ports: 0, claims: 0, volumes: 0, domains: 0, disks: 0 });
}, 180_000);

test('a batch counts against the quota member by member; an availability zone places every member', async () => {
  const project = (await t.call('POST', '/v1/projects', { token: admin, body: { name: 'quota-team' } })).body;
  const user = (await t.call('POST', '/v1/users', { token: admin, body: { name: 'quota-user', password: 'quota-user-pw' } })).body;
  await t.call('PUT', `/v1/projects/${project.id}/users/${user.id}/roles/member`, { token: admin });
  expect((await t.call('PUT', `/v1/projects/${project.id}/quota`, { token: admin, body: { servers: 3 } })).status).toBe(200);
  const member = await t.login('quota-user', 'quota-user-pw', 'quota-team');
  const net = (await t.call('POST', '/v1/networks', { token: member, body: { name: 'qnet' } })).body;
  await t.call('POST', '/v1/subnets', { token: member, body: { network_id: net.id, cidr: '10.44.0.0/24' } });
  const zone = (await t.call('GET', '/v1/hosts', { token: admin })).body.hosts[0].availability_zone as string;
  const imageId = await uploadRawImage(t, member);
  const body = { template: { ...template, name: 'q', image_id: imageId, networks: [{ network_id: net.id }], availability_zone: zone }, count: 5, min_count: 3 };
  const created = await t.call('POST', '/v1/server-batches', { token: member, body });
  expect(created.status).toBe(202);
  const done = await t.waitFor(`/v1/server-batches/${created.body.batch.id}`, member, (r) => r.body.status !== 'running', 120_000);
  expect(done.body.status).toBe('succeeded');
  expect(done.body.counts).toMatchObject({ active: 3, error: 2 });
  const failed = done.body.members.items.filter((m: { status: string }) => m.status === 'ERROR');
  for (const m of failed) expect(m.fault).toMatchObject({ code: 'QuotaExceeded' });
  const members = (await t.call('GET', `/v1/servers?batch_id=${created.body.batch.id}`, { token: member })).body.servers;
  expect(members.every((s: { availability_zone: string }) => s.availability_zone === zone)).toBe(true);
  const quota = (await t.call('GET', `/v1/projects/${project.id}/quota`, { token: member })).body;
  expect(quota.servers).toMatchObject({ limit: 3, used: 3, reserved: 0 });
  await t.call('DELETE', `/v1/server-batches/${created.body.batch.id}`, { token: member });
  await t.waitFor(`/v1/server-batches/${created.body.batch.id}`, member, (r) => r.body.status === 'deleted', 120_000);
  expect((await t.call('GET', `/v1/projects/${project.id}/quota`, { token: member })).body.servers).toMatchObject({ used: 0, reserved: 0 });
}, 180_000);

test('bad batches are 4xx naming the field, and create nothing', async () => {
  const before = Number((await t.cloud.db!('server_batches').count({ n: '*' }))[0]!.n);
  const port = await t.call('POST', '/v1/server-batches', { token: admin, body: { template: { ...template, networks: [{ port_id: '00000000-0000-4000-8000-000000000000' }] }, count: 2 } });
  expect(port.status).toBe(400);
  expect(port.body.fields[0].field).toBe('body.template.networks[0].port_id');
  const flavor = await t.call('POST', '/v1/server-batches', { token: admin, body: { template: { ...template, flavor_id: '00000000-0000-4000-8000-000000000000' }, count: 2 } });
  expect(flavor.status).toBe(400);
  expect(flavor.body.fields[0].field).toBe('body.template.flavor_id');
  const image = await t.call('POST', '/v1/server-batches', { token: admin, body: { template: { ...template, image_id: '00000000-0000-4000-8000-000000000000' }, count: 2 } });
  expect(image.status).toBeGreaterThanOrEqual(400);
  expect(image.status).toBeLessThan(500);
  expect(image.body.fields[0].field).toMatch(/^body\.template\.image_id/);
  const min = await t.call('POST', '/v1/server-batches', { token: admin, body: { template, count: 2, min_count: 3 } });
  expect(min.status).toBe(400);
  expect(min.body.fields[0].field).toBe('body.min_count');
  const big = await t.call('POST', '/v1/server-batches', { token: admin, body: { template, count: 10001 } });
  expect(big.status).toBe(400);
  expect(big.body.fields[0].field).toBe('body.count');
  expect(Number((await t.cloud.db!('server_batches').count({ n: '*' }))[0]!.n)).toBe(before);
  expect((await t.call('GET', '/v1/server-batches/00000000-0000-4000-8000-000000000000', { token: admin })).status).toBe(404);
});
