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

  test('prepared statements: the rows knex would give, concurrent calls apart, an error leaves the statement usable', async () => {
    const db = database();
    const sql = `select $1::text as s, $2::int8 + 1 as n, '2026-01-02T03:04:05Z'::timestamptz as ts, '{"a":[1]}'::jsonb as j, array['x']::text[] as arr, 1 / $2::int as q`;
    const [row] = await db.prepared<Record<string, unknown>>(sql, ['one', 1]);
    expect(row).toEqual((await db.raw(sql.replace('$1', '?').replaceAll('$2', '?'), ['one', 1, 1])).rows[0]);
    expect(row!.ts).toBeInstanceOf(Date);
    expect(row!.n).toBe(2);
    // Many at once (PGlite: one session, taken in turn through knex's pool of one).
    const many = await Promise.all(Array.from({ length: 20 }, (_, i) => db.prepared<{ s: string; n: number }>(sql, [`v${i}`, i + 1])));
    expect(many.map(([r]) => [r!.s, r!.n])).toEqual(Array.from({ length: 20 }, (_, i) => [`v${i}`, i + 2]));
    // A failing execution (division by zero) rejects with the driver's fields, and the statement runs again after it.
    await expect(db.prepared(sql, ['zero', 0])).rejects.toMatchObject({ code: '22012' });
    expect((await db.prepared<{ s: string }>(sql, ['again', 3]))[0]!.s).toBe('again');
    // Named, so parsed once per session: the statement listing them sees itself.
    const listed = await db.prepared<{ name: string }>(`select name from pg_prepared_statements where statement = $1`, [`select name from pg_prepared_statements where statement = $1`]);
    expect(listed.map((r) => r.name)).toEqual([expect.stringMatching(/^stratus_[0-9a-f]{20}$/)]);
  });

  test('prepared statements are reported to knex\'s query listeners', async () => {
    const db = database();
    const seen: string[] = [];
    const onQuery = (q: { sql: string }) => seen.push(q.sql);
    db.on('query', onQuery);
    try {
      await db.prepared('select $1::text as x', ['y']);
    } finally {
      db.off('query', onQuery);
    }
    expect(seen).toEqual(['select $1::text as x']);
  });
});

describe('PGlite on a thread of its own', () => {
  const database = useDatabase(engines.find((e) => e.name === 'pglite')!);

  test('a long query leaves this thread free: timers keep firing while it runs', async () => {
    const db = database();
    let ticks = 0;
    const timer = setInterval(() => (ticks += 1), 10);
    const started = performance.now();
    try {
      const { rows } = await db.raw('select count(*) as n from generate_series(1, 3000000) g where g % 7 = 0');
      expect(rows[0].n).toBe(428571);
    } finally {
      clearInterval(timer);
    }
    const ms = performance.now() - started;
    // In the same thread the query's ~0.3–1 s would let no timer fire at all.
    expect(ms).toBeGreaterThan(150);
    expect(ticks).toBeGreaterThanOrEqual(Math.floor(ms / 10 / 4));
  });

  test('errors keep the fields db/errors.ts reads; values of every kind come back as this thread\'s objects', async () => {
    const db = database();
    await db.raw('create temporary table kinds (id uuid primary key, b bytea, ids uuid[], at timestamptz, n numeric, ok boolean)');
    const id = '6f1c2b1e-7d3a-4c55-9a41-2f0f3c9b8e10';
    await db('kinds').insert({ id, b: Buffer.from([0, 1, 255]), ids: [id, id], at: new Date('2026-01-02T03:04:05.678Z'), n: '1.50', ok: true });
    const err = (await db('kinds').insert({ id }).catch((e: unknown) => e)) as Record<string, unknown>;
    expect(err).toBeInstanceOf(Error);
    expect(err).toMatchObject({ code: '23505', constraint: 'kinds_pkey', detail: `Key (id)=(${id}) already exists.` });
    const [row] = await db('kinds').select();
    expect(row.b).toBeInstanceOf(Uint8Array);
    expect([...row.b]).toEqual([0, 1, 255]);
    expect(row.ids).toEqual([id, id]);
    expect(row.at).toEqual(new Date('2026-01-02T03:04:05.678Z'));
    expect(row).toMatchObject({ n: '1.50', ok: true });
  });

  test('a notification reaches its listener before the committing query resolves', async () => {
    const db = database();
    let heard = 0;
    const listener = await db.listen('thread_test', () => (heard += 1), () => undefined);
    try {
      for (let i = 1; i <= 5; i++) {
        await db.raw(`notify thread_test`);
        expect(heard).toBe(i);
      }
    } finally {
      await listener.close();
    }
    await db.raw(`notify thread_test`);
    expect(heard).toBe(5);
  });
});
