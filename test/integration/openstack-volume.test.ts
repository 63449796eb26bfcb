/**
 * Cinder v3 on the compat surface, against a real test cloud (Temporal, PGlite, libvirt's test
 * driver): volumes made through /volume/v3 run the same workflows as /v1's and are the same volumes;
 * the body shapes, filters, paging and errors are the ones openstacksdk and gophercloud read
 * (../shared/notes/openstack-compat.md §6, G11, G12, G15).
 */
import { startTestCloud, type TestCloud } from '../support/cloud';
import { keystoneLogin, osCall } from '../support/openstack';
import { createNetwork, flavorId, uploadRawImage, waitGone, waitSettled } from '../support/stratus-fixtures';

let t: TestCloud;
let admin: string; // a /v1 token
let os: ReturnType<typeof osCall>;
let projectId: string;
let vol: string; // /volume/v3/<project>
let imageId: string;
let serverId: string | undefined;

/** Cinder's timestamp: microseconds, no zone (gophercloud parses exactly this). */
const CINDER_TIME = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}$/;

/** What the CLI sends for `openstack volume create --size N name`: ten explicit nulls. */
function cliCreateBody(name: string, size = 1, extra: Record<string, unknown> = {}) {
  return {
    volume: {
      size,
      name,
      snapshot_id: null,
      metadata: null,
      description: null,
      backup_id: null,
      volume_type: null,
      consistencygroup_id: null,
      imageRef: null,
      source_volid: null,
      availability_zone: null,
      ...extra,
    },
  };
}

/** Polls show until `done(status)`; 60 s, as a loaded CI machine (2 cores, load 8) once took over 30 s to create one. */
async function waitStatus(id: string, done: (status: string) => boolean): Promise<any> {
  const deadline = Date.now() + 60_000;
  for (;;) {
    const res = await os('GET', `${vol}/volumes/${id}`);
    if (res.status === 200 && done(res.body.volume.status)) return res.body.volume;
    if (Date.now() > deadline) throw new Error(`volume ${id}: last ${res.status} ${JSON.stringify(res.body)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

beforeAll(async () => {
  t = await startTestCloud();
  admin = await t.login();
  const token = await keystoneLogin(t);
  os = osCall(t, token);
  projectId = (await t.call('GET', '/v1/auth/tokens/current', { token: admin })).body.project.id;
  vol = `/volume/v3/${projectId}`;
  imageId = await uploadRawImage(t, admin);
}, 90_000);

afterAll(async () => {
  if (serverId) {
    await t.call('DELETE', `/v1/servers/${serverId}`, { token: admin });
    await waitGone(t, admin, serverId).catch(() => undefined);
  }
  await t?.stop();
});

test('create with the CLI’s explicit nulls → 202 creating; it becomes available; show, /v1 and the lists agree', async () => {
  const created = await os('POST', `${vol}/volumes`, { body: cliCreateBody('data-1', 2) });
  expect(created.status).toBe(202);
  const v = created.body.volume;
  expect(v).toMatchObject({
    name: 'data-1',
    size: 2,
    status: 'creating',
    attachments: [],
    bootable: 'false',
    encrypted: false,
    multiattach: false,
    volume_type: '__DEFAULT__',
    metadata: {},
    availability_zone: 'nova',
    'os-vol-tenant-attr:tenant_id': projectId,
  });
  expect(v.created_at).toMatch(CINDER_TIME);
  expect(v.updated_at).toMatch(CINDER_TIME);
  expect(v.links[0]).toEqual({ rel: 'self', href: `${t.config.api.publicUrl}${vol}/volumes/${v.id}` });

  const available = await waitStatus(v.id, (s) => s === 'available');
  expect(available).toMatchObject({ id: v.id, 'os-vol-host-attr:host': t.config.host.name });
  // The same volume through /v1.
  expect((await t.call('GET', `/v1/volumes/${v.id}`, { token: admin })).body).toMatchObject({ id: v.id, name: 'data-1', size_gb: 2, status: 'available' });

  // Find by name as the SDK does it: GET /volumes/<name> is a 404 in Cinder's shape, then ?name= on detail.
  const byName = await os('GET', `${vol}/volumes/data-1`);
  expect(byName.status).toBe(404);
  expect(byName.body.itemNotFound).toMatchObject({ code: 404, message: expect.stringContaining('data-1') });
  const detail = await os('GET', `${vol}/volumes/detail?name=data-1`);
  expect(detail.status).toBe(200);
  expect(detail.body.volumes.map((x: any) => x.id)).toEqual([v.id]);
  expect((await os('GET', `${vol}/volumes/detail?name=nosuch`)).body.volumes).toEqual([]);
  expect((await os('GET', `${vol}/volumes/detail?status=available&name=data-1`)).body.volumes).toHaveLength(1);
  expect((await os('GET', `${vol}/volumes/detail?status=error&name=data-1`)).body.volumes).toEqual([]);
  const summary = await os('GET', `${vol}/volumes?name=data-1`);
  expect(summary.body.volumes).toEqual([{ id: v.id, name: 'data-1', links: expect.any(Array) }]);

  // A volume from an image is bootable.
  const fromImage = await os('POST', `${vol}/volumes`, { body: cliCreateBody('boot-1', 1, { imageRef: imageId, volume_type: '__DEFAULT__' }) });
  expect(fromImage.status).toBe(202);
  expect(fromImage.body.volume).toMatchObject({ bootable: 'true', volume_image_metadata: { image_id: imageId } });
  await waitStatus(fromImage.body.volume.id, (s) => s === 'available');
}, 150_000);

test('limit and marker page by volume id, with absolute volumes_links (no endless loop for the SDK)', async () => {
  const mine: string[] = [];
  for (const name of ['page-a', 'page-b', 'page-c']) {
    const res = await os('POST', `${vol}/volumes`, { body: cliCreateBody(name) });
    expect(res.status).toBe(202);
    mine.push(res.body.volume.id);
  }
  const all = (await os('GET', `${vol}/volumes/detail`)).body.volumes.map((x: any) => x.id);
  expect(all).toEqual(expect.arrayContaining(mine)); // and whatever the other tests made: at least two pages
  const seen: string[] = [];
  let url: string | null = `${vol}/volumes/detail?limit=2`;
  while (url) {
    const page: { status: number; body: any } = await os('GET', url);
    expect(page.status).toBe(200);
    expect(page.body.volumes.length).toBeLessThanOrEqual(2);
    seen.push(...page.body.volumes.map((x: any) => x.id));
    const next = page.body.volumes_links?.find((l: any) => l.rel === 'next')?.href as string | undefined;
    if (next) expect(next.startsWith(`${t.config.api.publicUrl}${vol}/volumes/detail?`)).toBe(true);
    url = next ? next.slice(t.config.api.publicUrl.length) : null;
  }
  expect(seen).toEqual(all);
  // The SDK's own continuation: marker = the last id it saw, limit kept.
  const rest = await os('GET', `${vol}/volumes/detail?limit=100&marker=${all[all.length - 1]}`);
  expect(rest.body.volumes).toEqual([]);
  expect(rest.body.volumes_links).toBeUndefined();
  const bad = await os('GET', `${vol}/volumes/detail?marker=not-a-volume`);
  expect(bad.status).toBe(400);
  expect(bad.body.badRequest.message).toContain('marker');
});

test('attached through /v1, the volume shows in-use with its attachment; delete is refused until detached', async () => {
  const tiny = await flavorId(t, admin);
  const { networkId } = await createNetwork(t, admin, '10.31.0.0/24');
  const server = await t.call('POST', '/v1/servers', { token: admin, body: { name: 'cinder-vm', flavor_id: tiny, image_id: imageId, networks: [{ network_id: networkId }] } });
  serverId = server.body.server.id as string;
  expect((await waitSettled(t, admin, serverId)).status).toBe('ACTIVE');

  const id = (await os('POST', `${vol}/volumes`, { body: cliCreateBody('attach-me') })).body.volume.id as string;
  await waitStatus(id, (s) => s === 'available');
  expect((await t.call('POST', `/v1/servers/${serverId}/volumes`, { token: admin, body: { volume_id: id } })).status).toBe(202);
  const inUse = await waitStatus(id, (s) => s === 'in-use');
  expect(inUse.attachments).toEqual([
    {
      id,
      attachment_id: expect.stringMatching(/^[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/),
      volume_id: id,
      server_id: serverId,
      host_name: t.config.host.name,
      device: '/dev/vdb',
      attached_at: expect.stringMatching(CINDER_TIME),
    },
  ]);

  const refused = await os('DELETE', `${vol}/volumes/${id}?cascade=False&force=False`);
  expect(refused.status).toBe(409);
  expect(refused.body.conflictingRequest.message).toContain('in-use');

  expect((await t.call('DELETE', `/v1/servers/${serverId}/volumes/${id}`, { token: admin })).status).toBe(202);
  expect((await waitStatus(id, (s) => s === 'available')).attachments).toEqual([]);
  const deleted = await os('DELETE', `${vol}/volumes/${id}?cascade=False&force=False`);
  expect(deleted.status).toBe(202);
  expect(deleted.body).toBeUndefined();
  const deadline = Date.now() + 60_000;
  while ((await os('GET', `${vol}/volumes/${id}`)).status !== 404) {
    if (Date.now() > deadline) throw new Error(`volume ${id} was not deleted`);
    await new Promise((r) => setTimeout(r, 50));
  }
}, 240_000);

test('bad requests are Cinder-shaped 4xx naming the problem', async () => {
  const cases: Array<[unknown, number, string, string]> = [
    [{}, 400, 'badRequest', 'volume'],
    [cliCreateBody('x', 0), 400, 'badRequest', 'size'],
    [cliCreateBody('x', 1, { size: 'big' }), 400, 'badRequest', 'size'],
    [cliCreateBody('x', 1, { snapshot_id: '6b1f9d3e-1111-4a4a-8a8a-000000000001' }), 400, 'badRequest', 'snapshot_id'],
    [cliCreateBody('x', 1, { volume_type: 'ssd' }), 404, 'itemNotFound', 'ssd'],
    [cliCreateBody('x', 1, { availability_zone: 'nowhere' }), 400, 'badRequest', 'nowhere'],
    [cliCreateBody('x', 1, { imageRef: '6b1f9d3e-1111-4a4a-8a8a-000000000002' }), 404, 'itemNotFound', 'image'],
  ];
  for (const [body, status, fault, words] of cases) {
    const res = await os('POST', `${vol}/volumes`, { body });
    expect({ body, status: res.status }).toEqual({ body, status });
    expect(res.body[fault].message).toContain(words);
  }
  const notJson = await os('POST', `${vol}/volumes`, { body: '{"volume":', headers: { 'content-type': 'application/json' } });
  expect(notJson.status).toBe(400);
  expect(notJson.body.badRequest.message).toMatch(/JSON/);
  expect((await os('GET', `${vol}/volumes/6b1f9d3e-1111-4a4a-8a8a-000000000003`)).body.itemNotFound.code).toBe(404);
  // volume set --name: not supported, and said so (an unknown volume is still a 404).
  const someVolume = (await os('GET', `${vol}/volumes`)).body.volumes[0].id as string;
  const rename = await os('PUT', `${vol}/volumes/${someVolume}`, { body: { volume: { name: 'renamed' } } });
  expect(rename.status).toBe(400);
  expect(rename.body.badRequest.message).toMatch(/not supported/);
  expect((await os('PUT', `${vol}/volumes/6b1f9d3e-1111-4a4a-8a8a-000000000003`, { body: { volume: { name: 'x' } } })).status).toBe(404);
  expect((await os('GET', `${vol}/nosuch`)).body.itemNotFound.code).toBe(404);
  // No token: 401.
  expect((await t.call('GET', `${vol}/volumes`)).status).toBe(401);
});

test('the path names the token’s project: others are a 404 for members; admins may read them; one volume type', async () => {
  const project = await t.call('POST', '/v1/projects', { token: admin, body: { name: 'cinder-other' } });
  const user = await t.call('POST', '/v1/users', { token: admin, body: { name: 'cinder-user', password: 'cinder-password-1', default_project_id: project.body.id } });
  await t.call('PUT', `/v1/projects/${project.body.id}/users/${user.body.id}/roles/member`, { token: admin });
  const member = osCall(t, await keystoneLogin(t, 'cinder-user', 'cinder-password-1', 'cinder-other'));
  const theirs = `/volume/v3/${project.body.id}`;

  const made = await member('POST', `${theirs}/volumes`, { body: cliCreateBody('member-vol') });
  expect(made.status).toBe(202);
  expect(made.body.volume['os-vol-host-attr:host']).toBeUndefined(); // admin-only attribute
  const memberId = made.body.volume.id as string;

  // The member cannot use the admin project's path, nor see admin volumes.
  const foreign = await member('GET', `${vol}/volumes/detail`);
  expect(foreign.status).toBe(404);
  expect(foreign.body.itemNotFound).toBeDefined();
  expect((await member('GET', `${theirs}/volumes/detail`)).body.volumes.map((v: any) => v.id)).toEqual([memberId]);

  // The admin sees its own project by default, the other project through its path or all_tenants.
  expect((await os('GET', `${vol}/volumes/detail`)).body.volumes.map((v: any) => v.id)).not.toContain(memberId);
  expect((await os('GET', `${theirs}/volumes/detail`)).body.volumes.map((v: any) => v.id)).toEqual([memberId]);
  expect((await os('GET', `${vol}/volumes/detail?all_tenants=True`)).body.volumes.map((v: any) => v.id)).toContain(memberId);
  expect((await os('GET', `${vol}/volumes/${memberId}`)).body.volume['os-vol-tenant-attr:tenant_id']).toBe(project.body.id);
  expect((await os('POST', `${theirs}/volumes`, { body: cliCreateBody('nope') })).status).toBe(403);

  const types = await member('GET', `${theirs}/types`);
  expect(types.body.volume_types).toEqual([expect.objectContaining({ name: '__DEFAULT__', is_public: true })]);
  expect((await member('GET', `${theirs}/types/default`)).body.volume_type.id).toBe(types.body.volume_types[0].id);
});
