/**
 * Opens the database: PostgreSQL through `pg` when a URL is configured, else embedded PGlite
 * (a data directory, or memory for tests) through knex-pglite, run on a thread of its own
 * (db/pglite-thread.ts). Both speak the same SQL.
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import knex, { type Knex } from 'knex';
import ClientPgLite from 'knex-pglite';
import pg from 'pg';
import type { Config } from '../core/config';
import { MissingDependency } from '../core/errors';
import { type Logger, silentLogger } from '../core/log';
import { PgliteThread } from './pglite-thread';

export type DatabaseConfig = Config['database'] | { kind: 'pglite-memory' };
export type Engine = 'postgres' | 'pglite';

/** A knex instance (pass it, or a transaction of it, to repositories) that knows how to close itself. */
export type Database = Knex & {
  readonly engine: Engine;
  /** Where the data lives, fit to print: `postgres://host:port/db` (no credentials), a directory, or `memory`. */
  readonly location: string;
  /** Closes the pool (PostgreSQL) or the embedded engine (PGlite, flushing it to disk). Idempotent. */
  close(): Promise<void>;
  /**
   * LISTENs on `channel` (PostgreSQL: on a connection of its own, outside the pool). `onLost` is
   * called once if that connection fails after `listen` resolved (a failure before rejects it); the
   * listener is then dead (listen again).
   */
  listen(channel: string, onNotify: () => void, onLost: (err: Error) => void): Promise<Listener>;
  /**
   * Runs a statement whose text never changes (values as $1, $2 …) on a pooled connection and
   * returns its rows, for the hottest reads (a server's show). On PostgreSQL it is a named prepared
   * statement: each connection parses and plans it once, where knex would send it to be planned
   * anew each time (~0.5 ms of the backend's CPU for a show's query, more than running it) after
   * building it again (~0.5 ms of ours); on PGlite, likewise in its session (PgliteThread.prepared).
   * Never inside a transaction: it takes a connection of the pool's. Reported to knex's 'query'
   * listeners like any other query.
   */
  prepared<Row>(sql: string, values: ReadonlyArray<string | number | null>): Promise<Row[]>;
};

export interface Listener {
  /**
   * Resolves once every notification of a transaction committed before this call has reached
   * `onNotify`: a query on the listening connection, whose answer PostgreSQL sends after the
   * notifications pending for that session (a committing backend signals listeners before its own
   * client is told of the commit).
   */
  sync(): Promise<void>;
  close(): Promise<void>;
}

const PG_POOL_MAX = 10;
const PG_CONNECT_TIMEOUT_MS = 5000;
const INT8_OID = 20;

/**
 * PGlite's postgresql.conf. Its WASM memory never shrinks, and the default 128 MB of shared buffers
 * is most of it: with 16 MB an idle reopened database holds 151 MiB RSS instead of 291 MiB
 * (measured, node 20, PGlite 0.5.17). Stratus's working set (thousands of rows per table) fits.
 */
const PGLITE_CONF = ['shared_buffers=16MB'];

/**
 * Opens and checks the database. Throws MissingDependency (one line, no credentials) when PostgreSQL
 * cannot be reached or the PGlite directory cannot be used.
 */
export async function openDatabase(config: DatabaseConfig, log: Logger = silentLogger): Promise<Database> {
  const started = Date.now();
  const db = config.kind === 'postgres' ? await openPostgres(config.url, log) : await openPglite(config, log);
  log.info({ engine: db.engine, location: db.location, ms: Date.now() - started }, 'database open');
  return db;
}

async function openPostgres(url: string, log: Logger): Promise<Database> {
  const location = redactUrl(url);
  const instance = knex({
    client: 'pg',
    connection: {
      connectionString: url,
      connectionTimeoutMillis: PG_CONNECT_TIMEOUT_MS,
      // int8 (count(*), bigint columns) as a JS number, as PGlite returns it, so rows look the same on
      // both engines. Values past 2^53 would lose precision: keep bigint columns to counters and sizes.
      types: {
        getTypeParser: ((oid: number, format?: 'text' | 'binary') =>
          oid === INT8_OID && format !== 'binary' ? (value: string) => Number(value) : pg.types.getTypeParser(oid, format)) as typeof pg.types.getTypeParser,
      },
    } as Knex.PgConnectionConfig,
    pool: { min: 0, max: PG_POOL_MAX },
    acquireConnectionTimeout: PG_CONNECT_TIMEOUT_MS * 2,
    log: knexLog(log),
  });
  try {
    await instance.raw('select 1');
  } catch (err) {
    await instance.destroy().catch(() => undefined);
    throw new MissingDependency(`database unreachable at ${location} (${describeConnectError(err)}): start PostgreSQL or fix DATABASE_URL`);
  }
  return asDatabase(instance, 'postgres', location, () => instance.destroy(), (channel, onNotify, onLost) => listenPostgres(url, channel, onNotify, onLost));
}

async function listenPostgres(url: string, channel: string, onNotify: () => void, onLost: (err: Error) => void): Promise<Listener> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: PG_CONNECT_TIMEOUT_MS, application_name: `stratus-listen-${channel}` });
  // Lost is only reported for a listener that was returned: a failure before that rejects instead.
  let state: 'opening' | 'listening' | 'done' = 'opening';
  const lose = (err: Error) => {
    if (state === 'done') return;
    const wasListening = state === 'listening';
    state = 'done';
    client.end().catch(() => undefined);
    if (wasListening) onLost(err);
  };
  client.on('notification', (message) => {
    if (message.channel === channel) onNotify();
  });
  client.on('error', lose);
  client.on('end', () => lose(new Error('listening connection ended')));
  try {
    await client.connect();
    await client.query(`listen "${channel}"`);
  } catch (err) {
    lose(err as Error);
    throw err;
  }
  // (an 'end' may have come between the LISTEN's answer and here; TypeScript cannot see handlers run)
  if ((state as string) === 'done') throw new Error('listening connection ended while it was set up');
  state = 'listening';
  return {
    async sync() {
      await client.query('select 1');
    },
    async close() {
      state = 'done';
      await client.end().catch(() => undefined);
    },
  };
}

async function openPglite(config: { kind: 'pglite'; dir: string } | { kind: 'pglite-memory' }, log: Logger): Promise<Database> {
  let location = 'memory';
  let unlock = (): void => undefined;
  if (config.kind === 'pglite') {
    const dir = path.resolve(config.dir);
    location = dir;
    try {
      fs.mkdirSync(dir, { recursive: true });
    } catch (err) {
      throw new MissingDependency(`database directory ${dir} cannot be created (${(err as NodeJS.ErrnoException).code ?? String(err)}): fix STRATUS_DATA_DIR`);
    }
    unlock = lockDirectory(dir);
    try {
      await initPgliteDirectory(dir);
    } catch (err) {
      unlock();
      throw err;
    }
  }
  const connection = {
    pglite: new PgliteThread(config.kind === 'pglite' ? location : 'memory://', { postgresqlconf: PGLITE_CONF }, (err) =>
      log.error({ err: err.message, location }, 'embedded database stopped: every query fails until Stratus is restarted'),
    ),
  };
  const instance = knex({
    client: PgLiteClient as unknown as Knex.Config['client'],
    dialect: 'postgres',
    connection,
    log: knexLog(log),
  } as Knex.Config);
  try {
    await instance.raw('select 1');
  } catch (err) {
    await instance.destroy().catch(() => undefined);
    unlock();
    const reason = err instanceof Error ? err.message : String(err);
    throw new MissingDependency(`embedded database at ${location} cannot be opened (${reason.split('\n')[0]}): move the directory aside or set DATABASE_URL`);
  }
  const listen = async (channel: string, onNotify: () => void): Promise<Listener> => {
    const unlisten = await connection.pglite.listen(channel, onNotify);
    // PGlite is one session in this process: a commit's notifications reach onNotify before the
    // committing query resolves, so anything committed before sync() was called is already seen.
    return { sync: async () => undefined, close: () => unlisten() };
  };
  return asDatabase(
    instance,
    'pglite',
    location,
    async () => {
      try {
        await instance.destroy();
      } finally {
        unlock();
      }
    },
    listen,
  );
}

interface KnexQueryObject {
  method?: string;
}

/**
 * knex-pglite 0.14 derives the result's `command` from knex's method name, so `.del()` reports 'DEL'
 * and `.increment()` 'COUNTER', and knex's PostgreSQL dialect then returns the raw result object
 * instead of the affected-row count it returns on `pg`. Renaming the method to the SQL verb makes
 * `await q.delete()` a number on both engines.
 */
const SQL_VERB: Readonly<Record<string, string>> = { del: 'delete', counter: 'update' };
class PgLiteClient extends (ClientPgLite as unknown as new (config: Knex.Config) => {
  processResponse(obj: KnexQueryObject, runner: unknown): unknown;
}) {
  override processResponse(obj: KnexQueryObject, runner: unknown): unknown {
    const verb = obj.method !== undefined ? SQL_VERB[obj.method] : undefined;
    return super.processResponse(verb ? { ...obj, method: verb } : obj, runner);
  }
}

/** What `prepared` needs of knex's client: its pool, and its 'query' event. */
interface PoolClient {
  acquireConnection(): Promise<RawConnection>;
  releaseConnection(connection: RawConnection): Promise<unknown>;
  emit(event: 'query', query: { sql: string; bindings: ReadonlyArray<string | number | null>; method: string; __knexUid?: string }): boolean;
}
/** A pooled connection: node-postgres's Client, or the PgliteThread (the pool's only one). */
type RawConnection = {
  __knexUid?: string;
  query(config: { name: string; text: string; values: unknown[] }): Promise<{ rows: unknown[] }>;
  prepared?: PgliteThread['prepared'];
};

function asDatabase(instance: Knex, engine: Engine, location: string, destroy: () => Promise<void>, listen: Database['listen']): Database {
  let closing: Promise<void> | undefined;
  const close = (): Promise<void> => (closing ??= destroy());
  const client = instance.client as PoolClient;
  const names = new Map<string, string>();
  // The name is the text's hash: two texts never share one (the server would refuse), and the
  // same text gets the same name on every connection.
  const nameOf = (sql: string) => {
    let name = names.get(sql);
    if (name === undefined) {
      name = `stratus_${createHash('sha1').update(sql).digest('hex').slice(0, 20)}`;
      names.set(sql, name);
    }
    return name;
  };
  const prepared = async <Row>(sql: string, values: ReadonlyArray<string | number | null>): Promise<Row[]> => {
    const connection = await client.acquireConnection();
    try {
      client.emit('query', { sql, bindings: values, method: 'select', ...(connection.__knexUid ? { __knexUid: connection.__knexUid } : {}) });
      const name = nameOf(sql);
      const result = connection.prepared ? await connection.prepared(name, sql, values as Array<string | number | null>) : await connection.query({ name, text: sql, values: [...values] });
      return result.rows as Row[];
    } finally {
      await client.releaseConnection(connection);
    }
  };
  return Object.assign(instance, { engine, location, close, listen, prepared });
}

/**
 * Creates a new PGlite data directory (initdb) in a short-lived child process: initdb's WASM module
 * and memory (~600 MiB RSS, measured) never enter the long-running process, which then opens the
 * ready directory (~150 MiB). An existing directory is left alone.
 */
async function initPgliteDirectory(dir: string): Promise<void> {
  if (fs.existsSync(path.join(dir, 'PG_VERSION'))) return;
  const entry = require.resolve('@electric-sql/pglite');
  const script = `const { PGlite } = require(${JSON.stringify(entry)});
(async () => { const db = new PGlite(process.argv[1]); await db.waitReady; await db.close(); })()
  .catch((err) => { console.error(err && err.message ? err.message : String(err)); process.exit(1); });`;
  const child = spawn(process.execPath, ['-e', script, dir], { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, NODE_OPTIONS: '' } });
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const code = await new Promise<number | null>((resolve, reject) => {
    child.on('error', reject);
    child.on('exit', resolve);
  });
  if (code !== 0) throw new MissingDependency(`embedded database at ${dir} cannot be created (${stderr.trim().split('\n')[0] || `initdb exited ${code}`}): move the directory aside or set DATABASE_URL`);
}

/**
 * PGlite has no lock of its own: two processes opening one directory both succeed and then corrupt
 * it. A lock file beside the directory (`<dir>.lock`, holding the pid) refuses the second opener.
 * A lock left by a process that no longer runs is taken over.
 */
function lockDirectory(dir: string): () => void {
  const lockPath = `${dir}.lock`;
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      fs.writeFileSync(lockPath, `${process.pid}\n`, { flag: 'wx' });
      let released = false;
      return () => {
        if (released) return;
        released = true;
        fs.rmSync(lockPath, { force: true });
      };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const pid = Number.parseInt(fs.readFileSync(lockPath, 'utf8'), 10);
      if (Number.isInteger(pid) && pid > 0 && processAlive(pid)) {
        const who = pid === process.pid ? 'this process' : `process ${pid}`;
        throw new MissingDependency(
          `embedded database at ${dir} is in use by ${who} (${lockPath}): stop it, or use PostgreSQL via DATABASE_URL for several processes`,
        );
      }
      fs.rmSync(lockPath, { force: true });
    }
  }
  throw new MissingDependency(`embedded database at ${dir}: cannot take ${lockPath}`);
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** `postgres://user:secret@host:5432/db?x=y` → `postgres://host:5432/db` (never print credentials). */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    return `${u.protocol}//${u.hostname || 'localhost'}:${u.port || '5432'}${u.pathname || '/'}`;
  } catch {
    return 'postgres://(unparsable URL)';
  }
}

function describeConnectError(err: unknown): string {
  const e = err as { code?: unknown; message?: unknown };
  const code = typeof e.code === 'string' ? e.code : undefined;
  // Server-side refusals (missing database 3D000, bad password 28P01, …) carry a message worth showing;
  // socket errors (ECONNREFUSED, ENOTFOUND, ETIMEDOUT) are clear from the code alone.
  if (code && /^[0-9A-Z]{5}$/.test(code) && typeof e.message === 'string') return `${code} ${e.message}`;
  if (code) return code;
  if (typeof e.message === 'string' && /timeout/i.test(e.message)) return 'timeout';
  return typeof e.message === 'string' ? e.message.split('\n')[0] ?? 'error' : 'error';
}

/** knex's own warnings through our logger (its "Acquire connection error" only at debug: openDatabase reports it). */
function knexLog(log: Logger): Knex.Config['log'] {
  return {
    warn: (message: string) => (/^Acquire connection error/.test(message) ? log.debug({ knex: message }, 'knex') : log.warn({ knex: message }, 'knex')),
    error: (message: string) => log.error({ knex: message }, 'knex'),
    deprecate: (message: string) => log.warn({ knex: message }, 'knex deprecation'),
    debug: (message: string) => log.debug({ knex: message }, 'knex'),
  };
}
