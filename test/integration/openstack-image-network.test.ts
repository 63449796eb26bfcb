/**
 * Glance v2 and Neutron v2.0 on the OpenStack surface, against a real test cloud: the requests
 * python-openstackclient/openstacksdk make (../shared/notes/openstack-compat.md §4, §5, §9) and the
 * shapes gophercloud parses (timestamps per G11, status case per G10, Glance's relative `next`
 * per G15, exact Neutron filters per G14). What one API creates, the other sees.
 */
import { createHash } from 'node:crypto';
import { startTestCloud, type TestCloud } from '../support/cloud';
import { keystoneLogin, osCall } from '../support/openstack';

let t: TestCloud;
let os: ReturnType<typeof osCall>;
let token: string;
let v1: string;

const Z_SECONDS = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const PATCH = 'application/openstack-images-v2.1-json-patch';

beforeAll(async () => {
  t = await startTestCloud();
  token = await keystoneLogin(t);
  os = osCall(t, token);
  v1 = await t.login();
}, 90_000);

afterAll(async () => {
  await t?.stop();
});

const md5 = (b: Buffer) => createHash('md5').update(b).digest('hex');
const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** `PUT /image/v2/images/{id}/file` as the SDK sends it: octet-stream, no Accept; a stream is sent chunked. */
async function putFile(id: string, data: Buffer | ReadableStream<Uint8Array>) {
  const res = await fetch(`${t.baseUrl}/image/v2/images/${id}/file`, {
    method: 'PUT',
    headers: { 'content-type': 'application/octet-stream', accept: '', 'x-auth-token': token },
    body: data,
    ...(data instanceof ReadableStream ? { duplex: 'half' } : {}),
  } as RequestInit);
  return { status: res.status, text: await res.text() };
}

async function createImage(body: Record<string, unknown>) {
  const res = await os('POST', '/image/v2/images', { body });
  expect(res.status).toBe(201);
  return res.body;
}

describe('Glance v2', () => {
  test('create (the CLI body) → upload → show active with size and hashes → download equals the bytes → delete', async () => {
    const data = Buffer.from('stratus raw image bytes '.repeat(1000));
    const image = await createImage({
      container_format: 'bare',
      name: 'tiny',
      disk_format: 'raw',
      'owner_specified.openstack.md5': '',
      'owner_specified.openstack.sha256': '',
      'owner_specified.openstack.object': 'images/tiny',
    });
    expect(image).toMatchObject({
      id: expect.stringMatching(UUID),
      name: 'tiny',
      status: 'queued',
      disk_format: 'raw',
      container_format: 'bare',
      visibility: 'private',
      size: null,
      checksum: null,
      os_hash_algo: null,
      os_hash_value: null,
      min_disk: 0,
      min_ram: 0,
      protected: false,
      os_hidden: false,
      tags: [],
      'owner_specified.openstack.object': 'images/tiny',
      'owner_specified.openstack.md5': '',
      file: `/v2/images/${image.id}/file`,
      self: `/v2/images/${image.id}`,
      schema: '/v2/schemas/image',
    });
    expect(image.created_at).toMatch(Z_SECONDS);
    expect(image.updated_at).toMatch(Z_SECONDS);

    // No data yet: Glance answers 204 to a download.
    expect((await os('GET', `/image/v2/images/${image.id}/file`)).status).toBe(204);

    const up = await putFile(image.id, data);
    expect(up).toEqual({ status: 204, text: '' });
    const shown = await os('GET', `/image/v2/images/${image.id}`);
    expect(shown.status).toBe(200);
    expect(shown.body).toMatchObject({
      status: 'active',
      size: data.length,
      virtual_size: data.length,
      checksum: md5(data),
      os_hash_algo: 'sha256',
      os_hash_value: sha256(data),
    });
    // A second upload is a conflict.
    expect((await putFile(image.id, data)).status).toBe(409);

    const down = await fetch(`${t.baseUrl}/image/v2/images/${image.id}/file`, { headers: { 'x-auth-token': token } });
    expect(down.status).toBe(200);
    expect(down.headers.get('content-md5')).toBe(md5(data));
    expect(Buffer.from(await down.arrayBuffer()).equals(data)).toBe(true);

    // Visible through /v1 too.
    const viaV1 = await t.call('GET', `/v1/images/${image.id}`, { token: v1 });
    expect(viaV1.body).toMatchObject({ name: 'tiny', status: 'active', size_bytes: data.length, checksum_sha256: sha256(data) });

    expect((await os('DELETE', `/image/v2/images/${image.id}`)).status).toBe(204);
    expect((await os('GET', `/image/v2/images/${image.id}`)).status).toBe(404);
  });

  test('a chunked upload (unknown length) of a qcow2 image', async () => {
    const image = await createImage({ name: 'chunked', disk_format: 'qcow2' });
    const head = Buffer.from([0x51, 0x46, 0x49, 0xfb]);
    const rest = Buffer.alloc(300_000, 7);
    const all = Buffer.concat([head, rest, rest]);
    const parts = [head, rest, rest];
    const stream = new ReadableStream<Uint8Array>({
      pull(c) {
        const next = parts.shift();
        if (next) c.enqueue(next);
        else c.close();
      },
    });
    expect((await putFile(image.id, stream)).status).toBe(204);
    const shown = (await os('GET', `/image/v2/images/${image.id}`)).body;
    expect(shown).toMatchObject({ status: 'active', size: all.length, checksum: md5(all), os_hash_value: sha256(all), virtual_size: null });
    // Data that contradicts disk_format is a 400 and leaves the image queued.
    const raw = await createImage({ name: 'liar', disk_format: 'raw' });
    const refused = await putFile(raw.id, all);
    expect(refused.status).toBe(400);
    expect(JSON.parse(refused.text)).toMatchObject({ error: { code: 400, title: 'Bad Request', message: expect.stringContaining('qcow2') } });
    expect((await os('GET', `/image/v2/images/${raw.id}`)).body.status).toBe('queued');
  });

  test('find by name: a name or an unknown id is a 404 in the Glance error shape; ?name= finds it', async () => {
    await createImage({ name: 'findme', disk_format: 'raw' });
    for (const path of ['/image/v2/images/findme', '/image/v2/images/00000000-0000-4000-8000-000000000000']) {
      const res = await os('GET', path);
      expect(res.status).toBe(404);
      expect(res.body).toEqual({ error: { code: 404, title: 'Not Found', message: expect.any(String) } });
    }
    const byName = await os('GET', '/image/v2/images?name=findme');
    expect(byName.body.images.map((i: any) => i.name)).toEqual(['findme']);
    expect((await os('GET', '/image/v2/images?os_hidden=True&name=findme')).body.images).toEqual([]);
  });

  test('list pages with limit/marker and a version-relative next; id=in:, status and visibility filter', async () => {
    const made = [];
    for (const n of [1, 2, 3, 4, 5]) made.push(await createImage({ name: `page-${n}`, disk_format: 'raw', tags: ['paging'] }));
    const seen: string[] = [];
    let url: string | undefined = '/v2/images?limit=2';
    let pages = 0;
    while (url) {
      const res = await os('GET', `/image${url}`);
      expect(res.status).toBe(200);
      expect(res.body).toMatchObject({ schema: '/v2/schemas/images', first: '/v2/images' });
      seen.push(...res.body.images.map((i: any) => i.id));
      url = res.body.next;
      if (url) expect(url).toMatch(/^\/v2\/images\?(.*&)?marker=[0-9a-f-]{36}/);
      pages += 1;
      expect(pages).toBeLessThan(20);
    }
    for (const m of made) expect(seen).toContain(m.id);
    expect(new Set(seen).size).toBe(seen.length);

    const two = await os('GET', `/image/v2/images?id=in:${made[0].id},${made[3].id}`);
    expect(two.body.images.map((i: any) => i.id).sort()).toEqual([made[0].id, made[3].id].sort());
    expect((await os('GET', '/image/v2/images?status=active&name=page-1')).body.images).toEqual([]);
    expect((await os('GET', '/image/v2/images?status=queued&name=page-1')).body.images).toHaveLength(1);
    expect((await os('GET', '/image/v2/images?visibility=shared')).body.images).toEqual([]);
    // Tolerated: sort keys, odd values.
    expect((await os('GET', '/image/v2/images?sort_key=name&sort_dir=asc&member_status=all')).status).toBe(200);
    // An unknown marker is a 400, not an endless loop.
    expect((await os('GET', '/image/v2/images?marker=00000000-0000-4000-8000-000000000000')).status).toBe(400);
  });

  test('PATCH with a JSON patch: name, min_disk, min_ram, tags, protected and custom properties; protected images refuse delete (403)', async () => {
    const image = await createImage({ name: 'patchme', disk_format: 'raw', kernel_args: 'quiet' });
    const patch = (ops: unknown, type = PATCH) => os('PATCH', `/image/v2/images/${image.id}`, { body: JSON.stringify(ops), headers: { 'content-type': type } });
    const res = await patch([
      { op: 'replace', path: '/name', value: 'patched' },
      { op: 'replace', path: '/min_disk', value: 2 },
      { op: 'replace', path: '/min_ram', value: 256 },
      { op: 'add', path: '/tags/-', value: 'blue' },
      { op: 'add', path: '/os_distro', value: 'cirros' },
      { op: 'remove', path: '/kernel_args' },
      { op: 'replace', path: '/protected', value: true },
    ]);
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ name: 'patched', min_disk: 2, min_ram: 256, tags: ['blue'], os_distro: 'cirros', protected: true });
    expect(res.body).not.toHaveProperty('kernel_args');
    expect((await os('GET', `/image/v2/images/${image.id}`)).body).toMatchObject({ name: 'patched', os_distro: 'cirros' });

    expect((await patch([{ op: 'replace', path: '/status', value: 'active' }])).status).toBe(403);
    expect((await patch([{ op: 'remove', path: '/nope' }])).status).toBe(409);
    expect((await patch([{ op: 'replace', path: '/name', value: 'x' }], 'application/json')).status).toBe(415);

    const refused = await os('DELETE', `/image/v2/images/${image.id}`);
    expect(refused.status).toBe(403);
    expect(refused.body.error.code).toBe(403);
    expect((await patch([{ op: 'replace', path: '/protected', value: false }])).status).toBe(200);
    expect((await os('DELETE', `/image/v2/images/${image.id}`)).status).toBe(204);
  });

  test('create refuses what Stratus cannot honour, readably', async () => {
    for (const body of [
      { name: 'x', disk_format: 'vmdk' },
      { name: 'x', disk_format: 'raw', container_format: 'ovf' },
      { name: 'x', disk_format: 'raw', visibility: 'community' },
      { name: 'x' },
    ]) {
      const res = await os('POST', '/image/v2/images', { body });
      expect(res.status).toBe(400);
      expect(res.body.error.message).toMatch(/Stratus/);
    }
    expect((await os('POST', '/image/v2/images', { body: { name: 'x', disk_format: 'raw', status: 'active' } })).status).toBe(403);
    // An image made through /v1 is listed here.
    const viaV1 = await t.call('POST', '/v1/images', { token: v1, body: { name: 'from-v1', disk_format: 'raw' } });
    expect((await os('GET', '/image/v2/images?name=from-v1')).body.images[0]).toMatchObject({ id: viaV1.body.id, status: 'queued' });
  });
});

describe('Neutron v2.0', () => {
  test('network create → subnet create (by the CLI bodies) → shapes, find by name, filters', async () => {
    const created = await os('POST', '/networking/v2.0/networks', { body: { network: { name: 'net-a', admin_state_up: true } } });
    expect(created.status).toBe(201);
    const net = created.body.network;
    expect(net).toMatchObject({
      id: expect.stringMatching(UUID),
      name: 'net-a',
      status: 'ACTIVE',
      admin_state_up: true,
      shared: false,
      'router:external': false,
      subnets: [],
      mtu: expect.any(Number),
      project_id: expect.stringMatching(UUID),
      revision_number: expect.any(Number),
      tags: [],
    });
    expect(net.tenant_id).toBe(net.project_id);
    expect(net.created_at).toMatch(Z_SECONDS);
    expect(net.updated_at).toMatch(Z_SECONDS);

    // The CLI's find by name: GET /networks/<name> is a NeutronError 404, then ?name=.
    const miss = await os('GET', '/networking/v2.0/networks/net-a');
    expect(miss.status).toBe(404);
    expect(miss.body).toEqual({ NeutronError: { type: 'NetworkNotFound', message: expect.any(String), detail: '' } });
    const found = await os('GET', '/networking/v2.0/networks?name=net-a');
    expect(found.body.networks.map((n: any) => n.id)).toEqual([net.id]);

    const sub = await os('POST', '/networking/v2.0/subnets', { body: { subnet: { ip_version: 4, name: 'sub-a', network_id: net.id, cidr: '10.30.0.0/24' } } });
    expect(sub.status).toBe(201);
    expect(sub.body.subnet).toMatchObject({
      name: 'sub-a',
      network_id: net.id,
      cidr: '10.30.0.0/24',
      ip_version: 4,
      gateway_ip: '10.30.0.1',
      allocation_pools: [{ start: '10.30.0.2', end: '10.30.0.254' }],
      enable_dhcp: true,
      dns_nameservers: [],
      host_routes: [],
      project_id: net.project_id,
      tenant_id: net.project_id,
    });
    expect((await os('GET', `/networking/v2.0/networks/${net.id}`)).body.network.subnets).toEqual([sub.body.subnet.id]);
    expect((await os('GET', `/networking/v2.0/subnets/${sub.body.subnet.id}`)).body.subnet.name).toBe('sub-a');
    expect((await os('GET', '/networking/v2.0/subnets?name=sub-a')).body.subnets).toHaveLength(1);
    expect((await os('GET', `/networking/v2.0/subnets?network_id=${net.id}&cidr=10.30.0.0/24`)).body.subnets).toHaveLength(1);
    expect((await os('GET', `/networking/v2.0/subnets/sub-a?network_id=${net.id}`)).status).toBe(404);

    // Exact filters, as Terraform needs: status=ACTIVE&name=, and values Stratus never has list nothing.
    expect((await os('GET', '/networking/v2.0/networks?status=ACTIVE&name=net-a')).body.networks).toHaveLength(1);
    expect((await os('GET', '/networking/v2.0/networks?name=net')).body.networks).toEqual([]);
    expect((await os('GET', '/networking/v2.0/networks?status=DOWN&name=net-a')).body.networks).toEqual([]);
    expect((await os('GET', '/networking/v2.0/networks?shared=true')).body.networks).toEqual([]);
    expect((await os('GET', '/networking/v2.0/networks?router:external=false&name=net-a')).body.networks).toHaveLength(1);
    expect((await os('GET', `/networking/v2.0/networks?id=${net.id}&fields=id&fields=name`)).body.networks).toHaveLength(1);
    expect((await os('GET', `/networking/v2.0/networks?project_id=${net.project_id}&name=net-a`)).body.networks).toHaveLength(1);

    // Created here, seen by /v1; a network with a subnet and no ports deletes (subnets go with it).
    expect((await t.call('GET', `/v1/networks/${net.id}`, { token: v1 })).body).toMatchObject({ name: 'net-a', subnets: [sub.body.subnet.id] });
  });

  test('ports: create with and without a fixed IP, filters (fixed_ips, device_id, network_id), delete; in-use network is 409', async () => {
    const net = (await os('POST', '/networking/v2.0/networks', { body: { network: { name: 'net-p' } } })).body.network;
    const sub = (await os('POST', '/networking/v2.0/subnets', { body: { subnet: { ip_version: 4, name: 'sub-p', network_id: net.id, cidr: '10.31.0.0/24' } } })).body.subnet;
    const p1 = await os('POST', '/networking/v2.0/ports', { body: { port: { network_id: net.id, name: 'p1' } } });
    expect(p1.status).toBe(201);
    expect(p1.body.port).toMatchObject({
      name: 'p1',
      network_id: net.id,
      mac_address: expect.stringMatching(/^fa:16:3e(:[0-9a-f]{2}){3}$/),
      fixed_ips: [{ subnet_id: sub.id, ip_address: '10.31.0.2' }],
      device_id: '',
      device_owner: '',
      status: 'DOWN',
      admin_state_up: true,
      security_groups: [],
      project_id: net.project_id,
      tenant_id: net.project_id,
    });
    expect(p1.body.port.created_at).toMatch(Z_SECONDS);
    const p2 = await os('POST', '/networking/v2.0/ports', { body: { port: { network_id: net.id, fixed_ips: [{ subnet_id: sub.id, ip_address: '10.31.0.50' }] } } });
    expect(p2.status).toBe(201);
    expect(p2.body.port.fixed_ips).toEqual([{ subnet_id: sub.id, ip_address: '10.31.0.50' }]);
    const taken = await os('POST', '/networking/v2.0/ports', { body: { port: { network_id: net.id, fixed_ips: [{ ip_address: '10.31.0.50' }] } } });
    expect(taken.status).toBe(409);
    expect(taken.body.NeutronError.type).toBe('IpAddressInUse');
    const outside = await os('POST', '/networking/v2.0/ports', { body: { port: { network_id: net.id, fixed_ips: [{ ip_address: '10.99.0.5' }] } } });
    expect(outside.status).toBe(400);
    expect(outside.body.NeutronError.type).toBe('InvalidInput');

    // The CLI's `port list` (fields ignored), and the filters clients send.
    const listed = await os('GET', '/networking/v2.0/ports?fields=id&fields=name&fields=mac_address&fields=fixed_ips&fields=status');
    expect(listed.body.ports.map((p: any) => p.id)).toEqual(expect.arrayContaining([p1.body.port.id, p2.body.port.id]));
    const byIp = await os('GET', `/networking/v2.0/ports?fixed_ips=${encodeURIComponent('ip_address=10.31.0.50')}`);
    expect(byIp.body.ports.map((p: any) => p.id)).toEqual([p2.body.port.id]);
    const bySubnet = await os('GET', `/networking/v2.0/ports?fixed_ips=${encodeURIComponent(`subnet_id=${sub.id}`)}&name=p1`);
    expect(bySubnet.body.ports.map((p: any) => p.id)).toEqual([p1.body.port.id]);
    expect((await os('GET', `/networking/v2.0/ports?network_id=${net.id}`)).body.ports).toHaveLength(2);
    expect((await os('GET', '/networking/v2.0/ports?device_id=00000000-0000-4000-8000-000000000000')).body.ports).toEqual([]);
    expect((await os('GET', '/networking/v2.0/ports?device_id=not-a-uuid')).body.ports).toEqual([]);
    expect((await os('GET', `/networking/v2.0/ports?network_id=${net.id}&device_owner=compute:nova`)).body.ports).toEqual([]);

    // A port made through /v1 shows here, and the other way round.
    const viaV1 = await t.call('POST', '/v1/ports', { token: v1, body: { network_id: net.id } });
    expect(viaV1.status).toBe(201);
    expect((await os('GET', `/networking/v2.0/ports/${viaV1.body.id}`)).body.port.fixed_ips[0].ip_address).toBe(viaV1.body.fixed_ip);
    expect((await t.call('GET', `/v1/ports/${p1.body.port.id}`, { token: v1 })).body.fixed_ip).toBe('10.31.0.2');

    const inUse = await os('DELETE', `/networking/v2.0/networks/${net.id}`);
    expect(inUse.status).toBe(409);
    expect(inUse.body.NeutronError).toMatchObject({ type: 'NetworkInUse', message: expect.stringContaining('ports') });
    const subInUse = await os('DELETE', `/networking/v2.0/subnets/${sub.id}`);
    expect(subInUse.status).toBe(409);
    expect(subInUse.body.NeutronError.type).toBe('SubnetInUse');

    for (const id of [p1.body.port.id, p2.body.port.id, viaV1.body.id]) expect((await os('DELETE', `/networking/v2.0/ports/${id}`)).status).toBe(204);
    expect((await os('GET', `/networking/v2.0/ports/${p1.body.port.id}`)).body.NeutronError.type).toBe('PortNotFound');
    expect((await os('DELETE', `/networking/v2.0/subnets/${sub.id}`)).status).toBe(204);
    expect((await os('DELETE', `/networking/v2.0/networks/${net.id}`)).status).toBe(204);
    expect((await os('GET', `/networking/v2.0/networks/${net.id}`)).status).toBe(404);
  });

  test('a server created through /v1 on a Neutron network: its port is compute:nova with its device_id, and cannot be deleted', async () => {
    const net = (await os('POST', '/networking/v2.0/networks', { body: { network: { name: 'net-s' } } })).body.network;
    await os('POST', '/networking/v2.0/subnets', { body: { subnet: { ip_version: 4, name: 'sub-s', network_id: net.id, cidr: '10.32.0.0/24' } } });
    const image = await createImage({ name: 'boot', disk_format: 'raw' });
    expect((await putFile(image.id, Buffer.alloc(1024 * 1024, 1))).status).toBe(204);
    const flavors = (await t.call('GET', '/v1/flavors', { token: v1 })).body.flavors;
    const tiny = flavors.find((f: any) => f.name === 'm1.tiny').id;
    const created = await t.call('POST', '/v1/servers', {
      token: v1,
      body: { name: 'vm-n', flavor_id: tiny, image_id: image.id, networks: [{ network_id: net.id }] },
    });
    expect(created.status).toBe(202);
    const server = created.body.server;
    const done = await t.waitFor(`/v1/servers/${server.id}`, v1, (r) => r.body.status === 'ACTIVE' || r.body.status === 'ERROR', 60_000);
    expect(done.body.status).toBe('ACTIVE');
    const ports = (await os('GET', `/networking/v2.0/ports?device_id=${server.id}`)).body.ports;
    expect(ports).toHaveLength(1);
    expect(ports[0]).toMatchObject({ device_id: server.id, device_owner: 'compute:nova', network_id: net.id });
    // Status as the network service keeps it (upper case, as Neutron writes it), the same as /v1's.
    const viaV1 = (await t.call('GET', `/v1/ports/${ports[0].id}`, { token: v1 })).body;
    expect(ports[0].status).toBe(viaV1.status);
    expect(['ACTIVE', 'DOWN']).toContain(ports[0].status);
    expect((await os('GET', `/networking/v2.0/ports?device_owner=compute:nova&network_id=${net.id}`)).body.ports).toHaveLength(1);
    const del = await os('DELETE', `/networking/v2.0/ports/${ports[0].id}`);
    expect(del.status).toBe(409);
    expect(del.body.NeutronError.type).toBe('PortInUse');
  }, 90_000);

  test('PUT renames networks, subnets and ports; other changes are refused readably', async () => {
    const net = (await os('POST', '/networking/v2.0/networks', { body: { network: { name: 'old-net' } } })).body.network;
    const sub = (await os('POST', '/networking/v2.0/subnets', { body: { subnet: { network_id: net.id, cidr: '10.33.0.0/24' } } })).body.subnet;
    expect(sub.name).toBe('');
    const port = (await os('POST', '/networking/v2.0/ports', { body: { port: { network_id: net.id } } })).body.port;
    const renamed = await os('PUT', `/networking/v2.0/networks/${net.id}`, { body: { network: { name: 'new-net', admin_state_up: true } } });
    expect(renamed.status).toBe(200);
    expect(renamed.body.network).toMatchObject({ id: net.id, name: 'new-net', subnets: [sub.id] });
    expect((await t.call('GET', `/v1/networks/${net.id}`, { token: v1 })).body.name).toBe('new-net');
    expect((await os('PUT', `/networking/v2.0/subnets/${sub.id}`, { body: { subnet: { name: 'new-sub' } } })).body.subnet.name).toBe('new-sub');
    expect((await os('PUT', `/networking/v2.0/ports/${port.id}`, { body: { port: { name: 'new-port' } } })).body.port.name).toBe('new-port');
    expect((await os('GET', '/networking/v2.0/ports?name=new-port')).body.ports.map((p: any) => p.id)).toEqual([port.id]);
    const refused = await os('PUT', `/networking/v2.0/subnets/${sub.id}`, { body: { subnet: { gateway_ip: '10.33.0.9' } } });
    expect(refused.status).toBe(400);
    expect(refused.body.NeutronError.message).toContain('gateway_ip');
    expect((await os('PUT', `/networking/v2.0/networks/${net.id}`, { body: { network: { shared: true } } })).status).toBe(400);
    const clash = (await os('POST', '/networking/v2.0/networks', { body: { network: { name: 'other-net' } } })).body.network;
    expect((await os('PUT', `/networking/v2.0/networks/${clash.id}`, { body: { network: { name: 'new-net' } } })).status).toBe(409);
  });

  test('limit/marker with absolute *_links; a bad marker or limit is a 400', async () => {
    const ids: string[] = [];
    for (const n of [1, 2, 3]) ids.push((await os('POST', '/networking/v2.0/networks', { body: { network: { name: `pg-${n}` } } })).body.network.id);
    const seen: string[] = [];
    let path: string | undefined = '/networking/v2.0/networks?limit=2';
    for (let i = 0; path && i < 20; i++) {
      const res = await os('GET', path);
      expect(res.status).toBe(200);
      seen.push(...res.body.networks.map((n: any) => n.id));
      const next = res.body.networks_links.find((l: any) => l.rel === 'next');
      if (next) {
        expect(next.href).toMatch(/^http:\/\/[^/]+\/networking\/v2\.0\/networks\?.*marker=/);
        path = new URL(next.href).pathname + new URL(next.href).search;
      } else path = undefined;
    }
    for (const id of ids) expect(seen).toContain(id);
    expect(new Set(seen).size).toBe(seen.length);
    const last = await os('GET', `/networking/v2.0/networks?marker=${ids[2]}&limit=50`);
    expect(last.body.networks_links).toEqual([]);
    expect((await os('GET', '/networking/v2.0/networks?marker=nope')).status).toBe(400);
    expect((await os('GET', '/networking/v2.0/subnets?limit=x')).status).toBe(400);
    expect((await os('GET', '/networking/v2.0/subnets?limit=1')).body).toHaveProperty('subnets_links');
    expect((await os('GET', '/networking/v2.0/ports?limit=1')).body).toHaveProperty('ports_links');
  });

  test('honest refusals and extensions', async () => {
    for (const network of [{ name: 'x', shared: true }, { name: 'x', 'router:external': true }, { name: 'x', admin_state_up: false }, { name: 'x', mtu: 9000 }]) {
      const res = await os('POST', '/networking/v2.0/networks', { body: { network } });
      expect(res.status).toBe(400);
      expect(res.body.NeutronError.type).toBe('HTTPBadRequest');
    }
    const net = (await os('POST', '/networking/v2.0/networks', { body: { network: { name: 'net-r' } } })).body.network;
    const v6 = await os('POST', '/networking/v2.0/subnets', { body: { subnet: { ip_version: 6, network_id: net.id, cidr: 'fd00::/64' } } });
    expect(v6.status).toBe(400);
    const badCidr = await os('POST', '/networking/v2.0/subnets', { body: { subnet: { ip_version: 4, network_id: net.id, cidr: '10.0.0.0/33' } } });
    expect(badCidr.status).toBe(400);
    expect(badCidr.body.NeutronError.type).toBe('InvalidInput');
    const noNet = await os('POST', '/networking/v2.0/subnets', { body: { subnet: { ip_version: 4, network_id: '00000000-0000-4000-8000-000000000000', cidr: '10.0.0.0/24' } } });
    expect(noNet.status).toBe(404);
    expect(noNet.body.NeutronError.type).toBe('NetworkNotFound');

    const ext = await os('GET', '/networking/v2.0/extensions');
    expect(ext.status).toBe(200);
    expect(ext.body.extensions.map((e: any) => e.alias)).toEqual(expect.arrayContaining(['project-id']));
    expect((await os('GET', '/networking/v2.0/routers')).body).toEqual({ routers: [] });
    const unknown = await os('GET', '/networking/v2.0/qos/policies');
    expect(unknown.status).toBe(404);
    expect(unknown.body.NeutronError).toBeDefined();
    expect((await t.call('GET', '/networking/v2.0/networks')).status).toBe(401);
  });
});
