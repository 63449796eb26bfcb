/**
 * Identity over HTTP against a whole in-process cloud (real Temporal dev server, PGlite, libvirt
 * test driver), with response validation on: every response must match openapi/stratus.yaml.
 */
import { startTestCloud, ADMIN_PASSWORD, type TestCloud } from '../support/cloud';

let t: TestCloud;
let admin: string;

beforeAll(async () => {
  t = await startTestCloud();
  admin = await t.login();
}, 90_000);

afterAll(async () => {
  await t?.stop();
});

function expectProblem(res: { status: number; body: any; headers: Headers }, status: number) {
  expect(res.status).toBe(status);
  expect(res.headers.get('content-type')).toMatch(/^application\/problem\+json/);
  expect(res.body).toMatchObject({ status, title: expect.any(String), detail: expect.any(String) });
}

describe('health', () => {
  test('healthz answers and readyz is green with database, temporal and the host agent', async () => {
    expect((await t.call('GET', '/healthz')).body).toEqual({ status: 'ok' });
    const ready = await t.call('GET', '/readyz');
    expect(ready.status).toBe(200);
    expect(ready.body).toEqual({
      status: 'ok',
      checks: { database: { status: 'ok' }, temporal: { status: 'ok' }, hosts: { status: 'ok' } },
    });
  });
});

describe('tokens', () => {
  test('the bootstrap admin gets a token with user, project, roles and expiry', async () => {
    const res = await t.call('POST', '/v1/auth/tokens', { body: { username: 'admin', password: ADMIN_PASSWORD, project: 'admin' } });
    expect(res.status).toBe(201);
    expect(res.body).toMatchObject({ user: { name: 'admin' }, project: { name: 'admin' }, roles: ['admin'] });
    expect(res.body.token).toMatch(/^st_[A-Za-z0-9_-]{40,}$/);
    const ttl = new Date(res.body.expires_at).getTime() - Date.now();
    expect(ttl).toBeGreaterThan(3500_000);
    expect(ttl).toBeLessThanOrEqual(3600_000);
    const current = await t.call('GET', '/v1/auth/tokens/current', { token: res.body.token });
    expect(current.status).toBe(200);
    expect(current.body.user.name).toBe('admin');
  });

  test.each([
    ['a wrong password', { username: 'admin', password: 'wrong-password', project: 'admin' }],
    ['an unknown user', { username: 'nobody', password: ADMIN_PASSWORD, project: 'admin' }],
    ['an unknown project', { username: 'admin', password: ADMIN_PASSWORD, project: 'nowhere' }],
  ])('%s is 401 problem+json, the same for each', async (_case, body) => {
    const res = await t.call('POST', '/v1/auth/tokens', { body });
    expectProblem(res, 401);
    expect(res.body.detail).toBe('wrong username, password or project');
  });

  test('a body that breaks the spec is 400 naming the field', async () => {
    const missing = await t.call('POST', '/v1/auth/tokens', { body: { username: 'admin', project: 'admin' } });
    expectProblem(missing, 400);
    expect(missing.body.fields).toEqual([expect.objectContaining({ field: 'body.password' })]);

    const extra = await t.call('POST', '/v1/auth/tokens', { body: { username: 'admin', password: 'x', project: 'admin', admin: true } });
    expectProblem(extra, 400);
    expect(JSON.stringify(extra.body.fields)).toContain('admin');

    const malformed = await t.call('POST', '/v1/auth/tokens', { body: '{"username":' });
    expectProblem(malformed, 400);
    expect(malformed.body.fields).toEqual([{ field: 'body', message: 'malformed JSON' }]);
  });

  test('no token, a bogus token, and a revoked token are 401', async () => {
    expectProblem(await t.call('GET', '/v1/catalog'), 401);
    expectProblem(await t.call('GET', '/v1/catalog', { token: 'st_bogus' }), 401);
    const token = await t.login();
    expect((await t.call('GET', '/v1/catalog', { token })).status).toBe(200);
    expect((await t.call('DELETE', '/v1/auth/tokens/current', { token })).status).toBe(204);
    expectProblem(await t.call('GET', '/v1/catalog', { token }), 401);
    // Revoking one token leaves the others alone.
    expect((await t.call('GET', '/v1/catalog', { token: admin })).status).toBe(200);
  });
});

describe('catalog and docs', () => {
  test('the catalog names the API, its docs and Temporal UI', async () => {
    const res = await t.call('GET', '/v1/catalog', { token: admin });
    const byType = Object.fromEntries(res.body.catalog.map((e: { type: string; url: string }) => [e.type, e.url]));
    expect(byType.compute).toBe(`${t.config.api.publicUrl}/v1`);
    expect(byType.docs).toBe(`${t.config.api.publicUrl}/docs`);
    expect(byType.operations).toBe(`${t.config.temporal.uiUrl}/namespaces/${t.config.temporal.namespace}/workflows`);
  });

  test('/docs serves the Swagger UI page and its assets offline, and /openapi.yaml the spec', async () => {
    const page = await fetch(`${t.baseUrl}/docs`);
    expect(page.status).toBe(200);
    expect(await page.text()).toContain('swagger-ui-bundle.js');
    const bundle = await fetch(`${t.baseUrl}/docs/assets/swagger-ui-bundle.js`);
    expect(bundle.status).toBe(200);
    expect((await bundle.arrayBuffer()).byteLength).toBeGreaterThan(100_000);
    const spec = await fetch(`${t.baseUrl}/openapi.yaml`);
    expect(await spec.text()).toMatch(/^openapi: 3\.1\.0/);
  });
});

describe('routes', () => {
  test('an unknown route is 404 problem+json; a wrong method is 405', async () => {
    expectProblem(await t.call('GET', '/v1/nothing-here', { token: admin }), 404);
    expectProblem(await t.call('GET', '/nothing-at-all'), 404);
    expectProblem(await t.call('PUT', '/v1/catalog', { token: admin }), 405);
  });
});

describe('projects, users and roles', () => {
  let project: { id: string; name: string };
  let other: { id: string };
  let alice: { id: string };
  let aliceToken: string;

  beforeAll(async () => {
    project = (await t.call('POST', '/v1/projects', { token: admin, body: { name: 'team-a', description: 'Team A' } })).body;
    other = (await t.call('POST', '/v1/projects', { token: admin, body: { name: 'team-b' } })).body;
    alice = (await t.call('POST', '/v1/users', { token: admin, body: { name: 'alice', password: 'alice-password', default_project_id: project.id } })).body;
    expect((await t.call('PUT', `/v1/projects/${project.id}/users/${alice.id}/roles/member`, { token: admin })).status).toBe(204);
    aliceToken = await t.login('alice', 'alice-password', 'team-a');
  });

  test('an admin creates projects and users; a member logs in with the member role', async () => {
    expect(project).toMatchObject({ name: 'team-a', description: 'Team A', enabled: true });
    expect(alice).toMatchObject({ name: 'alice', enabled: true, default_project_id: project.id });
    expect(JSON.stringify(alice)).not.toContain('password');
    const me = await t.call('GET', '/v1/auth/tokens/current', { token: aliceToken });
    expect(me.body).toMatchObject({ user: { name: 'alice' }, project: { id: project.id }, roles: ['member'] });
    // Without a role on team-b, alice cannot log in there.
    expectProblem(await t.call('POST', '/v1/auth/tokens', { body: { username: 'alice', password: 'alice-password', project: 'team-b' } }), 401);
  });

  test('a member calling an admin API gets 403; another project is 404', async () => {
    expectProblem(await t.call('GET', '/v1/projects', { token: aliceToken }), 403);
    expectProblem(await t.call('POST', '/v1/projects', { token: aliceToken, body: { name: 'mine' } }), 403);
    expectProblem(await t.call('GET', '/v1/hosts', { token: aliceToken }), 403);
    expectProblem(await t.call('POST', '/v1/users', { token: aliceToken, body: { name: 'bob', password: 'bob-password' } }), 403);
    expect((await t.call('GET', `/v1/projects/${project.id}`, { token: aliceToken })).status).toBe(200);
    expectProblem(await t.call('GET', `/v1/projects/${other.id}`, { token: aliceToken }), 404);
  });

  test('a user may change their own password but not their name; admins may', async () => {
    expectProblem(await t.call('PATCH', `/v1/users/${alice.id}`, { token: aliceToken, body: { name: 'alicia' } }), 403);
    expect((await t.call('PATCH', `/v1/users/${alice.id}`, { token: aliceToken, body: { password: 'new-alice-pw' } })).status).toBe(200);
    await t.login('alice', 'new-alice-pw', 'team-a');
    const renamed = await t.call('PATCH', `/v1/users/${alice.id}`, { token: admin, body: { name: 'alicia' } });
    expect(renamed.body.name).toBe('alicia');
  });

  test('disabling a project invalidates its tokens at once', async () => {
    const carol = (await t.call('POST', '/v1/users', { token: admin, body: { name: 'carol', password: 'carol-password' } })).body;
    await t.call('PUT', `/v1/projects/${other.id}/users/${carol.id}/roles/reader`, { token: admin });
    const token = await t.login('carol', 'carol-password', 'team-b');
    expect((await t.call('GET', '/v1/catalog', { token })).status).toBe(200);
    await t.call('PATCH', `/v1/projects/${other.id}`, { token: admin, body: { enabled: false } });
    expectProblem(await t.call('GET', '/v1/catalog', { token }), 401);
  });

  test('role assignments are listed, idempotent to grant, and revocable', async () => {
    await t.call('PUT', `/v1/projects/${project.id}/users/${alice.id}/roles/member`, { token: admin });
    const list = await t.call('GET', `/v1/role_assignments?user_id=${alice.id}`, { token: admin });
    expect(list.body.role_assignments).toEqual([{ user_id: alice.id, project_id: project.id, role: 'member' }]);
    expectProblem(await t.call('PUT', `/v1/projects/${project.id}/users/${alice.id}/roles/owner`, { token: admin }), 400);
    expectProblem(
      await t.call('PUT', `/v1/projects/${project.id}/users/00000000-0000-4000-8000-000000000000/roles/member`, { token: admin }),
      404,
    );
    expect((await t.call('DELETE', `/v1/projects/${project.id}/users/${alice.id}/roles/member`, { token: admin })).status).toBe(204);
    expectProblem(await t.call('GET', '/v1/catalog', { token: aliceToken }), 401);
  });

  test('bad input names the field: name pattern, short password, bad uuid, bad limit', async () => {
    const badName = await t.call('POST', '/v1/projects', { token: admin, body: { name: 'has space' } });
    expectProblem(badName, 400);
    expect(badName.body.fields[0].field).toBe('body.name');
    const shortPw = await t.call('POST', '/v1/users', { token: admin, body: { name: 'dave', password: 'short' } });
    expect(shortPw.body.fields[0].field).toBe('body.password');
    const badId = await t.call('GET', '/v1/projects/not-a-uuid', { token: admin });
    expectProblem(badId, 400);
    expect(badId.body.fields[0].field).toBe('path.project_id');
    const badLimit = await t.call('GET', '/v1/projects?limit=0', { token: admin });
    expect(badLimit.body.fields[0].field).toBe('query.limit');
    const unknownQuery = await t.call('GET', '/v1/projects?colour=blue', { token: admin });
    expectProblem(unknownQuery, 400);
    const unknownProject = await t.call('POST', '/v1/users', {
      token: admin,
      body: { name: 'erin', password: 'erin-password', default_project_id: '00000000-0000-4000-8000-000000000000' },
    });
    expectProblem(unknownProject, 400);
    expect(unknownProject.body.fields[0].field).toBe('body.default_project_id');
    // Nothing half-created: erin does not exist.
    const users = await t.call('GET', '/v1/users?limit=1000', { token: admin });
    expect(users.body.users.map((u: { name: string }) => u.name)).not.toContain('erin');
  });

  test('lists page with a next cursor', async () => {
    for (const name of ['page-1', 'page-2', 'page-3']) await t.call('POST', '/v1/projects', { token: admin, body: { name } });
    const seen: string[] = [];
    let marker: string | null = null;
    do {
      const query: string = marker ? `&marker=${encodeURIComponent(marker)}` : '';
      const page = await t.call('GET', `/v1/projects?limit=2${query}`, { token: admin });
      expect(page.body.projects.length).toBeLessThanOrEqual(2);
      seen.push(...page.body.projects.map((p: { name: string }) => p.name));
      marker = page.body.next;
    } while (marker);
    expect(seen).toEqual([...seen].sort());
    expect(seen).toEqual(expect.arrayContaining(['admin', 'page-1', 'page-2', 'page-3', 'team-a', 'team-b']));
    expect(new Set(seen).size).toBe(seen.length);
  });

  test('concurrent creates of one name: exactly one 201, the rest 409', async () => {
    const results = await Promise.all(
      Array.from({ length: 10 }, () => t.call('POST', '/v1/projects', { token: admin, body: { name: 'race' } })),
    );
    const statuses = results.map((r) => r.status).sort();
    expect(statuses).toEqual([201, ...Array(9).fill(409)]);
    const conflict = results.find((r) => r.status === 409)!;
    expectProblem(conflict, 409);
    expect(conflict.body.detail).toContain("'race'");
  });

  test('the admin project and the caller cannot be deleted; others can', async () => {
    const adminProject = (await t.call('GET', '/v1/auth/tokens/current', { token: admin })).body.project;
    expectProblem(await t.call('DELETE', `/v1/projects/${adminProject.id}`, { token: admin }), 400);
    const me = (await t.call('GET', '/v1/auth/tokens/current', { token: admin })).body.user;
    expectProblem(await t.call('DELETE', `/v1/users/${me.id}`, { token: admin }), 400);
    const doomed = (await t.call('POST', '/v1/projects', { token: admin, body: { name: 'doomed' } })).body;
    expect((await t.call('DELETE', `/v1/projects/${doomed.id}`, { token: admin })).status).toBe(204);
    expectProblem(await t.call('GET', `/v1/projects/${doomed.id}`, { token: admin }), 404);
  });
});

describe('hosts', () => {
  test('the host agent registered itself with capacity from libvirt and a recent heartbeat', async () => {
    const res = await t.call('GET', '/v1/hosts', { token: admin });
    expect(res.status).toBe(200);
    const host = res.body.hosts.find((h: { name: string }) => h.name === t.config.host.name);
    expect(host).toMatchObject({ status: 'up', alive: true, libvirt_uri: 'test:///default' });
    expect(host.vcpus).toBeGreaterThan(0);
    expect(host.ram_mb).toBeGreaterThan(0);
    expect(host.capabilities.hotplugDisks).toBe(false);
    expect(Date.now() - new Date(host.last_seen_at).getTime()).toBeLessThan(5000);
    const one = await t.call('GET', `/v1/hosts/${t.config.host.name}`, { token: admin });
    expect(one.body.name).toBe(t.config.host.name);
    expectProblem(await t.call('GET', '/v1/hosts/no-such-host', { token: admin }), 404);
  });

  test('heartbeats keep last_seen_at moving', async () => {
    const first = (await t.call('GET', `/v1/hosts/${t.config.host.name}`, { token: admin })).body.last_seen_at;
    await new Promise((r) => setTimeout(r, 2500));
    const later = (await t.call('GET', `/v1/hosts/${t.config.host.name}`, { token: admin })).body.last_seen_at;
    expect(new Date(later).getTime()).toBeGreaterThan(new Date(first).getTime());
  });
});
