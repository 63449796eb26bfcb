/**
 * Idempotency-Key on every POST, through the API of a whole test cloud, on PGlite and PostgreSQL:
 * concurrent identical requests make one resource; another body with the key is a 422; keys are
 * per project; failures release the key; an attempt that died is taken over; keys expire after 24 h.
 */
import { randomBytes } from 'node:crypto';
import { useDatabase, engines } from '../support/databases';
import { startTestCloud, type TestCloud } from '../support/cloud';
import { createNetwork, flavorId, uploadRawImage, waitGone, waitSettled } from '../support/stratus-fixtures';

describe.each(engines)('Idempotency-Key on $name', (engine) => {
  // PostgreSQL: a fresh database for this cloud; PGlite: the cloud's own embedded one.
  const pgDatabase = engine.name === 'postgres' ? useDatabase(engine, { migrate: false }) : null;
  let t: TestCloud;
  let admin: string;

  beforeAll(async () => {
    let databaseUrl: string | undefined;
    if (pgDatabase) {
      const conn = pgDatabase().client.config.connection as { connectionString?: string } | string;
      databaseUrl = typeof conn === 'string' ? conn : conn.connectionString;
    }
    t = await startTestCloud(databaseUrl ? { databaseUrl } : {});
    admin = await t.login();
  }, 120_000);

  afterAll(async () => {
    await t?.stop();
  });

  const post = (path: string, body: unknown, key: string, token = admin) => t.call('POST', path, { token, body, headers: { 'idempotency-key': key } });

  test('10 concurrent identical server creates with one key make exactly one server', async () => {
    const imageId = await uploadRawImage(t, admin);
    const net = await createNetwork(t, admin, '10.61.0.0/24');
    const body = { name: `same-${randomBytes(3).toString('hex')}`, flavor_id: await flavorId(t, admin), image_id: imageId, networks: [{ network_id: net.networkId }] };
    const key = `k-${randomBytes(4).toString('hex')}`;
    const answers = await Promise.all(Array.from({ length: 10 }, () => post('/v1/servers', body, key)));
    expect(answers.map((a) => a.status)).toEqual(Array(10).fill(202));
    const ids = new Set(answers.map((a) => a.body.server.id));
    expect(ids.size).toBe(1);
    expect(new Set(answers.map((a) => a.body.operation.id)).size).toBe(1);
    expect(answers.filter((a) => a.headers.get('idempotent-replayed') === 'true').length).toBeGreaterThanOrEqual(9);
    const rows = await t.cloud.db!('servers').where({ name: body.name });
    expect(rows).toHaveLength(1);
    const [id] = [...ids] as string[];
    expect((await waitSettled(t, admin, id!)).status).toBe('ACTIVE');
    expect(await t.cloud.db!('ports').where({ device_id: id })).toHaveLength(1);

    // Later retries replay the same answer; the same key with another body is refused.
    const again = await post('/v1/servers', body, key);
    expect(again.body.server.id).toBe(id);
    const other = await post('/v1/servers', { ...body, name: 'something-else' }, key);
    expect(other.status).toBe(422);
    expect(other.headers.get('content-type')).toMatch(/application\/problem\+json/);
    expect(other.body.fields).toEqual([{ field: 'header.idempotency-key', message: 'reused with a different request' }]);
    await t.call('DELETE', `/v1/servers/${id}`, { token: admin });
    await waitGone(t, admin, id!);
  }, 120_000);

  test('every creating POST honours the key (networks, concurrently)', async () => {
    const key = `net-${randomBytes(4).toString('hex')}`;
    const name = `n-${randomBytes(3).toString('hex')}`;
    const answers = await Promise.all(Array.from({ length: 10 }, () => post('/v1/networks', { name }, key)));
    expect(answers.map((a) => a.status)).toEqual(Array(10).fill(201));
    expect(new Set(answers.map((a) => a.body.id)).size).toBe(1);
    expect(await t.cloud.db!('networks').where({ name })).toHaveLength(1);
    // The same body on another path is another request.
    expect((await post('/v1/projects', { name }, key)).status).toBe(422);
  });

  test('keys are scoped per project', async () => {
    const project = (await t.call('POST', '/v1/projects', { token: admin, body: { name: `team-${randomBytes(3).toString('hex')}` } })).body;
    const userName = `u-${randomBytes(3).toString('hex')}`;
    const user = (await t.call('POST', '/v1/users', { token: admin, body: { name: userName, password: 'member-pw-1' } })).body;
    await t.call('PUT', `/v1/projects/${project.id}/users/${user.id}/roles/member`, { token: admin });
    const member = await t.login(userName, 'member-pw-1', project.name);
    const key = 'shared-key';
    const mine = await post('/v1/networks', { name: 'scoped' }, key);
    const theirs = await post('/v1/networks', { name: 'scoped' }, key, member);
    expect(mine.status).toBe(201);
    expect(theirs.status).toBe(201);
    expect(theirs.body.id).not.toBe(mine.body.id);
    expect(theirs.headers.get('idempotent-replayed')).toBeNull();
  });

  test('a failed attempt releases the key: the retry runs again', async () => {
    const net = (await t.call('POST', '/v1/networks', { token: admin, body: { name: `nosub-${randomBytes(3).toString('hex')}` } })).body;
    const key = `port-${randomBytes(4).toString('hex')}`;
    const first = await post('/v1/ports', { network_id: net.id }, key);
    expect(first.status).toBe(409); // no subnet, so no address to give
    await t.call('POST', '/v1/subnets', { token: admin, body: { network_id: net.id, cidr: '10.62.0.0/29' } });
    const retry = await post('/v1/ports', { network_id: net.id }, key);
    expect(retry.status).toBe(201);
    expect(retry.headers.get('idempotent-replayed')).toBeNull();
    expect((await post('/v1/ports', { network_id: net.id }, key)).body.id).toBe(retry.body.id);
    expect(await t.cloud.db!('ports').where({ network_id: net.id })).toHaveLength(1);
  });

  test('an attempt that died is taken over; a key older than 24 h binds nothing', async () => {
    const db = t.cloud.db!;
    const projectId = (await db('projects').where({ name: 'admin' }).first()).id as string;
    const name = `stale-${randomBytes(3).toString('hex')}`;
    const { requestHash } = await import('../../api/idempotency');
    const hash = requestHash('POST', '/v1/networks', { name });
    // A pending claim from an API process that crashed two minutes ago.
    await db('idempotency_keys').insert({ project_id: projectId, key: 'died', request_hash: hash, state: 'pending', claimed_at: new Date(Date.now() - 120_000), created_at: new Date(Date.now() - 120_000) });
    const taken = await post('/v1/networks', { name }, 'died');
    expect(taken.status).toBe(201);
    expect((await post('/v1/networks', { name }, 'died')).body.id).toBe(taken.body.id);

    await db('idempotency_keys').where({ project_id: projectId, key: 'died' }).update({ created_at: new Date(Date.now() - 25 * 3600_000) });
    const fresh = await post('/v1/networks', { name: `${name}-2` }, 'died');
    expect(fresh.status).toBe(201);
    expect(fresh.headers.get('idempotent-replayed')).toBeNull();

    const { purgeExpired } = await import('../../db/repositories/idempotency-keys');
    await db('idempotency_keys').where({ project_id: projectId, key: 'died' }).update({ created_at: new Date(Date.now() - 25 * 3600_000) });
    expect(await purgeExpired(db, new Date())).toBeGreaterThanOrEqual(1);
    expect(await db('idempotency_keys').where({ project_id: projectId, key: 'died' })).toHaveLength(0);
  });
});
