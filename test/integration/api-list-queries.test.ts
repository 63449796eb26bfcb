/**
 * Lists cost a constant number of queries, whatever the page's length: each relation of a page is
 * loaded for the whole page at once (counted with knex's 'query' events on the cloud's database).
 * And a server being built shows the progress its workflow wrote into the operation row.
 */
import { randomUUID } from 'node:crypto';
import * as operations from '../../db/repositories/operations';
import * as servers from '../../db/repositories/servers';
import { startTestCloud, type TestCloud } from '../support/cloud';
import { seedServers } from '../support/seed-servers';
import { createNetwork, flavorId } from '../support/stratus-fixtures';

let t: TestCloud;
let admin: string;
let projectId: string;
let userId: string;
let tiny: string;

/** The tables requests read (host heartbeats and the host monitor, running meanwhile, touch others). */
const REQUEST_TABLES = /"(servers|ports|volumes|operations|flavors|networks|subnets|tokens|users|projects|role_assignments)"/;
/**
 * The token lookup is not counted: a resolved token is remembered for up to TOKEN_CACHE_MS
 * (services/identity.ts), so whether a request reads it depends on when the previous one did.
 */
const TOKEN_LOOKUP = /from "tokens"/;

beforeAll(async () => {
  t = await startTestCloud();
  admin = await t.login();
  const me = (await t.call('GET', '/v1/auth/tokens/current', { token: admin })).body;
  projectId = me.project.id;
  userId = me.user.id;
  tiny = await flavorId(t, admin);
  await seedServers(t.cloud.db!, { projectId, userId, flavorId: tiny, host: 'seed-host' }, 150);
}, 120_000);

afterAll(async () => {
  await t?.stop();
});

/**
 * The status and body of GET `url`, and the number of database queries it made. The cloud's own
 * background work (reconciler, host monitor) shares the connection pool and can touch these tables
 * while a request runs; it only ever adds queries, so the fewest of three tries is the request's own.
 * Each try follows a change (a statement on a table server views read, changing no row), so a
 * server list or show is read, not sent as kept (test/integration/response-cache.test.ts).
 */
async function counted(url: string): Promise<{ status: number; body: any; queries: number }> {
  const db = t.cloud.db!;
  let best: { status: number; body: any; queries: number } | undefined;
  for (let attempt = 0; attempt < 3; attempt += 1) {
    await db('flavors').whereRaw('false').update({ name: db.ref('name') });
    let queries = 0;
    const onQuery = (q: { sql: string }) => {
      if (REQUEST_TABLES.test(q.sql) && !TOKEN_LOOKUP.test(q.sql)) queries += 1;
    };
    db.on('query', onQuery);
    try {
      const res = await t.call('GET', url, { token: admin });
      if (!best || queries < best.queries) best = { status: res.status, body: res.body, queries };
    } finally {
      db.removeListener('query', onQuery);
    }
  }
  return best!;
}

test('GET /v1/servers costs the same few queries for a page of 2, of 100 and the next page', async () => {
  const small = await counted('/v1/servers?limit=2');
  const large = await counted('/v1/servers?limit=100');
  expect(small.status).toBe(200);
  expect(large.status).toBe(200);
  expect(small.body.servers).toHaveLength(2);
  expect(large.body.servers).toHaveLength(100);
  const next = await counted(`/v1/servers?limit=100&marker=${encodeURIComponent(large.body.next as string)}`);
  expect(next.body.servers).toHaveLength(50);
  expect(next.body.next).toBeNull();

  // The page with its relations (flavor, ports, volumes, latest operation, group) is one query.
  expect(large.queries).toBe(small.queries);
  expect(next.queries).toBe(small.queries);
  expect(large.queries).toBe(1);

  // Each server still carries every relation.
  const s = large.body.servers[99];
  expect(s.flavor.name).toBe('m1.tiny');
  expect(s.addresses).toHaveLength(1);
  expect(s.volumes_attached).toEqual([{ id: expect.any(String), device: 'vdb' }]);
  expect(s.links.operation).toMatch(/\/v1\/operations\//);
  // Pages neither skip nor repeat.
  const seen = new Set([...large.body.servers, ...next.body.servers].map((x: { id: string }) => x.id));
  expect(seen.size).toBe(150);

  // A server alone: the same one query, and the same view as in the list.
  const one = await counted(`/v1/servers/${s.id as string}`);
  expect(one.queries).toBe(1);
  expect(one.body).toEqual(s);
});

test('GET /v1/networks costs the same queries for 1 network as for 10 (subnets in one query)', async () => {
  for (let i = 0; i < 9; i += 1) await createNetwork(t, admin, `10.${60 + i}.0.0/24`);
  const one = await counted('/v1/networks?limit=1');
  const ten = await counted('/v1/networks?limit=10');
  expect(ten.body.networks).toHaveLength(10);
  expect(ten.body.networks.every((n: { subnets: string[] }) => n.subnets.length === 1)).toBe(true);
  expect(ten.queries).toBe(one.queries);
});

test('a server being built shows the progress written into its operation row, not a workflow query', async () => {
  const db = t.cloud.db!;
  const id = randomUUID();
  await servers.create(db, { id, projectId, userId, name: 'building', flavorId: tiny, imageId: null });
  // No workflow of this id exists: whatever the API shows, it read from the row.
  const op = await operations.create(db, { kind: 'server.create', resourceType: 'server', resourceId: id, projectId, workflowId: `server:${id}:create:none` });
  const before = await t.call('GET', `/v1/servers/${id}`, { token: admin });
  expect(before.status).toBe(200);
  expect(before.body.progress).toBeNull();

  const progress = {
    status: 'running',
    current: 'schedule',
    hosts: [],
    error: null,
    steps: [
      { name: 'authenticate', status: 'done', attempts: 1, startedAt: '2026-01-01T00:00:00.000Z', endedAt: '2026-01-01T00:00:00.010Z' },
      { name: 'schedule', status: 'running', attempts: 1, startedAt: '2026-01-01T00:00:00.010Z' },
    ],
  };
  await operations.recordProgress(db, op.id, progress, 2);
  await operations.recordProgress(db, op.id, { ...progress, current: 'stale' }, 1); // an older snapshot never wins
  const during = await t.call('GET', `/v1/servers/${id}`, { token: admin });
  expect(during.body.progress).toMatchObject({ current: 'schedule', steps: [{ name: 'authenticate', status: 'done' }, { name: 'schedule', status: 'running' }] });
  const shown = await t.call('GET', `/v1/operations/${op.id}`, { token: admin });
  expect(shown.status).toBe(200);
  expect(shown.body.progress.current).toBe('schedule');

  // Finished: the row's outcome is the operation's status, and the server shows no progress.
  await operations.finish(db, op.id, { status: 'succeeded' });
  await servers.update(db, id, { status: 'ACTIVE', taskState: null });
  const done = await t.call('GET', `/v1/operations/${op.id}`, { token: admin });
  expect(done.body).toMatchObject({ status: 'succeeded', progress: { status: 'succeeded', current: null } });
  expect((await t.call('GET', `/v1/servers/${id}`, { token: admin })).body.progress).toBeNull();
});
