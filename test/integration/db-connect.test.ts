/** openDatabase: the PostgreSQL error message, PGlite directories and their lock, engine parity. */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { MissingDependency } from '../../core/errors';
import { openDatabase } from '../../db/connect';
import { migrateLatest } from '../../db/migrate';
import * as projects from '../../db/repositories/projects';
import { engines, useDatabase } from '../support/databases';

describe('openDatabase on PostgreSQL', () => {
  test('unreachable server → one-line MissingDependency without credentials', async () => {
    const err = await openDatabase({ kind: 'postgres', url: 'postgres://stratus:s3cret-pw@127.0.0.1:1/stratus' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(MissingDependency);
    expect((err as Error).message).toBe(
      'database unreachable at postgres://127.0.0.1:1/stratus (ECONNREFUSED): start PostgreSQL or fix DATABASE_URL',
    );
  });

  test('a missing database is named in the message', async () => {
    const err = await openDatabase({ kind: 'postgres', url: 'postgres://postgres:pw@127.0.0.1:5432/stratus_no_such_db' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(MissingDependency);
    expect((err as Error).message).toMatch(/^database unreachable at postgres:\/\/127\.0\.0\.1:5432\/stratus_no_such_db \(3D000 .*does not exist\): start PostgreSQL or fix DATABASE_URL$/);
    expect((err as Error).message).not.toContain('pw');
  });
});

describe('openDatabase on a PGlite directory', () => {
  let root: string;
  beforeAll(() => {
    root = fs.mkdtempSync(path.join(os.tmpdir(), 'stratus-db-'));
  });
  afterAll(() => {
    fs.rmSync(root, { recursive: true, force: true });
  });

  test('creates the directory, keeps data across reopen, and refuses a second opener', async () => {
    const dir = path.join(root, 'nested', 'db');
    const db = await openDatabase({ kind: 'pglite', dir });
    expect(db.engine).toBe('pglite');
    expect(db.location).toBe(dir);
    expect(fs.existsSync(path.join(dir, 'PG_VERSION'))).toBe(true);
    await migrateLatest(db);
    await projects.create(db, { name: 'kept' });

    const second = await openDatabase({ kind: 'pglite', dir }).catch((e: unknown) => e);
    expect(second).toBeInstanceOf(MissingDependency);
    expect((second as Error).message).toContain('is in use by this process');

    await db.close();
    await db.close(); // idempotent
    expect(fs.existsSync(`${dir}.lock`)).toBe(false);

    const again = await openDatabase({ kind: 'pglite', dir });
    try {
      expect((await projects.getByName(again, 'kept'))?.name).toBe('kept');
    } finally {
      await again.close();
    }
  });

  test('a lock left by a dead process is taken over', async () => {
    const dir = path.join(root, 'stale');
    fs.writeFileSync(`${dir}.lock`, '2147483646\n');
    const db = await openDatabase({ kind: 'pglite', dir });
    expect(fs.readFileSync(`${dir}.lock`, 'utf8').trim()).toBe(String(process.pid));
    await db.close();
  });
});

describe.each(engines)('engine parity on $name', (engine) => {
  const database = useDatabase(engine);

  test('count(*) and int8 are numbers', async () => {
    const db = database();
    const [row] = (await db('roles').count('* as n')) as Array<{ n: unknown }>;
    expect(row?.n).toBe(3);
    expect((await db.raw('select 9007199254740991::int8 as big')).rows[0].big).toBe(Number.MAX_SAFE_INTEGER);
  });

  test('delete, update and increment resolve to the affected-row count', async () => {
    const db = database();
    await db.raw('create temporary table parity (n int)');
    await db('parity').insert([{ n: 1 }, { n: 2 }, { n: 3 }]);
    expect(await db('parity').where('n', '>', 1).update({ n: 5 })).toBe(2);
    expect(await db('parity').where('n', 5).increment('n', 1)).toBe(2);
    expect(await db('parity').where('n', 6).delete()).toBe(2);
    expect(await db('parity').delete()).toBe(1);
  });

  test('timestamps are Dates, jsonb is parsed, text[] is an array', async () => {
    const db = database();
    const { rows } = await db.raw(`select now() as ts, '{"a":[1,2]}'::jsonb as j, array['x','y']::text[] as arr`);
    expect(rows[0].ts).toBeInstanceOf(Date);
    expect(rows[0].j).toEqual({ a: [1, 2] });
    expect(rows[0].arr).toEqual(['x', 'y']);
  });
});
