/**
 * The database edge: driver errors become domain errors here, once for every repository.
 * PostgreSQL and PGlite report the same SQLSTATE codes and constraint names, so this works on both.
 */
import { Conflict, type DomainError, InvalidInput, NotFound } from '../core/errors';

/** SQLSTATE codes this module understands. */
export const PG = {
  uniqueViolation: '23505',
  foreignKeyViolation: '23503',
  checkViolation: '23514',
  invalidTextRepresentation: '22P02',
} as const;

/** The fields both drivers (pg's DatabaseError, PGlite's DatabaseError) put on a server error. */
export interface PgErrorFields {
  code: string;
  constraint?: string | undefined;
  detail?: string | undefined;
  table?: string | undefined;
}

export function isPgError(err: unknown): err is Error & PgErrorFields {
  // Not `instanceof Error`: errors may come from another realm (a driver loaded outside a test VM).
  if (typeof err !== 'object' || err === null) return false;
  const code: unknown = (err as { code?: unknown }).code;
  return typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code);
}

export function isUniqueViolation(err: unknown): err is Error & PgErrorFields {
  return isPgError(err) && err.code === PG.uniqueViolation;
}

/** Constraint name → the domain error to throw when that constraint is violated. */
export type ConstraintErrors = Readonly<Record<string, () => DomainError>>;

/**
 * Runs `work` and translates constraint violations:
 * - a constraint named in `errors` → that error;
 * - any other unique violation → Conflict naming the key from the server's detail;
 * - any other foreign key violation → Conflict (a referenced row is missing, or a row is still referenced);
 * - any other check violation → InvalidInput.
 * Everything else is rethrown untouched (connection faults stay plain errors, to be retried).
 */
export async function atDbEdge<T>(work: () => Promise<T>, errors: ConstraintErrors = {}): Promise<T> {
  try {
    return await work();
  } catch (err) {
    throw translateDbError(err, errors);
  }
}

export function translateDbError(err: unknown, errors: ConstraintErrors = {}): unknown {
  if (!isPgError(err)) return err;
  const mapped = err.constraint !== undefined ? errors[err.constraint] : undefined;
  if (mapped && [PG.uniqueViolation, PG.foreignKeyViolation, PG.checkViolation].includes(err.code as never)) {
    return mapped();
  }
  const key = parseKeyDetail(err.detail);
  switch (err.code) {
    case PG.uniqueViolation:
      return new Conflict(
        key ? `${key.columns} '${key.values}' already exists` : `duplicate value violates ${err.constraint ?? 'a unique constraint'}`,
        key ? [{ field: key.columns, message: 'already exists' }] : [],
      );
    case PG.foreignKeyViolation:
      return new Conflict(err.detail ?? `violates ${err.constraint ?? 'a foreign key'}`);
    case PG.checkViolation:
      return new InvalidInput(`value violates ${err.constraint ?? 'a check constraint'}`);
    default:
      return err;
  }
}

/** `Key (name)=(x) already exists.` → { columns: 'name', values: 'x' } */
function parseKeyDetail(detail: string | undefined): { columns: string; values: string } | undefined {
  const match = detail?.match(/^Key \((.+?)\)=\((.*)\)/);
  return match && match[1] !== undefined && match[2] !== undefined ? { columns: match[1], values: match[2] } : undefined;
}

/** Conflict on one input field: `conflict('name', "a project named 'x' already exists")`. */
export function conflict(field: string, message: string): () => Conflict {
  return () => new Conflict(message, [{ field, message: 'already exists' }]);
}

/** NotFound for a referenced row that is missing: `missing('projectId', "project 'x' not found")`. */
export function missing(field: string, message: string): () => NotFound {
  return () => new NotFound(message, [{ field, message: 'not found' }]);
}

/** The single row an `insert … returning` must produce. */
export function insertedRow<T>(rows: readonly T[]): T {
  const row = rows[0];
  if (row === undefined) throw new Error('insert returned no row');
  return row;
}
