/**
 * The OpenStack surface's front door: discovery documents without a token, Keystone v3 password
 * auth with X-Subject-Token and a catalog built from STRATUS_PUBLIC_URL, token validation and
 * revocation, admin listings, OpenStack-shaped errors and microversion negotiation. Shapes follow
 * what python-openstackclient/openstacksdk read (../shared/notes/openstack-compat.md).
 */
import { ADMIN_PASSWORD, startTestCloud, type TestCloud } from '../support/cloud';
import { keystoneLogin, osCall, passwordAuth } from '../support/openstack';

let t: TestCloud;
let publicUrl: string;

beforeAll(async () => {
  t = await startTestCloud({ env: { STRATUS_PUBLIC_URL: 'http://stratus.example:9999', STRATUS_REGION: 'RegionTest' } });
  publicUrl = 'http://stratus.example:9999';
}, 90_000);

afterAll(async () => {
  await t?.stop();
});

describe('discovery (no token)', () => {
  test('identity root and v3 documents', async () => {
    const root = await t.call('GET', '/identity');
    expect(root.status).toBe(300);
    expect(root.body.versions.values[0]).toMatchObject({ id: expect.stringMatching(/^v3\./), status: 'stable', links: [{ rel: 'self', href: `${publicUrl}/identity/v3/` }] });
    const v3 = await t.call('GET', '/identity/v3');
    expect(v3.status).toBe(200);
    expect(v3.body.version.links[0].href).toBe(`${publicUrl}/identity/v3/`);
  });

  test('compute advertises exactly the microversions it renders (2.1)', async () => {
    for (const path of ['/compute/v2.1', '/compute/v2.1/']) {
      const doc = await t.call('GET', path);
      expect(doc.status).toBe(200);
      expect(doc.body.version).toMatchObject({ id: 'v2.1', status: 'CURRENT', version: '2.1', min_version: '2.1', links: [{ rel: 'self', href: `${publicUrl}/compute/v2.1/` }] });
    }
    expect((await t.call('GET', '/compute')).body.versions[0].id).toBe('v2.1');
  });

  test('image, network and volume roots', async () => {
    const image = await t.call('GET', '/image');
    expect([200, 300]).toContain(image.status);
    expect(image.body.versions[0]).toMatchObject({ id: 'v2.0', links: [{ rel: 'self', href: `${publicUrl}/image/v2/` }] });
    const network = await t.call('GET', '/networking/');
    expect(network.body.versions[0]).toMatchObject({ id: 'v2.0', status: 'CURRENT', links: [{ rel: 'self', href: `${publicUrl}/networking/v2.0/` }] });
    const volume = await t.call('GET', '/volume/v3/');
    expect(volume.status).toBe(200);
    expect(volume.body.versions[0]).toMatchObject({ id: 'v3.0', version: '3.0', min_version: '3.0', links: [{ rel: 'self', href: `${publicUrl}/volume/v3/` }] });
  });
});

describe('Keystone v3 tokens', () => {
  test('password auth scoped by project name: 201, X-Subject-Token, roles and the catalog', async () => {
    const res = await t.call('POST', '/identity/v3/auth/tokens', { body: passwordAuth('admin', ADMIN_PASSWORD, { name: 'admin' }) });
    expect(res.status).toBe(201);
    const token = res.headers.get('x-subject-token');
    expect(token).toMatch(/^st_/);
    expect(JSON.stringify(res.body)).not.toContain(token!); // the token id travels only in the header
    const body = res.body.token;
    expect(body.expires_at).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/);
    expect(body.user).toMatchObject({ name: 'admin', domain: { id: 'default', name: 'Default' } });
    expect(body.project).toMatchObject({ name: 'admin', domain: { id: 'default' } });
    expect(body.roles).toEqual([{ id: 'admin', name: 'admin' }]);
    const byType = Object.fromEntries(body.catalog.map((e: any) => [e.type, e.endpoints[0]]));
    expect(byType.identity).toMatchObject({ interface: 'public', region: 'RegionTest', region_id: 'RegionTest', url: `${publicUrl}/identity` });
    expect(byType.compute.url).toBe(`${publicUrl}/compute/v2.1`);
    expect(byType.image.url).toBe(`${publicUrl}/image`);
    expect(byType.network.url).toBe(`${publicUrl}/networking`);
    expect(byType['block-storage'].url).toBe(`${publicUrl}/volume/v3/${body.project.id}`);
    expect(byType.volumev3.url).toBe(byType['block-storage'].url);
    // No `v<digit>` before a service's own version (gophercloud reads the first one as the version).
    for (const e of body.catalog) expect(new URL(e.endpoints[0].url).pathname).toMatch(/^\/[a-z]+(\/v[\d.]+(\/[0-9a-f-]+)?)?$/);

    // The same token works on /v1, and a /v1 token works here.
    expect((await t.call('GET', '/v1/auth/tokens/current', { token: token! })).body.user.name).toBe('admin');
    const v1 = await t.login();
    expect((await t.call('GET', '/identity/v3/auth/catalog', { headers: { 'x-auth-token': v1 } })).status).toBe(200);
  });

  test('scoped by project id, and unscoped falls back to the default project', async () => {
    const admin = await keystoneLogin(t);
    const projects = await osCall(t, admin)('GET', '/identity/v3/projects?name=admin');
    const id = projects.body.projects[0].id;
    const byId = await t.call('POST', '/identity/v3/auth/tokens', { body: passwordAuth('admin', ADMIN_PASSWORD, { id }) });
    expect(byId.status).toBe(201);
    expect(byId.body.token.project.id).toBe(id);
    const unscoped = await t.call('POST', '/identity/v3/auth/tokens', { body: passwordAuth('admin', ADMIN_PASSWORD) });
    expect(unscoped.status).toBe(201);
    expect(unscoped.body.token.project.name).toBe('admin');
  });

  test('a wrong password, an unknown domain and a malformed body get Keystone errors', async () => {
    const wrong = await t.call('POST', '/identity/v3/auth/tokens', { body: passwordAuth('admin', 'nope', { name: 'admin' }) });
    expect(wrong.status).toBe(401);
    expect(wrong.body).toEqual({ error: { code: 401, title: 'Unauthorized', message: expect.any(String) } });
    const body = passwordAuth('admin', ADMIN_PASSWORD, { name: 'admin' });
    (body.auth.identity.password.user as any).domain = { name: 'Elsewhere' };
    expect((await t.call('POST', '/identity/v3/auth/tokens', { body })).status).toBe(401);
    const malformed = await t.call('POST', '/identity/v3/auth/tokens', { body: '{"auth": ', headers: { 'content-type': 'application/json' } });
    expect(malformed.status).toBe(400);
    expect(malformed.body.error.message).toMatch(/JSON/);
    expect((await t.call('POST', '/identity/v3/auth/tokens', { body: { auth: { identity: { methods: ['password'], password: { user: { name: 'admin' } } } } } })).status).toBe(400);
  });

  test('validate (GET/HEAD) and revoke (DELETE) with X-Subject-Token', async () => {
    const admin = await keystoneLogin(t);
    const other = await keystoneLogin(t);
    const call = osCall(t, admin);
    const checked = await call('GET', '/identity/v3/auth/tokens', { headers: { 'x-subject-token': other } });
    expect(checked.status).toBe(200);
    expect(checked.headers.get('x-subject-token')).toBe(other);
    expect(checked.body.token.user.name).toBe('admin');
    expect((await call('HEAD', '/identity/v3/auth/tokens', { headers: { 'x-subject-token': other } })).status).toBe(200);
    expect((await call('DELETE', '/identity/v3/auth/tokens', { headers: { 'x-subject-token': other } })).status).toBe(204);
    expect((await call('GET', '/identity/v3/auth/tokens', { headers: { 'x-subject-token': other } })).status).toBe(404);
    // The revoked token no longer works anywhere.
    expect((await osCall(t, other)('GET', '/identity/v3/auth/catalog')).status).toBe(401);
    expect((await t.call('GET', '/v1/servers', { token: other })).status).toBe(401);
  });
});

describe('listings and errors', () => {
  test('admins list projects, users and roles; members get a Keystone 403', async () => {
    const admin = await keystoneLogin(t);
    const call = osCall(t, admin);
    const project = await t.call('POST', '/v1/projects', { token: admin, body: { name: 'os-demo' } });
    const user = await t.call('POST', '/v1/users', { token: admin, body: { name: 'os-demo-user', password: 'demo-password-1', default_project_id: project.body.id } });
    await t.call('PUT', `/v1/projects/${project.body.id}/users/${user.body.id}/roles/member`, { token: admin });

    const projects = await call('GET', '/identity/v3/projects');
    expect(projects.body.projects.map((p: any) => p.name)).toEqual(expect.arrayContaining(['admin', 'os-demo']));
    expect((await call('GET', '/identity/v3/projects?name=os-demo')).body.projects).toHaveLength(1);
    expect((await call('GET', '/identity/v3/users?name=os-demo-user')).body.users[0]).toMatchObject({ id: user.body.id, domain_id: 'default', enabled: true });
    expect((await call('GET', '/identity/v3/roles')).body.roles.map((r: any) => r.name)).toEqual(['admin', 'member', 'reader']);

    const member = await keystoneLogin(t, 'os-demo-user', 'demo-password-1', 'os-demo');
    const denied = await osCall(t, member)('GET', '/identity/v3/projects');
    expect(denied.status).toBe(403);
    expect(denied.body.error.message).toMatch(/admin/);
    const mine = await osCall(t, member)('GET', '/identity/v3/auth/projects');
    expect(mine.body.projects.map((p: any) => p.name)).toEqual(['os-demo']);
  });

  test('no token is 401 in each service\'s own shape; unknown paths are each service\'s 404', async () => {
    expect((await t.call('GET', '/compute/v2.1/servers')).body).toEqual({ unauthorized: { code: 401, message: expect.any(String) } });
    expect((await t.call('GET', '/networking/v2.0/networks')).body.NeutronError).toMatchObject({ type: 'HTTPUnauthorized' });
    const admin = await keystoneLogin(t);
    const missing = await osCall(t, admin)('GET', '/compute/v2.1/no-such-thing');
    expect(missing.status).toBe(404);
    expect(missing.body.itemNotFound.code).toBe(404);
    expect((await t.call('GET', '/compute/v9.9/servers')).status).toBe(404);
  });

  test('microversions: none is 2.1, latest is the maximum, above it is 406', async () => {
    const call = osCall(t, await keystoneLogin(t));
    const none = await call('GET', '/compute/v2.1/no-such-thing');
    expect(none.headers.get('openstack-api-version')).toBe('compute 2.1');
    expect(none.headers.get('x-openstack-nova-api-version')).toBe('2.1');
    const latest = await call('GET', '/compute/v2.1/no-such-thing', { headers: { 'openstack-api-version': 'compute latest' } });
    expect(latest.headers.get('openstack-api-version')).toBe('compute 2.1');
    const high = await call('GET', '/compute/v2.1/no-such-thing', { headers: { 'openstack-api-version': 'compute 2.90', 'x-openstack-nova-api-version': '2.90' } });
    expect(high.status).toBe(406);
    expect(high.body.notAcceptable.message).toMatch(/2\.90 is not supported.*maximum is 2\.1/);
  });
});
