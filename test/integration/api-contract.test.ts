/**
 * Findings of the contract fuzzer (scripts/fuzz-contract.sh), each kept as a regression test against
 * a whole in-process cloud with response validation on (an undeclared status would be a 500 here).
 */
import { startTestCloud, type TestCloud } from '../support/cloud';

let t: TestCloud;
let admin: string;

beforeAll(async () => {
  t = await startTestCloud();
  admin = await t.login();
}, 120_000);

afterAll(async () => {
  await t?.stop();
});

test('a NUL character in a JSON string is a 400 naming the field, not a 500', async () => {
  const named = await t.call('POST', '/v1/images', { token: admin, body: { name: 'a\u0000b', disk_format: 'raw' } });
  expect(named.status).toBe(400);
  expect(named.body.fields).toEqual([{ field: 'body.name', message: expect.any(String) }]);
  const property = await t.call('POST', '/v1/images', { token: admin, body: { name: 'ok', disk_format: 'raw', properties: { k: 'v\u0000' } } });
  expect(property.status).toBe(400);
  expect(property.body.fields[0].field).toBe('body.properties.k');
  const images = await t.call('GET', '/v1/images', { token: admin });
  expect(images.body.images).toEqual([]); // nothing half-created
});

test('405 answers carry an Allow header listing the methods of the path', async () => {
  const res = await t.call('DELETE', '/v1/flavors', { token: admin });
  expect(res.status).toBe(405);
  expect(res.headers.get('allow')).toBe('GET, POST, HEAD');
  const item = await t.call('PUT', '/v1/servers/00000000-0000-4000-8000-000000000000', { token: admin });
  expect(item.status).toBe(405);
  expect(res.headers.get('content-type')).toMatch(/application\/problem\+json/);
  expect(item.headers.get('allow')).toBe('GET, DELETE, HEAD');
});

test('413 (body over 1 MB) and 415 (not JSON) are declared answers', async () => {
  const big = await t.call('POST', '/v1/networks', { token: admin, body: { name: 'x'.repeat(2 * 1024 * 1024) } });
  expect(big.status).toBe(413);
  const text = await t.call('POST', '/v1/networks', { token: admin, body: 'name=x', headers: { 'content-type': 'text/plain' } });
  expect(text.status).toBe(415);
});

test('a marker that is not a cursor of this list is a declared 400 naming the marker', async () => {
  const res = await t.call('GET', '/v1/servers?marker=not-a-cursor', { token: admin });
  expect(res.status).toBe(400);
  expect(res.body.fields).toEqual([{ field: 'marker', message: expect.any(String) }]);
});

test('a call without a valid token is 401 before its input is validated', async () => {
  expect((await t.call('GET', '/v1/servers?limit=0')).status).toBe(401);
  expect((await t.call('GET', '/v1/hosts?marker=', { token: 'st_bogus' })).status).toBe(401);
  expect((await t.call('POST', '/v1/networks', { body: { name: '' } })).status).toBe(401);
  // Logging in stays public (and validated).
  expect((await t.call('POST', '/v1/auth/tokens', { body: {} })).status).toBe(400);
});

test('POST /v1/volumes from an image that does not exist is a declared 404 naming body.image_id', async () => {
  const res = await t.call('POST', '/v1/volumes', { token: admin, body: { name: 'v', size_gb: 1, image_id: '00000000-0000-4000-8000-000000000000' } });
  expect(res.status).toBe(404);
  expect(res.body.fields).toEqual([{ field: 'body.image_id', message: expect.any(String) }]);
});

test('an admin cannot lock their own token out: disable their project or themselves, or drop their own admin role (the fuzzer did)', async () => {
  const me = (await t.call('GET', '/v1/auth/tokens/current', { token: admin })).body;
  const project = await t.call('PATCH', `/v1/projects/${me.project.id}`, { token: admin, body: { enabled: false } });
  expect(project.status).toBe(400);
  expect(project.body.fields[0].field).toBe('body.enabled');
  expect((await t.call('PATCH', `/v1/users/${me.user.id}`, { token: admin, body: { enabled: false } })).status).toBe(400);
  expect((await t.call('DELETE', `/v1/projects/${me.project.id}/users/${me.user.id}/roles/admin`, { token: admin })).status).toBe(400);
  expect((await t.call('GET', '/v1/auth/tokens/current', { token: admin })).status).toBe(200);
});

test('PATCH /v1/hosts/{name} without a JSON body is a declared 415', async () => {
  const res = await t.call('PATCH', `/v1/hosts/${t.config.host.name}`, { token: admin, body: 'x', headers: { 'content-type': 'text/plain' } });
  expect(res.status).toBe(415);
});

test('a quota beyond the database integer is a 400 naming the field, not a 500 (the fuzzer did)', async () => {
  const me = (await t.call('GET', '/v1/auth/tokens/current', { token: admin })).body;
  const res = await t.call('PUT', `/v1/projects/${me.project.id}/quota`, { token: admin, body: { ram_mb: 37617456929 } });
  expect(res.status).toBe(400);
  expect(res.body.fields[0].field).toBe('body.ram_mb');
});
