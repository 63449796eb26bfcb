/** Row ids: uuid strings generated in JS (no database extension needed on either engine). */
import { createHash, randomUUID } from 'node:crypto';

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

/**
 * A uuid derived from `parts` (sha-256, shaped as a version-5-style uuid so it passes uuid checks
 * everywhere): the same parts always name the same row, so a retried request or activity finds the
 * row its first attempt made instead of making a second one.
 */
export function uuidFrom(...parts: string[]): string {
  const h = createHash('sha256').update(parts.join('\0')).digest('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-5${h.slice(13, 16)}-${((parseInt(h[16]!, 16) & 0x3) | 0x8).toString(16)}${h.slice(17, 20)}-${h.slice(20, 32)}`;
}
