/**
 * Helpers for reading a relation for a whole page of rows in one query (`WHERE x IN (…)`) instead of
 * one query per row: list presenters load each relation once per page.
 */
import { isUuid } from './ids';

/** The distinct well-formed uuids of `ids` (others cannot match a row). */
export function distinctUuids(ids: readonly (string | null | undefined)[]): string[] {
  return [...new Set(ids.filter((id): id is string => typeof id === 'string' && isUuid(id)))];
}

/** Groups `items` by `key`, keeping their order within each group. */
export function groupBy<T>(items: readonly T[], key: (item: T) => string): Map<string, T[]> {
  const groups = new Map<string, T[]>();
  for (const item of items) {
    const k = key(item);
    const group = groups.get(k);
    if (group) group.push(item);
    else groups.set(k, [item]);
  }
  return groups;
}
