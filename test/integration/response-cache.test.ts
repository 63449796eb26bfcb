/**
 * Server lists and shows are kept as rendered and sent again while nothing they show has changed
 * (api/response-cache.ts over db/change-feed.ts), on both engines. What must hold: a repeat with no
 * change is a hit; a change committed before a request (by this process or another connection,
 * i.e. another process) is always in its answer, also while other clients keep the cache busy; and
 * losing the listening connection costs only the cache, never a stale answer.
 */
import pg from 'pg';
import { metrics } from '../../core/metrics';
import { startTestCloud, type TestCloud } from '../support/cloud';
import { engines, type TestDatabase } from '../support/databases';
import { seedServers } from '../support/seed-servers';
import { flavorId } from '../support/stratus-fixtures';

async function cacheCount(result: 'hit' | 'miss' | 'uncached'): Promise<number> {
  const { values } = await metrics().responseCache.get();
  return values.find((v) => v.labels.result === result)?.value ?? 0;
}

describe.each(engines)('kept server views on $name', (engine) => {
  let t: TestCloud;
  let database: TestDatabase | undefined;
  /** Where other writers write: another pool on PostgreSQL (as another process would); PGlite has only the cloud's. */
  let writer: () => TestCloud['cloud']['db'];
  let admin: string;
  let ids: string[];

  beforeAll(async () => {
    if (engine.name === 'postgres') {
      database = await engine.create({ migrate: false });
      t = await startTestCloud({ databaseUrl: database.url! });
      writer = () => database!.db;
    } else {
      t = await startTestCloud();
      writer = () => t.cloud.db;
    }
    admin = await t.login();
    const me = (await t.call('GET', '/v1/auth/tokens/current', { token: admin })).body;
    ids = await seedServers(t.cloud.db!, { projectId: me.project.id, userId: me.user.id, flavorId: await flavorId(t, admin), host: 'seed-host' }, 30);
  }, 120_000);

  afterAll(async () => {
    await t?.stop();
    await database?.dispose();
  });

  test('a page asked again with nothing changed is sent as kept; after a change it is read again', async () => {
    const url = '/v1/servers?limit=10';
    const first = await t.call('GET', url, { token: admin });
    const hits = await cacheCount('hit');
    const again = await t.call('GET', url, { token: admin });
    expect(again.status).toBe(200);
    expect(again.body).toEqual(first.body);
    expect(again.headers.get('content-type')).toBe('application/json; charset=utf-8');
    // Sent as kept: the same bytes, with the ETag Express gave them the first time.
    expect(first.headers.get('etag')).toMatch(/^W\/"[0-9a-f]+-/);
    expect(again.headers.get('etag')).toBe(first.headers.get('etag'));
    expect(again.headers.get('content-length')).toBe(first.headers.get('content-length'));
    expect(await cacheCount('hit')).toBe(hits + 1);

    const misses = await cacheCount('miss');
    await writer()!('servers').where({ id: first.body.servers[0].id }).update({ name: 'renamed-once' });
    const after = await t.call('GET', url, { token: admin });
    expect(after.body.servers[0].name).toBe('renamed-once');
    expect(await cacheCount('miss')).toBe(misses + 1);
  });

  test('callers with another view never get a page kept for someone else', async () => {
    // Another project's member, whose list is empty.
    const project = (await t.call('POST', '/v1/projects', { token: admin, body: { name: 'rc-team' } })).body;
    const user = (await t.call('POST', '/v1/users', { token: admin, body: { name: 'rc-user', password: 'rc-user-password', default_project_id: project.id } })).body;
    expect((await t.call('PUT', `/v1/projects/${project.id}/users/${user.id}/roles/member`, { token: admin })).status).toBe(204);
    const other = await t.login('rc-user', 'rc-user-password', 'rc-team');
    await t.call('GET', '/v1/servers?limit=10', { token: admin });
    const theirs = await t.call('GET', '/v1/servers?limit=10', { token: other });
    expect(theirs.status).toBe(200);
    expect(theirs.body.servers).toEqual([]);
    const shown = await t.call('GET', `/v1/servers/${ids[0]!}`, { token: other });
    expect(shown.status).toBe(404);
  });

  test('every change committed before a request is in its answer, while other readers keep the cache busy', async () => {
    const id = ids[5]!;
    const page = '/v1/servers?limit=30';
    let stop = false;
    let busyHits = 0;
    const hitsBefore = await cacheCount('hit');
    // Readers asking the same page and server all along: they fill the cache between the writes.
    const readers = Array.from({ length: 4 }, async () => {
      while (!stop) {
        await t.call('GET', page, { token: admin });
        await t.call('GET', `/v1/servers/${id}`, { token: admin });
      }
    });
    try {
      for (let i = 1; i <= 40; i += 1) {
        const name = `rename-${i}`;
        await writer()!('servers').where({ id }).update({ name });
        const [shown, listed] = await Promise.all([t.call('GET', `/v1/servers/${id}`, { token: admin }), t.call('GET', page, { token: admin })]);
        expect(shown.body.name).toBe(name);
        expect(listed.body.servers.find((s: { id: string }) => s.id === id).name).toBe(name);
      }
    } finally {
      stop = true;
      await Promise.all(readers);
    }
    busyHits = (await cacheCount('hit')) - hitsBefore;
    expect(busyHits).toBeGreaterThan(0);
  }, 60_000);

  if (engine.name === 'postgres') {
    test('a lost listening connection: answers are read afresh (never stale), and kept again once it listens again', async () => {
      const url = '/v1/servers?limit=5';
      await t.call('GET', url, { token: admin });
      const admin2 = new pg.Client({ connectionString: database!.url });
      await admin2.connect();
      try {
        const { rowCount } = await admin2.query("select pg_terminate_backend(pid) from pg_stat_activity where application_name = 'stratus-listen-stratus_changes' and datname = current_database()");
        expect(rowCount).toBe(1);
      } finally {
        await admin2.end();
      }
      // While it is gone: every answer is rendered (uncached) and shows the latest write.
      const uncached = await cacheCount('uncached');
      await writer()!('servers').where({ id: ids[0]! }).update({ name: 'while-deaf' });
      const deaf = await t.waitFor(url, admin, (r) => r.body.servers[0]?.name === 'while-deaf', 5_000);
      expect(deaf.status).toBe(200);
      expect(await cacheCount('uncached')).toBeGreaterThan(uncached);
      // It listens again within a few seconds; from then on a repeat is a hit.
      const deadline = Date.now() + 10_000;
      let hit = false;
      while (!hit && Date.now() < deadline) {
        const before = await cacheCount('hit');
        await t.call('GET', url, { token: admin });
        await t.call('GET', url, { token: admin });
        hit = (await cacheCount('hit')) > before;
        if (!hit) await new Promise((r) => setTimeout(r, 200));
      }
      expect(hit).toBe(true);
      await writer()!('servers').where({ id: ids[0]! }).update({ name: 'heard-again' });
      expect((await t.call('GET', url, { token: admin })).body.servers[0].name).toBe('heard-again');
    }, 30_000);
  }
});
