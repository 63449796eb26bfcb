/**
 * Operations: one row per asynchronous request (server.create, server.delete, volume.create, …),
 * pointing at the Temporal workflow that carries it out. The API returns it with the 202 and serves
 * GET /v1/operations/{id} from it, with the step progress the workflow writes into the row.
 */
import { NotFound } from '../../core/errors';
import { atDbEdge, conflict, insertedRow } from '../errors';
import { distinctUuids } from '../batch';
import { isUuid, newId } from '../ids';
import type { Queryable } from '../types';

export type OperationStatus = 'running' | 'succeeded' | 'failed';

/** Why an operation failed: the step, a machine-readable code, a message for people. */
export interface OperationError {
  step?: string;
  code: string;
  message: string;
}

export interface Operation {
  id: string;
  /** e.g. 'server.create', 'server.delete', 'volume.create' */
  kind: string;
  /** e.g. 'server', 'volume' */
  resourceType: string;
  resourceId: string;
  projectId: string;
  workflowId: string;
  /** The workflow run, once known. */
  runId: string | null;
  /** What starts the workflow again from this row alone (null for rows older than migration 0004). */
  workflowType: string | null;
  workflowArgs: unknown[] | null;
  status: OperationStatus;
  error: OperationError | null;
  /** The workflow's step progress as of its last marked step (its shape is the workflow's `Progress`), or null before the first. */
  progress: unknown;
  createdAt: Date;
  updatedAt: Date;
}

interface OperationRow {
  id: string;
  kind: string;
  resource_type: string;
  resource_id: string;
  project_id: string;
  workflow_id: string;
  run_id: string | null;
  workflow_type: string | null;
  workflow_args: unknown[] | null;
  status: OperationStatus;
  error: OperationError | null;
  progress: unknown;
  created_at: Date;
  updated_at: Date;
}

const COLUMNS = ['id', 'kind', 'resource_type', 'resource_id', 'project_id', 'workflow_id', 'run_id', 'workflow_type', 'workflow_args', 'status', 'error', 'progress', 'created_at', 'updated_at'];

function toOperation(row: OperationRow): Operation {
  return {
    id: row.id,
    kind: row.kind,
    resourceType: row.resource_type,
    resourceId: row.resource_id,
    projectId: row.project_id,
    workflowId: row.workflow_id,
    runId: row.run_id,
    workflowType: row.workflow_type,
    workflowArgs: row.workflow_args,
    status: row.status,
    error: row.error,
    progress: row.progress ?? null,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
  };
}

const notFound = (id: string) => new NotFound(`operation '${id}' not found`);

export interface NewOperation {
  id?: string;
  kind: string;
  resourceType: string;
  resourceId: string;
  projectId: string;
  workflowId: string;
  runId?: string | null;
  workflowType?: string | null;
  workflowArgs?: unknown[] | null;
}

/** Inserts a running operation. Throws Conflict when the id exists. */
export async function create(db: Queryable, input: NewOperation): Promise<Operation> {
  const id = input.id ?? newId();
  const rows = await atDbEdge<OperationRow[]>(
    () =>
      db('operations')
        .insert({
          id,
          kind: input.kind,
          resource_type: input.resourceType,
          resource_id: input.resourceId,
          project_id: input.projectId,
          workflow_id: input.workflowId,
          run_id: input.runId ?? null,
          workflow_type: input.workflowType ?? null,
          workflow_args: input.workflowArgs ? JSON.stringify(input.workflowArgs) : null,
          status: 'running',
        })
        .returning(COLUMNS),
    { operations_pkey: conflict('id', `operation '${id}' already exists`) },
  );
  return toOperation(insertedRow(rows));
}

export async function get(db: Queryable, id: string): Promise<Operation | null> {
  if (!isUuid(id)) return null;
  const row = (await db('operations').select(COLUMNS).where({ id }).first()) as OperationRow | undefined;
  return row ? toOperation(row) : null;
}

/** Every operation on the resource, oldest first. */
export async function listByResource(db: Queryable, resourceId: string): Promise<Operation[]> {
  if (!isUuid(resourceId)) return [];
  const rows = (await db('operations')
    .select(COLUMNS)
    .where({ resource_id: resourceId })
    .orderBy([{ column: 'created_at' }, { column: 'id' }])) as OperationRow[];
  return rows.map(toOperation);
}

/** When the `kind` operation (e.g. server.create) of each of `resourceIds` succeeded (one query); absent if it has not. */
export async function succeededAt(db: Queryable, resourceIds: readonly string[], kind: string): Promise<Map<string, Date>> {
  const wanted = distinctUuids(resourceIds);
  if (wanted.length === 0) return new Map();
  const rows = (await db('operations').select('resource_id', 'updated_at').whereIn('resource_id', wanted).where({ kind, status: 'succeeded' })) as Array<{
    resource_id: string;
    updated_at: Date;
  }>;
  return new Map(rows.map((row) => [row.resource_id, row.updated_at]));
}

/**
 * Stores the workflow's step progress (a JSON snapshot written at each step it marks). `seq` grows
 * with each write of one run, and an older snapshot never replaces a newer one. Unknown ids are ignored.
 */
export async function recordProgress(db: Queryable, id: string, progress: unknown, seq: number): Promise<void> {
  if (!isUuid(id)) return;
  await db('operations')
    .where({ id })
    .where((w) => {
      w.whereNull('progress').orWhereRaw(`coalesce((progress->>'seq')::int, -1) < ?`, [seq]);
    })
    .update({ progress: JSON.stringify({ ...(progress as object), seq }) });
}

/** Running operations created before `before`, oldest first (the reconciler's candidates). */
export async function listRunning(db: Queryable, opts: { before: Date; limit: number }): Promise<Operation[]> {
  const rows = (await db('operations')
    .select(COLUMNS)
    .where({ status: 'running' })
    .andWhere('created_at', '<', opts.before)
    .orderBy([{ column: 'created_at' }, { column: 'id' }])
    .limit(opts.limit)) as OperationRow[];
  return rows.map(toOperation);
}

/**
 * Records the outcome of a running operation. The first outcome wins: finishing an operation that is
 * already finished returns it unchanged (a retried activity is harmless). Throws NotFound.
 */
export async function finish(db: Queryable, id: string, outcome: { status: 'succeeded' | 'failed'; error?: OperationError | null }): Promise<Operation> {
  if (!isUuid(id)) throw notFound(id);
  const [row] = (await db('operations')
    .where({ id, status: 'running' })
    .update({ status: outcome.status, error: outcome.error ? JSON.stringify(outcome.error) : null, updated_at: db.fn.now() })
    .returning(COLUMNS)) as OperationRow[];
  if (row) return toOperation(row);
  const current = await get(db, id);
  if (!current) throw notFound(id);
  return current;
}

/** Records the workflow run id (known once the workflow has started). Throws NotFound. */
export async function setRunId(db: Queryable, id: string, runId: string): Promise<Operation> {
  if (!isUuid(id)) throw notFound(id);
  const [row] = (await db('operations').where({ id }).update({ run_id: runId, updated_at: db.fn.now() }).returning(COLUMNS)) as OperationRow[];
  if (!row) throw notFound(id);
  return toOperation(row);
}

/** Deletes the operation (undoing a create whose workflow never started). Throws NotFound. */
export async function remove(db: Queryable, id: string): Promise<void> {
  const count = isUuid(id) ? await db('operations').where({ id }).delete() : 0;
  if (count === 0) throw notFound(id);
}

export { remove as delete };
