/**
 * PGlite on a thread of its own. PGlite runs PostgreSQL as WASM inside the thread that calls it, and
 * a query runs there synchronously from parse to last row: on the main thread, every query (a
 * server's show: ~0.5 ms planning, ~0.2 ms executing, measured under WASM) stops the event loop that
 * answers HTTP, polls Temporal and heartbeats activities, and leaves its garbage in that thread's heap.
 * On a worker thread a query costs the main thread one message each way and runs on another core,
 * as PostgreSQL's own backends do.
 *
 * `PgliteThread` offers what knex-pglite and db/connect.ts use of a PGlite: waitReady, query,
 * listen, close. Messages on one port arrive in order, so a commit's notifications reach `onNotify`
 * before the committing query resolves, as they do with PGlite in the same thread.
 */
import { Worker } from 'node:worker_threads';
import { types } from '@electric-sql/pglite';

/** The worker's code, evaluated from this string so that tsx, Jest and the bundle need no file of it. */
const WORKER = `
const { parentPort, workerData } = require('node:worker_threads');
const { PGlite, protocol, parse } = require(workerData.entry);
const db = new PGlite(workerData.dataDir, workerData.options);
// Named statements this session has parsed (see prepared below).
const parsed = new Set();
const send = async (message) => (await db.execProtocol(message, { syncToFs: false })).messages;
// Every value leaves as PostgreSQL's text; the caller's thread parses it (decode in pglite-thread.ts).
const text = (value) => value;
db.parsers = new Proxy({}, { get: () => text });
const unlisten = new Map();
const failure = (err) => ({
  message: err && err.message ? err.message : String(err),
  fields: err && typeof err === 'object' ? Object.fromEntries(Object.entries(err).filter(([, v]) => typeof v !== 'function')) : {},
});
db.waitReady.then(
  // The array types (the caller parses arrays of them), as PGlite itself lists them at start.
  async () => parentPort.postMessage({ id: 0, result: (await db.query('select oid, typarray from pg_type where typarray <> 0', [], { rowMode: 'array' })).rows }),
  (err) => parentPort.postMessage({ id: 0, error: failure(err) }),
);
parentPort.on('message', async (m) => {
  try {
    let result;
    if (m.op === 'query') {
      const r = await db.query(m.sql, m.params, { ...m.options, rowMode: 'array' });
      result = { fields: r.fields, rows: r.rows, affectedRows: r.affectedRows };
    }
    else if (m.op === 'prepared') {
      // PGlite's query() parses and plans every statement anew; this parses a named one once and
      // then only binds and executes it (the extended protocol, as node-postgres does with a name).
      const r = await db.runExclusive(async () => {
        const messages = [];
        try {
          if (!parsed.has(m.name)) {
            messages.push(...(await send(protocol.serialize.parse({ name: m.name, text: m.sql, types: [] }))));
            parsed.add(m.name);
          }
          messages.push(...(await send(protocol.serialize.bind({ statement: m.name, values: m.params.map((v) => (v === null || v === undefined ? null : String(v))) }))));
          messages.push(...(await send(protocol.serialize.describe({ type: 'P' }))));
          messages.push(...(await send(protocol.serialize.execute({}))));
        } finally {
          messages.push(...(await send(protocol.serialize.sync())));
        }
        return parse.parseResults(messages, db.parsers, { rowMode: 'array' })[0];
      });
      result = { fields: r.fields, rows: r.rows, affectedRows: r.affectedRows };
    }
    else if (m.op === 'listen') unlisten.set(m.listener, await db.listen(m.channel, () => parentPort.postMessage({ notify: m.listener })));
    else if (m.op === 'unlisten') { const stop = unlisten.get(m.listener); unlisten.delete(m.listener); if (stop) await stop(); }
    else if (m.op === 'close') await db.close();
    parentPort.postMessage({ id: m.id, result });
  } catch (err) {
    parentPort.postMessage({ id: m.id, error: failure(err) });
  }
});
`;

interface Reply {
  id?: number;
  notify?: number;
  result?: unknown;
  error?: { message: string; fields: Record<string, unknown> };
}

/** What PGlite's query resolves to (the part knex reads). */
export interface QueryResults {
  rows: unknown[];
  affectedRows?: number;
  fields: Array<{ name: string; dataTypeID: number }>;
}

/** A result as the thread sends it: each row an array of PostgreSQL's text (or null) per field. */
interface RawResults {
  rows: Array<Array<string | null>>;
  affectedRows?: number;
  fields: Array<{ name: string; dataTypeID: number }>;
}

/**
 * Parses the thread's text with PGlite's own parsers, as PGlite in this thread would have, into
 * objects of this thread's realm: what crosses threads is strings, so a Date is a Date here even
 * inside a VM context (Jest's), where a Date cloned from another thread is of the outer realm.
 */
function decode(raw: RawResults, rowMode: 'array' | 'object', arrays: ReadonlyMap<number, number>): QueryResults {
  const { fields } = raw;
  const parseAs = (value: string, oid: number): unknown => {
    const element = arrays.get(oid);
    return element === undefined ? types.parseType(value, oid) : types.arrayParser(value, (v: string) => parseAs(v, element), oid);
  };
  const parse = (row: Array<string | null>) => row.map((value, i) => (value === null ? null : parseAs(value, fields[i]!.dataTypeID)));
  const rows =
    rowMode === 'array'
      ? raw.rows.map(parse)
      : raw.rows.map((row) => {
          const values = parse(row);
          const object: Record<string, unknown> = {};
          fields.forEach((f, i) => (object[f.name] = values[i]));
          return object;
        });
  return { rows, fields: fields.map((f) => ({ name: f.name, dataTypeID: f.dataTypeID })), affectedRows: raw.affectedRows };
}

export class PgliteThread {
  readonly waitReady: Promise<void>;
  private readonly worker: Worker;
  private readonly pending = new Map<number, { resolve: (value: unknown) => void; reject: (err: Error) => void }>();
  private readonly listeners = new Map<number, () => void>();
  private nextId = 1;
  private exited: Error | undefined;
  /** Array type → its element type, as the thread listed them when ready. */
  private readonly arrays = new Map<number, number>();

  /** `dataDir`: a PGlite location (a directory, or memory://); `onExit`: told if the thread ends on its own. */
  constructor(dataDir: string, options: { postgresqlconf?: string[] }, onExit: (err: Error) => void = () => undefined) {
    this.worker = new Worker(WORKER, { eval: true, workerData: { entry: require.resolve('@electric-sql/pglite'), dataDir, options } });
    // Idle, the thread does not keep the process alive (as an in-thread PGlite would not); starting,
    // or with a query in flight, it does (unref'd when the last one settles).
    this.waitReady = new Promise((resolve, reject) => {
      const ready = (pairs: unknown) => {
        for (const [oid, array] of pairs as Array<[string, string]>) this.arrays.set(Number(array), Number(oid));
        resolve();
      };
      this.pending.set(0, { resolve: ready, reject });
    });
    this.worker.on('message', (reply: Reply) => this.receive(reply));
    this.worker.on('error', (err) => this.end(err));
    this.worker.on('exit', (code) => {
      const err = this.end(new Error(`the embedded database's thread exited (code ${code})`));
      if (err) onExit(err);
    });
  }

  async query(sql: string, params?: unknown[], options?: { rowMode?: 'array' | 'object' }): Promise<QueryResults> {
    return decode((await this.call({ op: 'query', sql, params, options })) as RawResults, options?.rowMode ?? 'object', this.arrays);
  }

  /**
   * Runs the statement named `name` (its text `sql`, parsed on first use, then kept by the session)
   * with `params` (strings or numbers; $1, $2 …): planned once, where `query` plans every time.
   */
  async prepared(name: string, sql: string, params: ReadonlyArray<string | number | null>): Promise<QueryResults> {
    return decode((await this.call({ op: 'prepared', name, sql, params })) as RawResults, 'object', this.arrays);
  }

  /** LISTENs on `channel`; resolves to what stops it. */
  async listen(channel: string, onNotify: () => void): Promise<() => Promise<void>> {
    const id = this.nextId++;
    this.listeners.set(id, onNotify);
    try {
      await this.call({ op: 'listen', channel, listener: id });
    } catch (err) {
      this.listeners.delete(id);
      throw err;
    }
    return async () => {
      this.listeners.delete(id);
      if (!this.exited) await this.call({ op: 'unlisten', listener: id });
    };
  }

  /** Closes PGlite (flushing it to disk) and ends the thread. Idempotent. */
  async close(): Promise<void> {
    if (this.exited) return;
    try {
      await this.call({ op: 'close' });
    } finally {
      this.end(new Error('the embedded database is closed'));
      await this.worker.terminate();
    }
  }

  private call(message: Record<string, unknown>): Promise<unknown> {
    if (this.exited) return Promise.reject(this.exited);
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      if (this.pending.size === 0) this.worker.ref();
      this.pending.set(id, { resolve, reject });
      try {
        this.worker.postMessage({ ...message, id });
      } catch (err) {
        this.settle(id);
        reject(err as Error);
      }
    });
  }

  private receive(reply: Reply): void {
    if (reply.notify !== undefined) return void this.listeners.get(reply.notify)?.();
    const waiter = this.settle(reply.id!);
    if (!waiter) return;
    if (reply.error) {
      // The driver's fields (code, constraint, detail…) as db/errors.ts reads them, on an error
      // whose stack is this thread's.
      waiter.reject(Object.assign(new Error(reply.error.message), reply.error.fields));
    } else {
      waiter.resolve(reply.result);
    }
  }

  private settle(id: number) {
    const waiter = this.pending.get(id);
    this.pending.delete(id);
    if (waiter && this.pending.size === 0 && !this.exited) this.worker.unref();
    return waiter;
  }

  /** Fails everything in flight once the thread is gone; returns the reason the first time. */
  private end(err: Error): Error | undefined {
    if (this.exited) return undefined;
    this.exited = err;
    for (const waiter of this.pending.values()) waiter.reject(err);
    this.pending.clear();
    return err;
  }
}
