/**
 * Exact-match list filters (OpenStack's `?name=…&id=…`): column → the values it may take (any of
 * them). Values are compared as text on the columns' own terms, so a value that cannot be of the
 * column's type matches nothing instead of failing a cast in the database.
 */
import type { Knex } from 'knex';
import { isUuid } from './ids';

/** How a column compares: uuid (non-uuids match nothing), text, cidr (its text form), inet (its address). */
export type FilterKind = 'uuid' | 'text' | 'cidr' | 'inet';

export type ColumnFilters<K extends string> = Partial<Record<K, readonly string[]>>;

export function applyFilters<K extends string>(q: Knex.QueryBuilder, table: string, filters: ColumnFilters<K>, kinds: Record<K, FilterKind>): void {
  for (const [column, values] of Object.entries(filters) as Array<[K, readonly string[] | undefined]>) {
    if (values === undefined) continue;
    const col = `${table}.${column}`;
    switch (kinds[column]) {
      case 'uuid':
        q.whereIn(col, values.filter(isUuid));
        break;
      case 'text':
        q.whereIn(col, [...values]);
        break;
      case 'cidr':
      case 'inet': {
        const expr = kinds[column] === 'cidr' ? '??::text' : 'host(??)';
        q.where((w) => {
          if (values.length === 0) w.whereRaw('false');
          for (const v of values) w.orWhereRaw(`${expr} = ?`, [col, v]);
        });
        break;
      }
    }
  }
}
