/** Migrations on both engines: apply, idempotent, roll back, re-apply, concurrent runs. */
import { openDatabase } from '../../db/connect';
import { migrateLatest, migrateRollback, migrationStatus } from '../../db/migrate';
import { migrations } from '../../db/migrations';
import type { Queryable } from '../../db/types';
import { engines, type TestDatabase } from '../support/databases';

const ALL = migrations.map((m) => m.name);
const TABLES_0001 = ['hosts', 'projects', 'role_assignments', 'roles', 'tokens', 'users'];

async function tables(db: Queryable): Promise<string[]> {
  const rows = (await db('information_schema.tables')
    .select('table_name')
    .where({ table_schema: 'public', table_type: 'BASE TABLE' })
    .orderBy('table_name')) as Array<{ table_name: string }>;
  return rows.map((r) => r.table_name);
}

describe.each(engines)('migrations on $name', (engine) => {
  let t: TestDatabase;
  beforeAll(async () => {
    t = await engine.create({ migrate: false });
  });
  afterAll(async () => {
    await t?.dispose();
  });

  test('a new database has every migration pending', async () => {
    expect(await migrationStatus(t.db)).toEqual({ applied: [], pending: ALL });
  });

  test('migrateLatest applies them all, creates the tables and seeds the roles', async () => {
    const result = await migrateLatest(t.db);
    expect(result).toEqual({ batch: 1, names: ALL });
    expect(await tables(t.db)).toEqual(expect.arrayContaining([...TABLES_0001, 'knex_migrations', 'knex_migrations_lock']));
    expect(await t.db('roles').pluck('name').orderBy('name')).toEqual(['admin', 'member', 'reader']);
    expect(await migrationStatus(t.db)).toEqual({ applied: ALL, pending: [] });
  });

  test('migrateLatest again is a no-op', async () => {
    expect(await migrateLatest(t.db)).toEqual({ batch: 0, names: [] });
    expect(await migrationStatus(t.db)).toEqual({ applied: ALL, pending: [] });
  });

  test('rollback removes the tables; migrating again restores them', async () => {
    const rolledBack = await migrateRollback(t.db, { all: true });
    expect(rolledBack.names).toEqual([...ALL].reverse());
    expect(await tables(t.db)).toEqual(['knex_migrations', 'knex_migrations_lock']);
    expect(await migrationStatus(t.db)).toEqual({ applied: [], pending: ALL });

    expect((await migrateLatest(t.db)).names).toEqual(ALL);
    expect(await tables(t.db)).toEqual(expect.arrayContaining(TABLES_0001));
  });

  test('rollback of the last batch only undoes that batch', async () => {
    const result = await migrateRollback(t.db);
    expect(result.names).toEqual([...ALL].reverse());
    expect((await migrateLatest(t.db)).names).toEqual(ALL);
  });

  test('concurrent migrateLatest calls apply each migration once', async () => {
    await migrateRollback(t.db, { all: true });
    const results = await Promise.all([migrateLatest(t.db), migrateLatest(t.db), migrateLatest(t.db)]);
    expect(results.flatMap((r) => r.names)).toEqual(ALL);
    expect(await t.db('knex_migrations').count<Array<{ count: number }>>('* as count')).toEqual([{ count: ALL.length }]);
  });
});

describe('migrations on postgres from two processes at once', () => {
  const postgres = engines.find((e) => e.name === 'postgres');
  let t: TestDatabase;
  beforeAll(async () => {
    t = await postgres!.create({ migrate: false });
  });
  afterAll(async () => {
    await t?.dispose();
  });

  test('two pools migrating a brand-new database: one applies, the other finds nothing to do', async () => {
    const other = await openDatabase({ kind: 'postgres', url: t.url! });
    try {
      const results = await Promise.all([migrateLatest(t.db), migrateLatest(other)]);
      expect(results.flatMap((r) => r.names)).toEqual(ALL);
      expect(await t.db('knex_migrations_lock').count<Array<{ count: number }>>('* as count')).toEqual([{ count: 1 }]);
    } finally {
      await other.close();
    }
  });
});
