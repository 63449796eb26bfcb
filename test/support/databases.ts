/**
 * Fresh databases for tests, on both engines the product supports:
 * - `pglite`: an in-memory PGlite;
 * - `postgres`: a brand-new database `stratus_t_<random>` created on STRATUS_TEST_PG_URL
 *   (default postgres://postgres@127.0.0.1:5432/postgres) and dropped afterwards.
 * PostgreSQL being unreachable fails the tests with a message saying so; they are never skipped.
 *
 *   describe.each(engines)('projects on $name', (engine) => {
 *     const database = useDatabase(engine);           // beforeAll: create + migrate; afterAll: drop
 *     test('…', async () => { const db = database(); … });
 *   });
 */
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { openDatabase, redactUrl, type Database, type Engine } from '../../db/connect';
import { migrateLatest } from '../../db/migrate';

export const TEST_PG_URL = process.env.STRATUS_TEST_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';

export interface TestDatabase {
  db: Database;
  /** The PostgreSQL URL of this database (to open a second pool on it); undefined for PGlite. */
  url: string | undefined;
  /** Closes the database and, for PostgreSQL, drops it. */
  dispose(): Promise<void>;
}

export interface TestEngine {
  name: Engine;
  /** A new empty database, migrated unless `{ migrate: false }`. */
  create(options?: { migrate?: boolean }): Promise<TestDatabase>;
}

const pglite: TestEngine = {
  name: 'pglite',
  async create(options = {}) {
    const db = await openDatabase({ kind: 'pglite-memory' });
    if (options.migrate ?? true) await migrateLatest(db);
    return { db, url: undefined, dispose: () => db.close() };
  },
};

const postgres: TestEngine = {
  name: 'postgres',
  async create(options = {}) {
    const name = `stratus_t_${randomBytes(6).toString('hex')}`;
    await admin((client) => client.query(`create database "${name}"`));
    const url = withDatabase(TEST_PG_URL, name);
    let db: Database;
    try {
      db = await openDatabase({ kind: 'postgres', url });
      if (options.migrate ?? true) await migrateLatest(db);
    } catch (err) {
      await admin((client) => client.query(`drop database if exists "${name}" with (force)`));
      throw err;
    }
    return {
      db,
      url,
      async dispose() {
        await db.close();
        await admin((client) => client.query(`drop database if exists "${name}" with (force)`));
      },
    };
  },
};

export const engines: readonly TestEngine[] = [pglite, postgres];

/** Registers beforeAll/afterAll for a fresh migrated database on `engine`; returns its getter. */
export function useDatabase(engine: TestEngine, options: { migrate?: boolean } = {}): () => Database {
  let current: TestDatabase | undefined;
  beforeAll(async () => {
    current = await engine.create(options);
  });
  afterAll(async () => {
    await current?.dispose();
  });
  return () => {
    if (!current) throw new Error(`the ${engine.name} test database did not open (see the beforeAll failure above)`);
    return current.db;
  };
}

async function admin<T>(work: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: TEST_PG_URL, connectionTimeoutMillis: 5000 });
  try {
    await client.connect();
  } catch (err) {
    const code = (err as { code?: string }).code ?? (err as Error).message;
    throw new Error(
      `PostgreSQL for the database tests is unreachable at ${redactUrl(TEST_PG_URL)} (${code}): ` +
        'start PostgreSQL or set STRATUS_TEST_PG_URL to a server where this user may CREATE DATABASE',
    );
  }
  try {
    return await work(client);
  } finally {
    await client.end();
  }
}

function withDatabase(url: string, database: string): string {
  const u = new URL(url);
  u.pathname = `/${database}`;
  return u.toString();
}
