/**
 * Project quotas (Keystone/Nova/Cinder/Neutron's job): limits per project and resource, and what each
 * resource owner (a server, a volume) holds of them — reserved while it is being built, committed once
 * it exists, gone when it fails or is deleted.
 *
 * Concurrency lives in the database: a reservation locks the project's row (FOR NO KEY UPDATE, which
 * does not block foreign-key checks against it), sums what the project holds and inserts only if the
 * request fits, so concurrent reservations of one project queue and never exceed a limit. One row per
 * (owner, resource): reserving again for the same owner is a no-op, committing and releasing are
 * idempotent.
 */
import { Forbidden, InvalidInput, NotFound } from '../../core/errors';
import { isUuid } from '../ids';
import type { Queryable } from '../types';

export const QUOTA_RESOURCES = ['servers', 'vcpus', 'ram_mb', 'volumes', 'volume_gb', 'ports'] as const;
export type QuotaResource = (typeof QUOTA_RESOURCES)[number];
export type QuotaLimits = Record<QuotaResource, number>;
export type QuotaAmounts = Partial<Record<QuotaResource, number>>;

export interface QuotaLine {
  /** -1: unlimited. */
  limit: number;
  used: number;
  reserved: number;
}

/** A reservation that would take the project over a limit (403, naming the resource). */
export class QuotaExceeded extends Forbidden {
  constructor(
    readonly resource: QuotaResource,
    readonly line: QuotaLine & { requested: number },
  ) {
    super(
      `quota exceeded for ${resource}: requested ${line.requested}, limit ${line.limit}, used ${line.used}, reserved ${line.reserved}`,
      [{ field: resource, message: `over quota (limit ${line.limit})` }],
    );
  }
}

/** The project's limits: its own where set, else the defaults. */
export async function limits(db: Queryable, projectId: string, defaults: QuotaLimits): Promise<QuotaLimits> {
  const rows = (await db('project_quotas').where({ project_id: projectId }).select(['resource', 'hard_limit'])) as Array<{
    resource: QuotaResource;
    hard_limit: number;
  }>;
  const out = { ...defaults };
  for (const r of rows) out[r.resource] = r.hard_limit;
  return out;
}

/** Sets some of the project's limits (upsert per resource). */
export async function setLimits(db: Queryable, projectId: string, patch: QuotaAmounts): Promise<void> {
  for (const [resource, limit] of Object.entries(patch)) {
    if (!Number.isSafeInteger(limit) || (limit as number) < -1) {
      throw new InvalidInput(`${resource} must be an integer >= -1`, [{ field: `body.${resource}`, message: 'must be an integer >= -1' }]);
    }
    await db('project_quotas').insert({ project_id: projectId, resource, hard_limit: limit }).onConflict(['project_id', 'resource']).merge(['hard_limit']);
  }
}

/** used (committed) and reserved per resource, zeros where the project holds nothing. */
export async function usage(db: Queryable, projectId: string): Promise<Record<QuotaResource, { used: number; reserved: number }>> {
  const rows = (await db('quota_usages')
    .where({ project_id: projectId })
    .groupBy(['resource', 'state'])
    .select(['resource', 'state', db.raw('coalesce(sum(amount), 0)::int as amount')])) as Array<{ resource: QuotaResource; state: string; amount: number }>;
  const out = Object.fromEntries(QUOTA_RESOURCES.map((r) => [r, { used: 0, reserved: 0 }])) as Record<QuotaResource, { used: number; reserved: number }>;
  for (const r of rows) out[r.resource][r.state === 'committed' ? 'used' : 'reserved'] += r.amount;
  return out;
}

/** Limit, used and reserved of every resource. */
export async function report(db: Queryable, projectId: string, defaults: QuotaLimits): Promise<Record<QuotaResource, QuotaLine>> {
  const [lim, use] = await Promise.all([limits(db, projectId, defaults), usage(db, projectId)]);
  return Object.fromEntries(QUOTA_RESOURCES.map((r) => [r, { limit: lim[r], ...use[r] }])) as Record<QuotaResource, QuotaLine>;
}

/**
 * Reserves `amounts` of the project's quota for `ownerId`, or throws QuotaExceeded naming the first
 * resource that would go over. Runs in its own transaction (a savepoint inside the caller's).
 * Idempotent: when the owner already holds rows, nothing changes.
 */
export async function reserve(db: Queryable, req: { projectId: string; ownerId: string; amounts: QuotaAmounts; defaults: QuotaLimits }): Promise<void> {
  if (!isUuid(req.ownerId)) throw new InvalidInput(`'${req.ownerId}' is not an id`, [{ field: 'owner_id', message: 'not a uuid' }]);
  const wanted = Object.entries(req.amounts).filter(([, n]) => (n ?? 0) > 0) as Array<[QuotaResource, number]>;
  if (wanted.length === 0) return;
  await db.transaction(async (trx) => {
    const project = await trx('projects').select('id').where({ id: req.projectId }).forNoKeyUpdate().first();
    if (!project) throw new NotFound(`project ${req.projectId} not found`);
    const held = await trx('quota_usages').select('resource').where({ owner_id: req.ownerId }).first();
    if (held) return;
    const [lim, use] = await Promise.all([limits(trx, req.projectId, req.defaults), usage(trx, req.projectId)]);
    for (const [resource, amount] of wanted) {
      const { used, reserved } = use[resource];
      if (lim[resource] >= 0 && used + reserved + amount > lim[resource]) {
        throw new QuotaExceeded(resource, { limit: lim[resource], used, reserved, requested: amount });
      }
    }
    await trx('quota_usages').insert(
      wanted.map(([resource, amount]) => ({ owner_id: req.ownerId, resource, project_id: req.projectId, amount, state: 'reserved' })),
    );
  });
}

/** The owner's reservation becomes usage (the resource exists). Idempotent. */
export async function commit(db: Queryable, ownerId: string): Promise<void> {
  if (!isUuid(ownerId)) return;
  await db('quota_usages').where({ owner_id: ownerId, state: 'reserved' }).update({ state: 'committed' });
}

/** Gives back whatever the owner holds, reserved or committed. Idempotent. */
export async function release(db: Queryable, ownerId: string): Promise<void> {
  if (!isUuid(ownerId)) return;
  await db('quota_usages').where({ owner_id: ownerId }).delete();
}
