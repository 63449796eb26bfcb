/**
 * Server batches (migration 0009). A batch is a request for `count` servers from one template; its
 * members are ordinary server rows carrying (batch_id, batch_index). Counts by status are read from
 * the member rows themselves, so there is one truth: the servers.
 */
import { Conflict, NotFound } from '../../core/errors';
import { atDbEdge, insertedRow } from '../errors';
import { isUuid } from '../ids';
import { byCreation, paginate } from '../pagination';
import type { Page, PageRequest, Queryable } from '../types';

export type BatchStatus = 'running' | 'succeeded' | 'failed' | 'cancelling' | 'cancelled' | 'deleting' | 'deleted';

export interface BatchFault {
  code: string;
  message: string;
}

export interface Batch<Template = unknown> {
  id: string;
  projectId: string;
  userId: string | null;
  name: string;
  namePattern: string;
  /** The member create request, resolved (flavor, image, networks, volumes, metadata). */
  template: Template;
  count: number;
  minCount: number;
  maxParallel: number;
  rollbackOnFailure: boolean;
  status: BatchStatus;
  fault: BatchFault | null;
  createdAt: Date;
  updatedAt: Date;
}

interface BatchRow {
  id: string;
  project_id: string;
  user_id: string | null;
  name: string;
  name_pattern: string;
  template: unknown;
  count: number;
  min_count: number;
  max_parallel: number;
  rollback_on_failure: boolean;
  status: BatchStatus;
  fault: BatchFault | null;
  created_at: Date;
  updated_at: Date;
}

const COLUMNS = [
  'id', 'project_id', 'user_id', 'name', 'name_pattern', 'template', 'count', 'min_count', 'max_parallel',
  'rollback_on_failure', 'status', 'fault', 'created_at', 'updated_at',
];

function toBatch<T>(row: BatchRow): Batch<T> {
  return {
    id: row.id,
    projectId: row.project_id,
    userId: row.user_id,
    name: row.name,
    namePattern: row.name_pattern,
    template: row.template as T,
    count: row.count,
    minCount: row.min_count,
    maxParallel: row.max_parallel,
    rollbackOnFailure: row.rollback_on_failure,
    status: row.status,
    fault: row.fault,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
  };
}

export type NewBatch<T> = Omit<Batch<T>, 'status' | 'fault' | 'createdAt' | 'updatedAt'>;

export async function create<T>(db: Queryable, input: NewBatch<T>): Promise<Batch<T>> {
  const rows = await atDbEdge<BatchRow[]>(() =>
    db('server_batches')
      .insert({
        id: input.id,
        project_id: input.projectId,
        user_id: input.userId,
        name: input.name,
        name_pattern: input.namePattern,
        template: JSON.stringify(input.template),
        count: input.count,
        min_count: input.minCount,
        max_parallel: input.maxParallel,
        rollback_on_failure: input.rollbackOnFailure,
        status: 'running',
      })
      .returning(COLUMNS),
  );
  return toBatch<T>(insertedRow(rows));
}

export async function get<T = unknown>(db: Queryable, id: string): Promise<Batch<T> | null> {
  if (!isUuid(id)) return null;
  const row = (await db('server_batches').select(COLUMNS).where({ id }).first()) as BatchRow | undefined;
  return row ? toBatch<T>(row) : null;
}

export function list(db: Queryable, page: PageRequest & { projectId?: string }): Promise<Page<Batch>> {
  const q = db('server_batches').select(COLUMNS);
  if (page.projectId !== undefined) q.where('project_id', page.projectId);
  return paginate(db, q, byCreation('server_batches'), page, (row: BatchRow) => toBatch(row));
}

/** Deletes the batch row (a batch whose workflow never started: it never existed for users). */
export async function remove(db: Queryable, id: string): Promise<void> {
  await db('server_batches').where({ id }).delete();
}

/**
 * Moves the batch to `to` only from one of `from`, in one conditional update (of two racing
 * requests, one wins). Throws NotFound, or Conflict naming the current status.
 */
export async function transition(db: Queryable, id: string, change: { from: readonly BatchStatus[]; to: BatchStatus; fault?: BatchFault | null }): Promise<Batch> {
  const set: Record<string, unknown> = { status: change.to, updated_at: db.fn.now() };
  if (change.fault !== undefined) set.fault = change.fault === null ? null : JSON.stringify(change.fault);
  const [row] = (await db('server_batches').where({ id }).whereIn('status', [...change.from]).update(set).returning(COLUMNS)) as BatchRow[];
  if (row) return toBatch(row);
  const current = await get(db, id);
  if (!current) throw new NotFound(`batch ${id} not found`);
  throw new Conflict(`batch ${id} is ${current.status}, not ${change.from.join(' or ')}`, [{ field: 'status', message: current.status }]);
}

/** How many members are in each server status (members not created yet are not counted). */
export interface MemberCounts {
  BUILD: number;
  ACTIVE: number;
  SHUTOFF: number;
  ERROR: number;
  DELETED: number;
  /** Members with a task in progress (e.g. being deleted). */
  busy: number;
  /** Member rows that exist. */
  created: number;
}

export async function memberCounts(db: Queryable, batchId: string): Promise<MemberCounts> {
  const rows = (await db('servers')
    .where({ batch_id: batchId })
    .select('status')
    .count<Array<{ status: string; n: string | number; busy: string | number }>>({ n: '*' })
    .select(db.raw('count(task_state) as busy'))
    .groupBy('status')) as Array<{ status: string; n: string | number; busy: string | number }>;
  const counts: MemberCounts = { BUILD: 0, ACTIVE: 0, SHUTOFF: 0, ERROR: 0, DELETED: 0, busy: 0, created: 0 };
  for (const r of rows) {
    const n = Number(r.n);
    if (r.status in counts) counts[r.status as keyof MemberCounts] = n;
    counts.busy += r.status === 'BUILD' ? 0 : Number(r.busy);
    counts.created += n;
  }
  return counts;
}
