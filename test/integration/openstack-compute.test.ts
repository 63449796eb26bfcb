/**
 * Nova v2.1 on the OpenStack surface, against a whole in-process cloud (real Temporal dev server,
 * PGlite, libvirt's test driver): flavors, server create with networks and block devices (new and
 * existing volumes) through the durable create workflow, list/detail/show in the shapes the clients
 * read (golden shapes: timestamp formats per field, numeric power_state, flavor.id at 2.1, numeric
 * address versions, fault on ERROR), power actions, console, volume attachments, delete, errors,
 * paging, and a server made through either API managed through the other
 * (../shared/notes/openstack-compat.md §7, §11, §12.7).
 */
import { FaultPlan } from '../../activities/fault-injection';
import { startServerFixture, stopServerFixture, type ServerFixture } from '../support/cloud-census';
import { keystoneLogin, osCall } from '../support/openstack';
import { waitGone, waitSettled } from '../support/stratus-fixtures';

const faults = new FaultPlan();
let { t, admin, hv, imageId, tiny, net } = {} as ServerFixture;
let nova: ReturnType<typeof osCall>;
let publicUrl: string;

const SECONDS_Z = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$/;
const MICROS = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}$/;

beforeAll(async () => {
  ({ t, admin, hv, imageId, tiny, net } = await startServerFixture({ faults, cidr: '10.30.0.0/24' }));
  nova = osCall(t, await keystoneLogin(t));
  publicUrl = t.config.api.publicUrl;
}, 120_000);

afterAll(() => stopServerFixture({ t, hv }));

const novaServer = (extra: Record<string, unknown> = {}) => ({
  server: { name: 'vm1', imageRef: imageId, flavorRef: tiny, min_count: 1, max_count: 1, networks: [{ uuid: net.networkId }], ...extra },
});

/** Polls GET /servers/{id} as `openstack server create --wait` does, until it leaves BUILD and its task. */
async function waitNova(id: string, timeoutMs = 60_000): Promise<any> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const res = await nova('GET', `/compute/v2.1/servers/${id}`);
    if (res.status === 200 && res.body.server.status !== 'BUILD' && res.body.server['OS-EXT-STS:task_state'] === null) return res.body.server;
    if (Date.now() > deadline) throw new Error(`server ${id} did not settle: ${JSON.stringify(res.body)}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

async function createNova(extra: Record<string, unknown> = {}): Promise<string> {
  const res = await nova('POST', '/compute/v2.1/servers', { body: novaServer(extra) });
  if (res.status !== 202) throw new Error(`create: ${res.status} ${JSON.stringify(res.body)}`);
  return res.body.server.id as string;
}

describe('flavors', () => {
  test('list, detail (with is_public=None), show; a name is a 404 (the SDK then lists)', async () => {
    const list = await nova('GET', '/compute/v2.1/flavors');
    expect(list.status).toBe(200);
    const tinyRow = list.body.flavors.find((f: any) => f.id === tiny);
    expect(tinyRow).toEqual({ id: tiny, name: 'm1.tiny', links: expect.arrayContaining([{ rel: 'self', href: `${publicUrl}/compute/v2.1/flavors/${tiny}` }]) });

    const detail = await nova('GET', '/compute/v2.1/flavors/detail?is_public=None');
    expect(detail.status).toBe(200);
    expect(detail.body.flavors.find((f: any) => f.id === tiny)).toMatchObject({
      name: 'm1.tiny',
      ram: expect.any(Number),
      vcpus: expect.any(Number),
      disk: expect.any(Number),
      'OS-FLV-EXT-DATA:ephemeral': 0,
      'os-flavor-access:is_public': true,
      'OS-FLV-DISABLED:disabled': false,
      swap: '',
    });

    const show = await nova('GET', `/compute/v2.1/flavors/${tiny}`);
    expect(show.body.flavor).toMatchObject({ id: tiny, name: 'm1.tiny' });
    expect((await nova('GET', `/compute/v2.1/flavors/${tiny}/os-extra_specs`)).body).toEqual({ extra_specs: {} });

    const byName = await nova('GET', '/compute/v2.1/flavors/m1.tiny');
    expect(byName.status).toBe(404);
    expect(byName.body).toEqual({ itemNotFound: { code: 404, message: 'Flavor m1.tiny could not be found.' } });
  });

  test('limit/marker pages with flavors_links', async () => {
    const all = (await nova('GET', '/compute/v2.1/flavors')).body.flavors as Array<{ id: string }>;
    expect(all.length).toBeGreaterThan(2);
    const first = await nova('GET', '/compute/v2.1/flavors/detail?limit=2');
    expect(first.body.flavors.map((f: any) => f.id)).toEqual(all.slice(0, 2).map((f) => f.id));
    const next = first.body.flavors_links[0].href as string;
    expect(next).toBe(`${publicUrl}/compute/v2.1/flavors/detail?limit=2&marker=${all[1]!.id}`);
    const second = await nova('GET', next.slice(publicUrl.length));
    expect(second.body.flavors[0].id).toBe(all[2]!.id);
  });
});

describe('servers', () => {
  test('create with a network and block devices (new and existing volume) → ACTIVE, in the full 2.1 shape', async () => {
    const existing = await t.call('POST', '/v1/volumes', { token: admin, body: { name: 'data-1', size_gb: 1 } });
    expect(existing.status).toBe(202);
    await t.waitFor(`/v1/volumes/${existing.body.volume.id}`, admin, (r) => r.body.status === 'available');
    const volumeId = existing.body.volume.id as string;

    const res = await nova('POST', '/compute/v2.1/servers', {
      body: novaServer({
        name: 'vm-bdm',
        metadata: { role: 'web' },
        key_name: null,
        availability_zone: null,
        block_device_mapping_v2: [
          // What `openstack server create --image` always sends.
          { uuid: imageId, boot_index: 0, source_type: 'image', destination_type: 'local', delete_on_termination: true },
          { source_type: 'blank', destination_type: 'volume', volume_size: 1, boot_index: null, delete_on_termination: true },
          { source_type: 'volume', destination_type: 'volume', uuid: volumeId, boot_index: 2, delete_on_termination: false },
        ],
      }),
    });
    expect(res.status).toBe(202);
    const id = res.body.server.id as string;
    expect(res.body.server).toEqual({
      id,
      links: [
        { rel: 'self', href: `${publicUrl}/compute/v2.1/servers/${id}` },
        { rel: 'bookmark', href: `${publicUrl}/compute/servers/${id}` },
      ],
      'OS-DCF:diskConfig': 'MANUAL',
      security_groups: [],
    });
    expect(res.headers.get('location')).toBe(`${publicUrl}/compute/v2.1/servers/${id}`);
    // The durable create workflow ran it: its operation is named, and it is the server's first instance action.
    const opId = res.headers.get('x-stratus-operation-id');
    const op = await t.call('GET', `/v1/operations/${opId}`, { token: admin });
    expect(op.body).toMatchObject({ kind: 'server.create', resource_id: id });
    expect(op.body.links.temporal_ui).toContain(`/workflows/server%3A${id}%3Acreate/`);

    const building = await nova('GET', `/compute/v2.1/servers/${id}`);
    expect(building.status).toBe(200);

    const s = await waitNova(id);
    expect(s).toMatchObject({
      id,
      name: 'vm-bdm',
      status: 'ACTIVE',
      tenant_id: expect.any(String),
      user_id: expect.any(String),
      metadata: { role: 'web' },
      key_name: null,
      accessIPv4: '',
      accessIPv6: '',
      image: { id: imageId, links: [{ rel: 'bookmark', href: `${publicUrl}/compute/images/${imageId}` }] },
      // No microversion header: 2.1, so the flavor is {id, links} (Terraform reads flavor.id).
      flavor: { id: tiny, links: [{ rel: 'bookmark', href: `${publicUrl}/compute/flavors/${tiny}` }] },
      'OS-EXT-STS:vm_state': 'active',
      'OS-EXT-STS:task_state': null,
      'OS-EXT-STS:power_state': 1,
      'OS-DCF:diskConfig': 'MANUAL',
      'OS-EXT-SRV-ATTR:instance_name': `stratus-${id}`,
      'OS-SRV-USG:terminated_at': null,
      security_groups: [],
    });
    expect(s.created).toMatch(SECONDS_Z);
    expect(s.updated).toMatch(SECONDS_Z);
    expect(s['OS-SRV-USG:launched_at']).toMatch(MICROS);
    expect(s.hostId).toMatch(/^[0-9a-f]{56}$/);
    expect(t.hostNames).toContain(s['OS-EXT-SRV-ATTR:host']);
    expect(s['OS-EXT-SRV-ATTR:hypervisor_hostname']).toBe(s['OS-EXT-SRV-ATTR:host']);
    expect(typeof s['OS-EXT-AZ:availability_zone']).toBe('string');
    expect(s).not.toHaveProperty('fault');
    const nets = Object.keys(s.addresses);
    expect(nets).toHaveLength(1);
    expect(s.addresses[nets[0]!]).toEqual([
      { version: 4, addr: expect.stringMatching(/^10\.30\.0\.\d+$/), 'OS-EXT-IPS:type': 'fixed', 'OS-EXT-IPS-MAC:mac_addr': expect.stringMatching(/^fa:16:3e(:[0-9a-f]{2}){3}$/) },
    ]);
    const attached = (s['os-extended-volumes:volumes_attached'] as Array<{ id: string }>).map((v) => v.id);
    expect(attached).toHaveLength(2);
    expect(attached).toContain(volumeId);

    // ips, and the same server through /v1.
    const ips = await nova('GET', `/compute/v2.1/servers/${id}/ips`);
    expect(ips.body.addresses[nets[0]!]).toEqual([{ version: 4, addr: s.addresses[nets[0]!][0].addr }]);
    expect((await nova('GET', `/compute/v2.1/servers/${id}/ips/${nets[0]}`)).body[nets[0]!]).toHaveLength(1);
    const v1 = await t.call('GET', `/v1/servers/${id}`, { token: admin });
    expect(v1.body).toMatchObject({ status: 'ACTIVE', name: 'vm-bdm' });
    expect(v1.body.volumes_attached.map((v: any) => v.id).sort()).toEqual([...attached].sort());

    const interfaces = (await nova('GET', `/compute/v2.1/servers/${id}/os-interface`)).body.interfaceAttachments;
    expect(interfaces).toEqual([
      expect.objectContaining({ net_id: net.networkId, mac_addr: s.addresses[nets[0]!][0]['OS-EXT-IPS-MAC:mac_addr'], fixed_ips: [expect.objectContaining({ ip_address: s.addresses[nets[0]!][0].addr })] }),
    ]);
    expect((await nova('GET', `/compute/v2.1/servers/${id}/os-security-groups`)).body).toEqual({ security_groups: [] });

    // Instance actions: the operations, request_id = operation id.
    const actions = await nova('GET', `/compute/v2.1/servers/${id}/os-instance-actions`);
    expect(actions.body.instanceActions).toEqual([expect.objectContaining({ action: 'create', request_id: opId, instance_uuid: id, message: null })]);
    const action = await nova('GET', `/compute/v2.1/servers/${id}/os-instance-actions/${opId}`);
    expect(action.body.instanceAction.events.map((e: any) => e.event)).toContain('boot');
    expect(action.body.instanceAction.events.every((e: any) => e.result === 'Success')).toBe(true);

    // Delete: 204, then 404; the volume the create made goes with it, the existing one is available again.
    const del = await nova('DELETE', `/compute/v2.1/servers/${id}`);
    expect(del.status).toBe(204);
    const deadline = Date.now() + 60_000;
    while ((await nova('GET', `/compute/v2.1/servers/${id}`)).status !== 404) {
      if (Date.now() > deadline) throw new Error('not deleted');
      await new Promise((r) => setTimeout(r, 200));
    }
    const gone = await nova('GET', `/compute/v2.1/servers/${id}`);
    expect(gone.body).toEqual({ itemNotFound: { code: 404, message: expect.stringContaining(id) } });
    expect((await t.call('GET', `/v1/volumes/${volumeId}`, { token: admin })).body.status).toBe('available');
    await t.call('DELETE', `/v1/volumes/${volumeId}`, { token: admin });
  }, 120_000);

  test('stop, start, reboot (202, SHUTOFF/ACTIVE, power_state 4/1); console output with length', async () => {
    const id = await createNova({ name: 'vm-power' });
    expect((await waitNova(id)).status).toBe('ACTIVE');

    const stop = await nova('POST', `/compute/v2.1/servers/${id}/action`, { body: { 'os-stop': null } });
    expect(stop.status).toBe(202);
    expect(stop.headers.get('x-stratus-operation-id')).toMatch(/^[0-9a-f-]{36}$/);
    expect(await waitNova(id)).toMatchObject({ status: 'SHUTOFF', 'OS-EXT-STS:vm_state': 'stopped', 'OS-EXT-STS:power_state': 4 });

    const again = await nova('POST', `/compute/v2.1/servers/${id}/action`, { body: { 'os-stop': null } });
    expect(again.status).toBe(409);
    expect(again.body.conflictingRequest).toMatchObject({ code: 409, message: expect.stringContaining('stop') });

    expect((await nova('POST', `/compute/v2.1/servers/${id}/action`, { body: { 'os-start': null } })).status).toBe(202);
    expect(await waitNova(id)).toMatchObject({ status: 'ACTIVE', 'OS-EXT-STS:power_state': 1 });

    const hard = await nova('POST', `/compute/v2.1/servers/${id}/action`, { body: { reboot: { type: 'HARD' } } });
    expect(hard.status).toBe(400);
    expect(hard.body.badRequest.message).toContain('SOFT');
    expect((await nova('POST', `/compute/v2.1/servers/${id}/action`, { body: { reboot: { type: 'SOFT' } } })).status).toBe(202);
    expect((await waitNova(id)).status).toBe('ACTIVE');

    const console = await nova('POST', `/compute/v2.1/servers/${id}/action`, { body: { 'os-getConsoleOutput': {} } });
    expect(console.status).toBe(200);
    expect(typeof console.body.output).toBe('string');
    const one = await nova('POST', `/compute/v2.1/servers/${id}/action`, { body: { 'os-getConsoleOutput': { length: 1 } } });
    expect(one.body.output.split('\n').filter(Boolean).length).toBeLessThanOrEqual(1);

    const unknown = await nova('POST', `/compute/v2.1/servers/${id}/action`, { body: { pause: null } });
    expect(unknown.body).toEqual({ badRequest: { code: 400, message: 'There is no such action: pause' } });

    const actions = (await nova('GET', `/compute/v2.1/servers/${id}/os-instance-actions`)).body.instanceActions.map((a: any) => a.action);
    expect(actions).toEqual(['reboot', 'start', 'stop', 'create']);

    expect((await nova('DELETE', `/compute/v2.1/servers/${id}`)).status).toBe(204);
    await waitGone(t, admin, id);
  }, 120_000);

  test('attach and detach a volume (os-volume_attachments with device null)', async () => {
    const id = await createNova({ name: 'vm-attach' });
    await waitNova(id);
    const vol = await t.call('POST', '/v1/volumes', { token: admin, body: { name: 'attach-me', size_gb: 1 } });
    const volumeId = vol.body.volume.id as string;
    await t.waitFor(`/v1/volumes/${volumeId}`, admin, (r) => r.body.status === 'available');

    const attach = await nova('POST', `/compute/v2.1/servers/${id}/os-volume_attachments`, { body: { volumeAttachment: { volumeId, device: null } } });
    expect(attach.status).toBe(200);
    expect(attach.body.volumeAttachment).toEqual({ id: volumeId, serverId: id, volumeId, device: '/dev/vdb' });
    await t.waitFor(`/v1/volumes/${volumeId}`, admin, (r) => r.body.status === 'in-use');

    const list = await nova('GET', `/compute/v2.1/servers/${id}/os-volume_attachments`);
    expect(list.body.volumeAttachments).toEqual([{ id: volumeId, serverId: id, volumeId, device: '/dev/vdb' }]);
    expect((await nova('GET', `/compute/v2.1/servers/${id}/os-volume_attachments/${volumeId}`)).body.volumeAttachment.device).toBe('/dev/vdb');

    const missing = await nova('POST', `/compute/v2.1/servers/${id}/os-volume_attachments`, {
      body: { volumeAttachment: { volumeId: '00000000-0000-4000-8000-000000000000', device: null } },
    });
    expect(missing.body).toEqual({ itemNotFound: { code: 404, message: 'Volume 00000000-0000-4000-8000-000000000000 could not be found.' } });

    const detach = await nova('DELETE', `/compute/v2.1/servers/${id}/os-volume_attachments/${volumeId}`);
    expect(detach.status).toBe(202);
    await t.waitFor(`/v1/volumes/${volumeId}`, admin, (r) => r.body.status === 'available');
    expect((await nova('GET', `/compute/v2.1/servers/${id}/os-volume_attachments`)).body.volumeAttachments).toEqual([]);

    await nova('DELETE', `/compute/v2.1/servers/${id}`);
    await waitGone(t, admin, id);
    await t.call('DELETE', `/v1/volumes/${volumeId}`, { token: admin });
  }, 120_000);

  test('ERROR carries a fault {code, message, created}', async () => {
    faults.failAt('hypervisor.startDomain', 'fatal');
    let id = '';
    try {
      id = await createNova({ name: 'vm-fail' });
      const s = await waitNova(id);
      expect(s).toMatchObject({ status: 'ERROR', 'OS-EXT-STS:vm_state': 'error', fault: { code: 500, message: expect.any(String) } });
      expect(s.fault.created).toMatch(SECONDS_Z);
      const actions = (await nova('GET', `/compute/v2.1/servers/${id}/os-instance-actions`)).body.instanceActions;
      expect(actions[0]).toMatchObject({ action: 'create', message: expect.any(String) });
    } finally {
      faults.clear();
    }
    expect((await nova('DELETE', `/compute/v2.1/servers/${id}`)).status).toBe(204);
    await waitGone(t, admin, id);
  }, 120_000);

  test('list and detail: name filter, status filter, limit/marker with servers_links', async () => {
    const ids = [await createNova({ name: 'page-a' }), await createNova({ name: 'page-b' }), await createNova({ name: 'page-c', networks: 'none' })];
    for (const id of ids) await waitNova(id);

    const list = await nova('GET', '/compute/v2.1/servers?name=page-');
    expect(list.body.servers.map((s: any) => s.name)).toEqual(['page-a', 'page-b', 'page-c']);
    expect(Object.keys(list.body.servers[0]).sort()).toEqual(['id', 'links', 'name']);
    expect((await nova('GET', '/compute/v2.1/servers/detail?name=page-b&deleted=False')).body.servers.map((s: any) => s.id)).toEqual([ids[1]]);
    expect((await nova('GET', '/compute/v2.1/servers/detail?name=page-&status=SHUTOFF')).body.servers).toEqual([]);
    expect((await nova('GET', '/compute/v2.1/servers/detail?name=page-&status=active')).body.servers).toHaveLength(3);
    const noNic = (await nova('GET', `/compute/v2.1/servers/${ids[2]}`)).body.server;
    expect(noNic.addresses).toEqual({});

    const first = await nova('GET', '/compute/v2.1/servers/detail?name=page-&limit=2');
    expect(first.body.servers.map((s: any) => s.id)).toEqual(ids.slice(0, 2));
    const next = first.body.servers_links[0];
    expect(next.rel).toBe('next');
    expect(next.href).toBe(`${publicUrl}/compute/v2.1/servers/detail?name=page-&limit=2&marker=${ids[1]}`);
    const second = await nova('GET', next.href.slice(publicUrl.length));
    expect(second.body.servers.map((s: any) => s.id)).toEqual([ids[2]]);
    expect(second.body).not.toHaveProperty('servers_links');

    const badMarker = await nova('GET', '/compute/v2.1/servers/detail?marker=00000000-0000-4000-8000-000000000000');
    expect(badMarker.body).toEqual({ badRequest: { code: 400, message: 'marker 00000000-0000-4000-8000-000000000000 not found' } });

    for (const id of ids) expect((await nova('DELETE', `/compute/v2.1/servers/${id}`)).status).toBe(204);
    for (const id of ids) await waitGone(t, admin, id);
  }, 120_000);

  test('a server made through /v1 is managed through Nova, and one made through Nova through /v1', async () => {
    const v1 = await t.call('POST', '/v1/servers', { token: admin, body: { name: 'from-v1', flavor_id: tiny, image_id: imageId, networks: [{ network_id: net.networkId }] } });
    expect(v1.status).toBe(202);
    const v1Id = v1.body.server.id as string;
    expect(await waitNova(v1Id)).toMatchObject({ name: 'from-v1', status: 'ACTIVE' });
    expect((await nova('GET', '/compute/v2.1/servers/detail?name=from-v1')).body.servers.map((s: any) => s.id)).toEqual([v1Id]);
    expect((await nova('POST', `/compute/v2.1/servers/${v1Id}/action`, { body: { 'os-stop': null } })).status).toBe(202);
    expect((await waitSettled(t, admin, v1Id)).status).toBe('SHUTOFF');
    expect((await nova('DELETE', `/compute/v2.1/servers/${v1Id}`)).status).toBe(204);
    await waitGone(t, admin, v1Id);

    const novaId = await createNova({ name: 'from-nova' });
    expect(await waitSettled(t, admin, novaId)).toMatchObject({ name: 'from-nova', status: 'ACTIVE' });
    expect((await t.call('POST', `/v1/servers/${novaId}/action`, { token: admin, body: { action: 'stop' } })).status).toBe(202);
    expect(await waitNova(novaId)).toMatchObject({ status: 'SHUTOFF' });
    expect((await t.call('DELETE', `/v1/servers/${novaId}`, { token: admin })).status).toBe(202);
    await waitGone(t, admin, novaId);
    expect((await nova('GET', `/compute/v2.1/servers/${novaId}`)).status).toBe(404);
  }, 120_000);

  test('an Idempotency-Key replays the same server', async () => {
    const headers = { 'idempotency-key': 'nova-key-1' };
    const a = await nova('POST', '/compute/v2.1/servers', { body: novaServer({ name: 'idem' }), headers });
    const b = await nova('POST', '/compute/v2.1/servers', { body: novaServer({ name: 'idem' }), headers });
    expect(a.status).toBe(202);
    expect(b.status).toBe(202);
    expect(b.body.server.id).toBe(a.body.server.id);
    expect(b.headers.get('x-stratus-operation-id')).toBe(a.headers.get('x-stratus-operation-id'));
    await waitNova(a.body.server.id);
    await nova('DELETE', `/compute/v2.1/servers/${a.body.server.id}`);
    await waitGone(t, admin, a.body.server.id);
  }, 120_000);
});

describe('errors, in Nova shapes', () => {
  const NOPE = '00000000-0000-4000-8000-000000000000';

  test.each([
    ['an unknown flavor', { flavorRef: 'nosuch' }, 'Flavor nosuch could not be found.'],
    ['an unknown image', { imageRef: NOPE }, `Image ${NOPE} could not be found.`],
    ['an unknown network', { networks: [{ uuid: NOPE }] }, `Network ${NOPE} could not be found.`],
    ['an unknown port', { networks: [{ port: NOPE }] }, `Port id ${NOPE} could not be found.`],
    ['an unknown volume', { block_device_mapping_v2: [{ source_type: 'volume', destination_type: 'volume', uuid: NOPE }] }, `Volume ${NOPE} could not be found.`],
  ])('create with %s: 400 badRequest', async (_what, extra, message) => {
    const res = await nova('POST', '/compute/v2.1/servers', { body: novaServer(extra) });
    expect(res.status).toBe(400);
    expect(res.body).toEqual({ badRequest: { code: 400, message } });
  });

  test.each([
    ['max_count 2', { max_count: 2 }, 'server-batches'],
    ['boot from volume', { block_device_mapping_v2: [{ uuid: 'x', source_type: 'image', destination_type: 'volume', boot_index: 0, volume_size: 1 }] }, 'not supported'],
    ['networks auto', { networks: 'auto' }, 'automatically'],
    ['no name', { name: null }, 'name'],
    ['a flavorRef that is not a string', { flavorRef: { id: 1 } }, 'flavorRef'],
  ])('create with %s: a clear 400', async (_what, extra, fragment) => {
    const res = await nova('POST', '/compute/v2.1/servers', { body: novaServer(extra) });
    expect(res.status).toBe(400);
    expect(res.body.badRequest.message).toContain(fragment);
  });

  test('unknown and invisible servers are 404 itemNotFound; no token is 401', async () => {
    for (const path of ['/compute/v2.1/servers/nosuch', `/compute/v2.1/servers/${NOPE}`]) {
      const res = await nova('GET', path);
      expect(res.status).toBe(404);
      expect(res.body.itemNotFound.code).toBe(404);
    }
    // Another project's member does not see the admin project's server.
    const id = await createNova({ name: 'private' });
    const project = await t.call('POST', '/v1/projects', { token: admin, body: { name: 'nova-other' } });
    const user = await t.call('POST', '/v1/users', { token: admin, body: { name: 'nova-other-user', password: 'other-password-1', default_project_id: project.body.id } });
    await t.call('PUT', `/v1/projects/${project.body.id}/users/${user.body.id}/roles/member`, { token: admin });
    const other = osCall(t, await keystoneLogin(t, 'nova-other-user', 'other-password-1', 'nova-other'));
    expect((await other('GET', `/compute/v2.1/servers/${id}`)).status).toBe(404);
    expect((await other('DELETE', `/compute/v2.1/servers/${id}`)).status).toBe(404);
    expect((await other('GET', '/compute/v2.1/servers/detail?name=private')).body.servers).toEqual([]);
    expect((await t.call('GET', '/compute/v2.1/servers')).status).toBe(401);
    await waitNova(id);
    await nova('DELETE', `/compute/v2.1/servers/${id}`);
    await waitGone(t, admin, id);
  }, 120_000);

  test('availability zones: the hosts\' zones, with hosts in the admin detail', async () => {
    const zones = (await nova('GET', '/compute/v2.1/os-availability-zone')).body.availabilityZoneInfo;
    expect(zones.length).toBeGreaterThan(0);
    expect(zones[0]).toMatchObject({ zoneName: expect.any(String), zoneState: { available: true }, hosts: null });
    const detail = (await nova('GET', '/compute/v2.1/os-availability-zone/detail')).body.availabilityZoneInfo;
    expect(Object.keys(detail[0].hosts)).toContain(t.config.host.name);
  });

  test('key pairs: none, and a name is a 404 the CLI reports', async () => {
    expect((await nova('GET', '/compute/v2.1/os-keypairs')).body).toEqual({ keypairs: [] });
    const res = await nova('GET', '/compute/v2.1/os-keypairs/mykey');
    expect(res.status).toBe(404);
    expect(res.body.itemNotFound.message).toContain('Keypair mykey not found');
  });

  test('a microversion above 2.1 is a 406; a malformed body a 400', async () => {
    const res = await nova('GET', '/compute/v2.1/servers', { headers: { 'openstack-api-version': 'compute 2.47' } });
    expect(res.status).toBe(406);
    const broken = await t.call('POST', '/compute/v2.1/servers', { headers: { 'x-auth-token': await keystoneLogin(t), 'content-type': 'application/json' }, body: 'nope' });
    expect(broken.status).toBe(400);
  });
});
