/** Request bodies: typed from the spec (openapi/types.ts) by operationId, and refused when they hold what cannot be stored. */
import type { RequestHandler } from 'express';
import { InvalidInput } from '../core/errors';
import type { operations } from '../openapi/types';

export type JsonBody<Op extends keyof operations> = operations[Op] extends { requestBody?: { content: { 'application/json': infer B } } } ? B : never;

/**
 * Refuses a JSON body holding a NUL character in any string or key (PostgreSQL text and jsonb cannot
 * store one: it would be a 500 at the database). 400 naming the field, e.g. `body.properties.a`.
 */
export const rejectNulCharacters: RequestHandler = (req, _res, next) => {
  const where = nulIn(req.body, 'body');
  if (where) throw new InvalidInput(`${where} contains a NUL character (\\u0000), which cannot be stored`, [{ field: where, message: 'contains \\u0000' }]);
  next();
};

function nulIn(value: unknown, path: string): string | null {
  if (typeof value === 'string') return value.includes('\u0000') ? path : null;
  if (Array.isArray(value)) {
    for (const [i, item] of value.entries()) {
      const found = nulIn(item, `${path}[${i}]`);
      if (found) return found;
    }
    return null;
  }
  if (value && typeof value === 'object') {
    for (const [key, item] of Object.entries(value)) {
      if (key.includes('\u0000')) return path;
      const found = nulIn(item, `${path}.${key}`);
      if (found) return found;
    }
  }
  return null;
}
