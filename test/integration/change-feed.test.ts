/**
 * The change feed (db/change-feed.ts) on both engines: its version moves with every committed change
 * to the tables server views read, and only then; on PostgreSQL, a lost listening connection means no
 * version until it listens again (under a new epoch), also when the database refuses it for a while.
 */
import pg from 'pg';
import { openChangeFeed, type ChangeFeed } from '../../db/change-feed';
import { silentLogger } from '../../core/log';
import { engines, TEST_PG_URL, type TestDatabase } from '../support/databases';

async function eventually<T>(read: () => Promise<T>, ok: (v: T) => boolean, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await read();
    if (ok(v)) return v;
    if (Date.now() > deadline) throw new Error(`not reached in ${timeoutMs} ms: last ${JSON.stringify(v)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe.each(engines)('change feed on $name', (engine) => {
  let database: TestDatabase;
  let feed: ChangeFeed;

  beforeAll(async () => {
    database = await engine.create();
    feed = await openChangeFeed(database.db, silentLogger);
  });

  afterAll(async () => {
    await feed?.close();
    await database?.dispose();
  });

  test('a committed change to a tracked table moves the version; reads, untracked tables and rolled-back writes do not', async () => {
    const v0 = await feed.version();
    expect(v0).not.toBeNull();
    await database.db('servers').select('id').limit(1);
    await database.db('hosts').whereRaw('false').update({ name: database.db.ref('name') });
    await database.db
      .transaction(async (trx) => {
        await trx('flavors').whereRaw('false').update({ name: trx.ref('name') });
        throw new Error('roll back');
      })
      .catch(() => undefined);
    expect(await feed.version()).toBe(v0);
    for (const table of ['servers', 'ports', 'volumes', 'operations', 'server_group_members', 'flavors']) {
      const before = await feed.version();
      await database.db(table).whereRaw('false').del();
      expect(await feed.version()).not.toBe(before);
    }
  });

  if (engine.name === 'postgres') {
    const withAdmin = async (sql: string) => {
      const c = new pg.Client({ connectionString: TEST_PG_URL });
      await c.connect();
      try {
        return await c.query(sql);
      } finally {
        await c.end();
      }
    };
    const dbName = () => new URL(database.url!).pathname.slice(1);
    const killListener = () =>
      withAdmin(`select pg_terminate_backend(pid) from pg_stat_activity where application_name = 'stratus-listen-stratus_changes' and datname = '${dbName()}'`);

    test('a lost listening connection: no version until it listens again, then a new one', async () => {
      const before = await feed.version();
      expect((await killListener()).rowCount).toBe(1);
      expect(await eventually(() => feed.version(), (v) => v === null, 5_000)).toBeNull();
      const after = await eventually(() => feed.version(), (v) => v !== null);
      expect(after).not.toBe(before);
      const moved = await feed.version();
      await database.db('servers').whereRaw('false').del();
      expect(await feed.version()).not.toBe(moved);
    });

    test('a listening connection that stops answering (no reset) is replaced after the sync deadline, not waited on', async () => {
      const quick = await openChangeFeed(database.db, silentLogger, { syncTimeoutMs: 300 });
      const { rows } = await withAdmin(
        `select pid from pg_stat_activity where application_name = 'stratus-listen-stratus_changes' and datname = '${dbName()}' order by backend_start desc limit 1`,
      );
      const pid = (rows[0] as { pid: number }).pid;
      process.kill(pid, 'SIGSTOP'); // the backend keeps its socket open and answers nothing
      try {
        const started = Date.now();
        expect(await quick.version()).toBeNull();
        expect(Date.now() - started).toBeLessThan(2_000);
        expect(await quick.version()).toBeNull(); // no waiting on the dead one meanwhile
        const back = await eventually(() => quick.version(), (v) => v !== null);
        await database.db('volumes').whereRaw('false').del();
        expect(await quick.version()).not.toBe(back);
      } finally {
        process.kill(pid, 'SIGCONT');
        await quick.close();
      }
    }, 20_000);

    test('the database refusing the listening connection for a while is waited out, not fatal', async () => {
      await killListener();
      await withAdmin(`alter database "${dbName()}" allow_connections false`);
      try {
        await eventually(() => feed.version(), (v) => v === null, 5_000);
        await new Promise((r) => setTimeout(r, 2_500)); // at least two refused attempts to listen again
        expect(await feed.version()).toBeNull();
      } finally {
        await withAdmin(`alter database "${dbName()}" allow_connections true`);
      }
      const back = await eventually(() => feed.version(), (v) => v !== null);
      await database.db('ports').whereRaw('false').del();
      expect(await feed.version()).not.toBe(back);
    }, 20_000);
  }
});
