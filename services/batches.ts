/**
 * Server batches: `count` servers from one create request, as one operation. Members are ordinary
 * servers (`GET /v1/servers?batch_id=`), each made by the ordinary create workflow; the batch
 * workflow (workflows/server-batch.ts) paces them, and retry / cancel / delete act on the batch as a
 * whole. This service holds the rules: what a batch request may ask, which status allows which
 * action, and how a run that could not start is undone. Starting a run is the caller's (`start`):
 * the API records an operation and starts the batch workflow.
 */
import { randomUUID } from 'node:crypto';
import type { Knex } from 'knex';
import { Conflict, DomainError, InvalidInput } from '../core/errors';
import * as batches from '../db/repositories/batches';
import * as operations from '../db/repositories/operations';
import * as servers from '../db/repositories/servers';
import type { Page, PageRequest } from '../db/types';
import type { operations as ApiOperations } from '../openapi/types';
import type { BatchTemplate } from '../workflows/batch-contract';
import { OPERATIONS } from '../workflows/catalog';
import { createComputeService } from './compute';
import type { AuthContext } from './identity';
import { checkPlacementRequest } from './server-requests';
import { listScope, visibleOr404 } from './visibility';

export type Batch = batches.Batch;
export type MemberCounts = batches.MemberCounts;
export type Operation = operations.Operation;
export type BatchBody = ApiOperations['createServerBatch']['requestBody']['content']['application/json'];

/** A batch with its member counts, its latest operation and, when asked for, a page of its members. */
export interface BatchDetails {
  batch: Batch;
  counts: MemberCounts;
  latest: Operation | undefined;
  members?: Page<servers.Server>;
}

/** Records and starts a run of the batch workflow (a new run of `batch:<id>` for a retry). */
export type StartRun = (batch: Batch) => Promise<Operation>;

/** Members in BUILD at once when the request does not say. */
const DEFAULT_MAX_PARALLEL = 20;

/** The server checks name `body.<field>`; in a batch the field lives in the template. */
function inTemplate(err: unknown): never {
  if (err instanceof DomainError) for (const f of err.fields) f.field = f.field.replace(/^body\.(?!template\.)/, 'body.template.');
  throw err;
}

/** What every member cannot share: one port, one address, one volume. */
function checkRequest(body: BatchBody): number {
  const minCount = body.min_count ?? body.count;
  if (minCount > body.count) throw new InvalidInput('min_count cannot exceed count', [{ field: 'body.min_count', message: `at most count (${body.count})` }]);
  for (const [i, n] of (body.template.networks ?? []).entries()) {
    if (n.port_id) throw new InvalidInput('a batch cannot share one port between members', [{ field: `body.template.networks[${i}].port_id`, message: 'use network_id' }]);
    if (n.fixed_ip) throw new InvalidInput('a batch cannot give one address to every member', [{ field: `body.template.networks[${i}].fixed_ip`, message: 'not allowed in a batch' }]);
  }
  for (const [i, v] of (body.template.volumes ?? []).entries()) {
    if (v.volume_id) throw new InvalidInput('a batch cannot attach one volume to every member', [{ field: `body.template.volumes[${i}].volume_id`, message: 'use size_gb' }]);
  }
  return minCount;
}

export function createBatchService(db: Knex) {
  const compute = createComputeService(db);

  async function visible(auth: AuthContext, id: string): Promise<batches.Batch<BatchTemplate>> {
    return visibleOr404(auth, await batches.get<BatchTemplate>(db, id), { kind: 'batch', id });
  }

  return {
    get: visible,

    list(auth: AuthContext, page: PageRequest): Promise<Page<Batch>> {
      return batches.list(db, { ...page, ...listScope(auth) });
    },

    /** Counts and latest operation of a batch; a page of its members (deleted ones too) with `members`. */
    async details(batch: Batch, members?: PageRequest): Promise<BatchDetails> {
      const [counts, ops, page] = await Promise.all([
        batches.memberCounts(db, batch.id),
        operations.listByResource(db, batch.id),
        members ? servers.list(db, { ...members, batchId: batch.id, includeDeleted: true }) : undefined,
      ]);
      return { batch, counts, latest: ops[ops.length - 1], ...(page ? { members: page } : {}) };
    },

    /** Checks and resolves the request, records the batch and starts its run; nothing stays when the run cannot start. */
    async create(auth: AuthContext, body: BatchBody, start: StartRun): Promise<{ batch: Batch; operation: Operation }> {
      const minCount = checkRequest(body);
      const plan = await compute.resolveCreate(auth, body.template).catch(inTemplate);
      const placement = await checkPlacementRequest(db, auth, body.template).catch(inTemplate);
      const template: BatchTemplate = {
        flavor: plan.flavor,
        imageId: plan.imageId,
        networks: plan.networks,
        volumes: plan.volumes.flatMap((v) => ('sizeGb' in v ? [v] : [])),
        metadata: body.template.metadata ?? {},
        availabilityZone: placement.availabilityZone,
        groupId: placement.group?.id ?? null,
      };
      const batch = await batches.create(db, {
        id: randomUUID(),
        projectId: auth.project.id,
        userId: auth.user.id,
        name: body.template.name,
        namePattern: body.name_pattern ?? `${body.template.name}-{n}`,
        template,
        count: body.count,
        minCount,
        maxParallel: body.max_parallel ?? Math.min(DEFAULT_MAX_PARALLEL, body.count),
        rollbackOnFailure: body.rollback_on_failure ?? false,
      });
      const operation = await start(batch).catch(async (err: unknown) => {
        // Nothing half-created: a batch whose workflow never started never existed for users.
        await batches.remove(db, batch.id).catch(() => undefined);
        throw err;
      });
      return { batch, operation };
    },

    /** Runs the batch again for its failed (or never created) members, once it has ended. */
    async retry(auth: AuthContext, id: string, start: StartRun): Promise<{ batch: Batch; operation: Operation }> {
      const batch = await visible(auth, id);
      const counts = await batches.memberCounts(db, batch.id);
      if (batch.status === 'running' || batch.status === 'cancelling') throw new Conflict(`batch ${batch.id} is ${batch.status}: wait for it to end`);
      if (['cancelled', 'deleting', 'deleted'].includes(batch.status)) throw new Conflict(`batch ${batch.id} is ${batch.status}: create a new batch`);
      if (counts.ERROR === 0 && counts.created === batch.count) throw new Conflict(`batch ${batch.id} has no failed member to retry`);
      const running = await batches.transition(db, batch.id, { from: ['succeeded', 'failed'], to: 'running', fault: null });
      const operation = await start(running).catch(async (err: unknown) => {
        await batches.transition(db, batch.id, { from: ['running'], to: batch.status, fault: batch.fault }).catch(() => undefined);
        throw err;
      });
      return { batch: running, operation };
    },

    /** Cancels the running run (`signal` tells its workflow); a batch already cancelling answers with that run. */
    async cancel(auth: AuthContext, id: string, signal: (run: Operation) => Promise<void>): Promise<{ batch: Batch; operation: Operation }> {
      const batch = await visible(auth, id);
      const ops = await operations.listByResource(db, batch.id);
      const op = ops.reverse().find((o) => o.status === 'running');
      if (batch.status === 'cancelling' && op) return { batch, operation: op };
      const cancelling = await batches.transition(db, batch.id, { from: ['running'], to: 'cancelling' });
      if (!op) throw new Conflict(`batch ${batch.id} has no run to cancel`);
      await signal(op);
      return { batch: cancelling, operation: op };
    },

    /** Deletes an ended batch's members through its delete run; a delete already running answers with that run. */
    async remove(auth: AuthContext, id: string, start: StartRun): Promise<{ batch: Batch; operation: Operation }> {
      const batch = await visible(auth, id);
      const running = (await operations.listByResource(db, batch.id)).find((o) => o.kind === OPERATIONS.batchDelete.kind && o.status === 'running');
      if (running) return { batch, operation: running };
      if (batch.status === 'running' || batch.status === 'cancelling') throw new Conflict(`batch ${batch.id} is ${batch.status}: cancel it instead`);
      const deleting = await batches.transition(db, batch.id, { from: ['succeeded', 'failed', 'cancelled'], to: 'deleting' });
      const operation = await start(deleting).catch(async (err: unknown) => {
        await batches.transition(db, batch.id, { from: ['deleting'], to: batch.status }).catch(() => undefined);
        throw err;
      });
      return { batch: deleting, operation };
    },
  };
}

export type BatchService = ReturnType<typeof createBatchService>;
