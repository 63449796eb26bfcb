/** Volumes (Cinder) over HTTP: create, attach, detach, delete, with the status machine enforced. */
import { openHypervisor, type Hypervisor } from '../../libvirt';
import { startTestCloud, type TestCloud } from '../support/cloud';
import { createNetwork, flavorId, uploadRawImage, waitGone, waitSettled } from '../support/stratus-fixtures';

let t: TestCloud;
let admin: string;
let hv: Hypervisor;
let serverA: string;
let serverB: string;

async function volumeSettled(id: string): Promise<any> {
  const res = await t.waitFor(`/v1/volumes/${id}`, admin, (r) => r.status === 200 && !['creating', 'reserved', 'attaching', 'detaching', 'deleting'].includes(r.body.status));
  return res.body;
}

async function makeServer(name: string, imageId: string, tiny: string, networkId: string): Promise<string> {
  const res = await t.call('POST', '/v1/servers', { token: admin, body: { name, flavor_id: tiny, image_id: imageId, networks: [{ network_id: networkId }] } });
  const server = await waitSettled(t, admin, res.body.server.id);
  expect(server.status).toBe('ACTIVE');
  return server.id;
}

beforeAll(async () => {
  t = await startTestCloud();
  admin = await t.login();
  hv = await openHypervisor('test:///default');
  const imageId = await uploadRawImage(t, admin);
  const tiny = await flavorId(t, admin);
  const { networkId } = await createNetwork(t, admin, '10.30.0.0/24');
  serverA = await makeServer('vol-a', imageId, tiny, networkId);
  serverB = await makeServer('vol-b', imageId, tiny, networkId);
}, 120_000);

afterAll(async () => {
  for (const id of [serverA, serverB]) {
    if (id) {
      await t.call('DELETE', `/v1/servers/${id}`, { token: admin });
      await waitGone(t, admin, id).catch(() => undefined);
    }
  }
  await hv?.close();
  await t?.stop();
});

test('create → available in the host pool; attach → in-use with a serial; detach → available; delete → gone', async () => {
  const created = await t.call('POST', '/v1/volumes', { token: admin, body: { name: 'data', size_gb: 2 } });
  expect(created.status).toBe(202);
  expect(created.body.volume).toMatchObject({ status: 'creating', size_gb: 2 });
  const id = created.body.volume.id as string;
  expect(await volumeSettled(id)).toMatchObject({ status: 'available', host: t.config.host.name });
  const poolVolume = `volume-${id}`;
  expect((await hv.listVolumes(t.config.host.storagePool)).map((v) => v.name)).toContain(poolVolume);

  expect((await t.call('POST', `/v1/servers/${serverA}/volumes`, { token: admin, body: { volume_id: id } })).status).toBe(202);
  const attached = await volumeSettled(id);
  expect(attached).toMatchObject({ status: 'in-use', server_id: serverA, device: 'vdb' });
  const serial = id.replace(/-/g, '').slice(0, 20);
  // The test driver cannot hot-plug: the disk goes into the persistent definition, found by serial.
  const disks = await hv.domainDisks(`stratus-${serverA}`, { inactive: true });
  expect(disks.map((d) => d.serial)).toContain(serial);
  expect((await t.call('GET', `/v1/servers/${serverA}`, { token: admin })).body.volumes_attached).toEqual([{ id, device: 'vdb' }]);

  // In use: it cannot be deleted or attached elsewhere.
  expect((await t.call('DELETE', `/v1/volumes/${id}`, { token: admin })).status).toBe(409);
  expect((await t.call('POST', `/v1/servers/${serverB}/volumes`, { token: admin, body: { volume_id: id } })).status).toBe(409);

  expect((await t.call('DELETE', `/v1/servers/${serverA}/volumes/${id}`, { token: admin })).status).toBe(202);
  expect(await volumeSettled(id)).toMatchObject({ status: 'available', server_id: null, device: null });
  expect((await hv.domainDisks(`stratus-${serverA}`, { inactive: true })).map((d) => d.serial)).not.toContain(serial);

  expect((await t.call('DELETE', `/v1/volumes/${id}`, { token: admin })).status).toBe(202);
  await t.waitFor(`/v1/volumes/${id}`, admin, (r) => r.status === 404);
  expect((await hv.listVolumes(t.config.host.storagePool)).map((v) => v.name)).not.toContain(poolVolume);
}, 60_000);

test('two servers race to attach one volume: exactly one wins, the other is 409', async () => {
  const created = await t.call('POST', '/v1/volumes', { token: admin, body: { name: 'contested', size_gb: 1 } });
  const id = created.body.volume.id as string;
  await volumeSettled(id);
  const results = await Promise.all(
    [serverA, serverB, serverA, serverB].map((s) => t.call('POST', `/v1/servers/${s}/volumes`, { token: admin, body: { volume_id: id } })),
  );
  expect(results.map((r) => r.status).sort()).toEqual([202, 409, 409, 409]);
  const attached = await volumeSettled(id);
  expect(attached.status).toBe('in-use');
  await t.call('DELETE', `/v1/servers/${attached.server_id}/volumes/${id}`, { token: admin });
  await volumeSettled(id);
  await t.call('DELETE', `/v1/volumes/${id}`, { token: admin });
}, 60_000);

test('a server created with an existing volume uses it; deleting the server leaves it available', async () => {
  const created = await t.call('POST', '/v1/volumes', { token: admin, body: { name: 'keep', size_gb: 1 } });
  const id = created.body.volume.id as string;
  await volumeSettled(id);
  const imageId = (await t.call('GET', '/v1/images', { token: admin })).body.images[0].id;
  const tiny = await flavorId(t, admin);
  const res = await t.call('POST', '/v1/servers', { token: admin, body: { name: 'with-vol', flavor_id: tiny, image_id: imageId, volumes: [{ volume_id: id }] } });
  const server = await waitSettled(t, admin, res.body.server.id);
  expect(server.status).toBe('ACTIVE');
  expect((await t.call('GET', `/v1/volumes/${id}`, { token: admin })).body).toMatchObject({ status: 'in-use', server_id: server.id });
  // In use by that server: a second server cannot take it.
  const second = await t.call('POST', '/v1/servers', { token: admin, body: { name: 'thief', flavor_id: tiny, image_id: imageId, volumes: [{ volume_id: id }] } });
  expect(second.status).toBe(409);
  await t.call('DELETE', `/v1/servers/${server.id}`, { token: admin });
  await waitGone(t, admin, server.id);
  expect((await t.call('GET', `/v1/volumes/${id}`, { token: admin })).body).toMatchObject({ status: 'available', server_id: null });
  await t.call('DELETE', `/v1/volumes/${id}`, { token: admin });
}, 60_000);

test('bad input: size 0, unknown image, unknown volume → 4xx naming the field', async () => {
  const zero = await t.call('POST', '/v1/volumes', { token: admin, body: { name: 'z', size_gb: 0 } });
  expect(zero.status).toBe(400);
  expect(zero.body.fields[0].field).toBe('body.size_gb');
  const img = await t.call('POST', '/v1/volumes', { token: admin, body: { name: 'z', size_gb: 1, image_id: '00000000-0000-4000-8000-000000000000' } });
  expect(img.status).toBe(404);
  expect(img.body.fields[0].field).toBe('body.image_id');
  const attach = await t.call('POST', `/v1/servers/${serverA}/volumes`, { token: admin, body: { volume_id: '00000000-0000-4000-8000-000000000000' } });
  expect(attach.status).toBe(404);
});
