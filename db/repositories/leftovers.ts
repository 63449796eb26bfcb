/**
 * The ledger of leftovers: what an undo could not clean up (which resource, on which host, what to
 * run to finish the job, the error, the operation). The reconciler retries pending entries until
 * one succeeds; admins list them (GET /v1/leftovers).
 */
import { isUuid, newId } from '../ids';
import type { Queryable } from '../types';

/** What finishes the job: an activity (on `host`'s task queue, or a conductor activity when host is null). */
export interface LeftoverAction {
  activity: string;
  host: string | null;
  args: unknown[];
}

export interface Leftover {
  id: string;
  operationId: string | null;
  resourceType: string;
  resourceId: string;
  host: string | null;
  action: LeftoverAction;
  error: string;
  attempts: number;
  status: 'pending' | 'done';
  createdAt: Date;
  updatedAt: Date;
  doneAt: Date | null;
}

interface LeftoverRow {
  id: string;
  operation_id: string | null;
  resource_type: string;
  resource_id: string;
  host: string | null;
  action: LeftoverAction;
  error: string;
  attempts: number;
  status: 'pending' | 'done';
  created_at: Date;
  updated_at: Date;
  done_at: Date | null;
}

const COLUMNS = ['id', 'operation_id', 'resource_type', 'resource_id', 'host', 'action', 'error', 'attempts', 'status', 'created_at', 'updated_at', 'done_at'];

function toLeftover(r: LeftoverRow): Leftover {
  return {
    id: r.id,
    operationId: r.operation_id,
    resourceType: r.resource_type,
    resourceId: r.resource_id,
    host: r.host,
    action: r.action,
    error: r.error,
    attempts: r.attempts,
    status: r.status,
    createdAt: r.created_at,
    updatedAt: r.updated_at,
    doneAt: r.done_at,
  };
}

export interface NewLeftover {
  /** Given by the workflow (deterministic), so a re-run activity records the entry once. */
  id?: string;
  operationId: string | null;
  resourceType: string;
  resourceId: string;
  action: LeftoverAction;
  error: string;
}

/** Records a leftover; recording the same id again is a no-op (idempotent under re-run). */
export async function record(db: Queryable, input: NewLeftover): Promise<Leftover> {
  const id = input.id ?? newId();
  await db('leftovers')
    .insert({
      id,
      operation_id: input.operationId && isUuid(input.operationId) ? input.operationId : null,
      resource_type: input.resourceType,
      resource_id: input.resourceId,
      host: input.action.host,
      action: JSON.stringify(input.action),
      error: input.error,
    })
    .onConflict('id')
    .ignore();
  const row = (await db('leftovers').select(COLUMNS).where({ id }).first()) as LeftoverRow;
  return toLeftover(row);
}

export async function get(db: Queryable, id: string): Promise<Leftover | null> {
  if (!isUuid(id)) return null;
  const row = (await db('leftovers').select(COLUMNS).where({ id }).first()) as LeftoverRow | undefined;
  return row ? toLeftover(row) : null;
}

/** Entries oldest first; `status` filters. */
export async function list(db: Queryable, opts: { status?: 'pending' | 'done'; limit: number }): Promise<Leftover[]> {
  const q = db('leftovers').select(COLUMNS).orderBy([{ column: 'created_at' }, { column: 'id' }]).limit(opts.limit);
  if (opts.status) void q.where({ status: opts.status });
  return ((await q) as LeftoverRow[]).map(toLeftover);
}

/** The job is finished: the entry leaves the pending list (idempotent). */
export async function markDone(db: Queryable, id: string): Promise<void> {
  await db('leftovers').where({ id, status: 'pending' }).update({ status: 'done', done_at: db.fn.now(), updated_at: db.fn.now() });
}

/** Another try failed: count it and keep the latest error. */
export async function recordAttempt(db: Queryable, id: string, error: string): Promise<void> {
  await db('leftovers')
    .where({ id, status: 'pending' })
    .update({ attempts: db.raw('attempts + 1'), error, updated_at: db.fn.now() });
}
