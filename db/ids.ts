/** Row ids: uuid strings generated in JS (no database extension needed on either engine). */
import { randomUUID } from 'node:crypto';

export function newId(): string {
  return randomUUID();
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/**
 * True when `value` has the shape of a uuid. Repositories check ids with it before querying, so an
 * id that cannot exist reads as "not found" instead of failing the uuid cast in the database (22P02).
 */
export function isUuid(value: string): boolean {
  return UUID.test(value);
}
