/**
 * Two hosts for real, end to end over HTTP: a cloud without its built-in agent and two host agents,
 * each on its OWN test-driver state (test/support/hosts.ts, 'private'), so each host's census shows
 * what is on that host and nowhere else. Host A has more free RAM, so the scheduler tries it first.
 *
 *  - a boot failure on A reschedules to B: ACTIVE on B, nothing left on A
 *  - an existing volume pins the server to its host: a boot failure there is ERROR, B is never tried
 *  - every host fails: ERROR at boot, with a fault that names each host's failure
 */
import type { FaultPlan } from '../../activities/fault-injection';
import type { TestCloud } from '../support/cloud';
import type { TestHost } from '../support/hosts';
import { waitGone, waitSettled } from '../support/stratus-fixtures';
import { startTwoHostCloud } from '../support/two-host-cloud';

let t: TestCloud;
let admin: string;
let A: TestHost;
let B: TestHost;
let faultsA: FaultPlan;
let faultsB: FaultPlan;
let imageId: string;
let tiny: string;
let net: { networkId: string; subnetId: string };

beforeAll(async () => {
  ({ t, admin, A, B, faultsA, faultsB, imageId, tiny, net } = await startTwoHostCloud('10.40.0.0/24'));
}, 120_000);

afterEach(() => {
  faultsA.clear();
  faultsB.clear();
});

afterAll(async () => {
  await t?.stop();
});

const hostCensus = async () => ({ [A.name]: await A.census(), [B.name]: await B.census() });

/** Database rows that a server holds while it lives. */
async function dbCensus() {
  const db = t.cloud.db!;
  return {
    ports: (await db('ports').count<{ n: string }[]>({ n: '*' }))[0]!.n,
    claims: (await db('host_claims').count<{ n: string }[]>({ n: '*' }))[0]!.n,
    volumes: (await db('volumes').whereNot({ status: 'deleted' }).select('id', 'status', 'host')).map((r: unknown) => JSON.stringify(r)).sort(),
  };
}

function body(extra: Record<string, unknown> = {}) {
  return { name: 'two-hosts', flavor_id: tiny, image_id: imageId, networks: [{ network_id: net.networkId }], ...extra };
}

async function deleteAndWait(id: string): Promise<void> {
  expect((await t.call('DELETE', `/v1/servers/${id}`, { token: admin })).status).toBe(202);
  await waitGone(t, admin, id);
}

test('a boot failure on host A reschedules to host B: ACTIVE on B, nothing left on A', async () => {
  const hostsBefore = await hostCensus();
  const dbBefore = await dbCensus();
  faultsA.failAt('hypervisor.startDomain', 'fatal'); // after A defined the domain and made its disks
  const created = await t.call('POST', '/v1/servers', { token: admin, body: body({ volumes: [{ size_gb: 1, delete_on_termination: true }] }) });
  expect(created.status).toBe(202);
  const id = created.body.server.id as string;
  const server = await waitSettled(t, admin, id);
  expect(server).toMatchObject({ status: 'ACTIVE', host: B.name, fault: null });
  expect(faultsA.fired('hypervisor.startDomain')).toBe(1);

  const op = await t.call('GET', `/v1/operations/${created.body.operation.id}`, { token: admin });
  expect(op.body.progress.hosts).toEqual([A.name, B.name]);
  // A is as it was; B has the domain, its root disk and the new volume.
  const after = await hostCensus();
  expect(after[A.name]).toEqual(hostsBefore[A.name]);
  expect(after[B.name]!.domains).toEqual([...hostsBefore[B.name]!.domains, `stratus-${id}`].sort());
  expect(after[B.name]!.volumes).toEqual(expect.arrayContaining([`root-${id}`, `volume-${server.volumes_attached[0].id}`]));
  expect(await B.hypervisor.domainState(`stratus-${id}`)).toBe('running');
  const volume = await t.call('GET', `/v1/volumes/${server.volumes_attached[0].id}`, { token: admin });
  expect(volume.body).toMatchObject({ status: 'in-use', host: B.name, server_id: id });

  await deleteAndWait(id);
  expect(await hostCensus()).toEqual(hostsBefore);
  expect(await dbCensus()).toEqual(dbBefore);
}, 90_000);

test('an existing volume pins the server to its host; a boot failure there is ERROR and the other host is never tried', async () => {
  const hostsBefore = await hostCensus();
  // The volume goes to the host with the most free disk: make it B by failing nothing and asking
  // where it went, then pin to that host whichever it is.
  const vol = await t.call('POST', '/v1/volumes', { token: admin, body: { name: 'pin', size_gb: 1 } });
  expect(vol.status).toBe(202);
  const volumeId = vol.body.volume.id as string;
  const available = await t.waitFor(`/v1/volumes/${volumeId}`, admin, (r) => r.body.status === 'available');
  const pinned = available.body.host === A.name ? A : B;
  const other = pinned === A ? B : A;
  const pinnedFaults = pinned === A ? faultsA : faultsB;
  const otherFaults = pinned === A ? faultsB : faultsA;

  // 1. It boots on the volume's host (even when that host is not the scheduler's first pick).
  const ok = await t.call('POST', '/v1/servers', { token: admin, body: body({ name: 'pinned', volumes: [{ volume_id: volumeId }] }) });
  const okServer = await waitSettled(t, admin, ok.body.server.id);
  expect(okServer).toMatchObject({ status: 'ACTIVE', host: pinned.name });
  await deleteAndWait(okServer.id);
  await t.waitFor(`/v1/volumes/${volumeId}`, admin, (r) => r.body.status === 'available');

  // 2. A boot failure on the pinned host does not move the server away from its volume.
  pinnedFaults.failAt('hypervisor.startDomain', 'fatal');
  const bad = await t.call('POST', '/v1/servers', { token: admin, body: body({ name: 'pinned-fails', volumes: [{ volume_id: volumeId }] }) });
  const badServer = await waitSettled(t, admin, bad.body.server.id);
  expect(badServer.status).toBe('ERROR');
  expect(badServer.fault).toMatchObject({ step: 'boot', code: 'InjectedFault' });
  expect(otherFaults.checked('hypervisor.defineDomain') + otherFaults.checked('hypervisor.startDomain')).toBe(0);
  const op = await t.call('GET', `/v1/operations/${bad.body.operation.id}`, { token: admin });
  expect(op.body.progress.hosts).toEqual([pinned.name]);
  // The volume is free again and still on its host; neither host holds the server.
  const volAfter = await t.waitFor(`/v1/volumes/${volumeId}`, admin, (r) => r.body.status === 'available');
  expect(volAfter.body).toMatchObject({ host: pinned.name, server_id: null });
  await deleteAndWait(badServer.id);
  expect((await t.call('DELETE', `/v1/volumes/${volumeId}`, { token: admin })).status).toBe(202);
  await t.waitFor(`/v1/volumes/${volumeId}`, admin, (r) => r.status === 404);
  expect(await hostCensus()).toEqual(hostsBefore);
  expect(other.gone).toBe(false);
}, 90_000);

test('all hosts failed: ERROR at boot, with a fault naming each host and its failure', async () => {
  const hostsBefore = await hostCensus();
  const dbBefore = await dbCensus();
  faultsA.failAt('hypervisor.startDomain', 'fatal');
  faultsB.failAt('hypervisor.defineDomain', 'fatal');
  const created = await t.call('POST', '/v1/servers', { token: admin, body: body({ name: 'doomed', volumes: [{ size_gb: 1, delete_on_termination: true }] }) });
  const server = await waitSettled(t, admin, created.body.server.id);
  expect(server.status).toBe('ERROR');
  expect(server.fault).toMatchObject({ step: 'boot', code: 'InjectedFault' });
  expect(server.fault.message).toContain(A.name);
  expect(server.fault.message).toContain('hypervisor.startDomain');
  expect(server.fault.message).toContain(B.name);
  expect(server.fault.message).toContain('hypervisor.defineDomain');
  const op = await t.call('GET', `/v1/operations/${created.body.operation.id}`, { token: admin });
  // Both tried, in either order (the scheduler weighs down a host whose build failed recently).
  expect([...op.body.progress.hosts].sort()).toEqual([A.name, B.name].sort());
  expect(await hostCensus()).toEqual(hostsBefore);
  expect(await dbCensus()).toEqual(dbBefore);
  await deleteAndWait(server.id);
  expect(await dbCensus()).toEqual(dbBefore);
}, 90_000);
