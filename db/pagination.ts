/**
 * Keyset pagination shared by the repositories. A page is read as `ORDER BY keys LIMIT n+1` after the
 * row the cursor names, so pages never skip or repeat rows when rows are added meanwhile.
 * Cursors are opaque to callers (base64url JSON of the last row's key values, read from the database
 * as text so that timestamps keep their full microsecond precision).
 */
import type { Knex } from 'knex';
import { InvalidInput } from '../core/errors';
import { isUuid } from './ids';
import type { Page, PageRequest, Queryable } from './types';

export const MAX_PAGE_SIZE = 1000;

/** A key column and the SQL type its cursor value is cast back to (`text` for names, `timestamptz`, `uuid`). */
export interface KeyColumn {
  column: string;
  type: 'text' | 'uuid' | 'timestamptz';
}

/** Ordered by name alone: for tables whose name is unique. */
export const byName: readonly KeyColumn[] = [{ column: 'name', type: 'text' }];
/** Ordered by creation, ties broken by id: for tables without a unique name. */
export function byCreation(table: string): readonly KeyColumn[] {
  return [
    { column: `${table}.created_at`, type: 'timestamptz' },
    { column: `${table}.id`, type: 'uuid' },
  ];
}

export function encodeCursor(values: readonly string[]): string {
  return Buffer.from(JSON.stringify(values), 'utf8').toString('base64url');
}

export function decodeCursor(marker: string, arity: number): string[] {
  let values: unknown;
  try {
    values = JSON.parse(Buffer.from(marker, 'base64url').toString('utf8'));
  } catch {
    values = undefined;
  }
  if (!Array.isArray(values) || values.length !== arity || !values.every((v) => typeof v === 'string')) {
    throw new InvalidInput('invalid marker: pass the `next` value of a previous page', [
      { field: 'marker', message: 'not a cursor from this list' },
    ]);
  }
  return values as string[];
}

export function checkLimit(limit: number): number {
  if (!Number.isInteger(limit) || limit < 1 || limit > MAX_PAGE_SIZE) {
    throw new InvalidInput(`limit must be an integer from 1 to ${MAX_PAGE_SIZE}`, [
      { field: 'limit', message: `1..${MAX_PAGE_SIZE}` },
    ]);
  }
  return limit;
}

/** The key values of the row `id` of `query` (its filters applied): where a page after that row starts. */
async function keyValuesOf(db: Queryable, query: Knex.QueryBuilder, keys: readonly KeyColumn[], id: string): Promise<string[]> {
  const idKey = keys.find((key) => key.type === 'uuid');
  if (!idKey) throw new Error('a page after an id needs a uuid key column');
  const row = isUuid(id)
    ? ((await query
        .clone()
        .clearSelect()
        .clearOrder()
        .select(keys.map((key, i) => db.raw('??::text as ??', [key.column, `__k${i}`])))
        .where(idKey.column, id)
        .first()) as Record<string, unknown> | undefined)
    : undefined;
  if (!row) throw new InvalidInput(`marker ${id} not found`, [{ field: 'marker', message: 'no such item in this list' }]);
  return keys.map((_, i) => String(row[`__k${i}`]));
}

/**
 * The select of one page of `query` (a select with its filters, not yet ordered or limited): the rows
 * after the cursor, ordered by the keys, `limit` + 1 of them (the extra one says whether a next page
 * exists), with the key columns added as text (`__k0`, `__k1`, …) for the next cursor.
 */
export async function pageSelect(db: Queryable, query: Knex.QueryBuilder, keys: readonly KeyColumn[], page: PageRequest): Promise<{ select: Knex.QueryBuilder; limit: number }> {
  const limit = checkLimit(page.limit);
  const q = query.clone();
  keys.forEach((key, i) => {
    q.select(db.raw('??::text as ??', [key.column, `__k${i}`]));
  });
  const values = page.afterId !== undefined ? await keyValuesOf(db, query, keys, page.afterId) : page.marker ? decodeCursor(page.marker, keys.length) : undefined;
  if (values) {
    const columns = keys.map(() => '??').join(', ');
    const params = keys.map((key) => `?::${key.type}`).join(', ');
    q.whereRaw(`(${columns}) > (${params})`, [...keys.map((key) => key.column), ...values]);
  }
  for (const key of keys) q.orderBy(key.column, 'asc');
  return { select: q.limit(limit + 1), limit };
}

/** The page of the rows a pageSelect read: `keysOf` gives a row's key values (its `__k…` texts), `map` the item. */
export function pageOf<Row, T>(rows: readonly Row[], limit: number, keysOf: (row: Row) => string[], map: (row: Row) => T): Page<T> {
  const more = rows.length > limit;
  const pageRows = more ? rows.slice(0, limit) : rows;
  const last = pageRows[pageRows.length - 1];
  const next = more && last ? encodeCursor(keysOf(last)) : null;
  return { items: pageRows.map(map), next };
}

/** Reads one page of `query` (see pageSelect), mapping each row with `map`. */
export async function paginate<Row, T>(
  db: Queryable,
  query: Knex.QueryBuilder,
  keys: readonly KeyColumn[],
  page: PageRequest,
  map: (row: Row) => T,
): Promise<Page<T>> {
  const { select, limit } = await pageSelect(db, query, keys, page);
  const rows = (await select) as Array<Row & Record<string, unknown>>;
  return pageOf(rows, limit, (row) => keys.map((_, i) => String(row[`__k${i}`])), map);
}
