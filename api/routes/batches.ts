/**
 * Server batches: `count` servers from one create request, as one operation. Members are ordinary
 * servers (`GET /v1/servers?batch_id=`), each made by the ordinary create workflow; the batch
 * workflow (workflows/server-batch.ts) paces them, and retry / cancel act on the batch as a whole.
 */
import { randomUUID } from 'node:crypto';
import { Router, type Request } from 'express';
import { Conflict, DomainError, InvalidInput } from '../../core/errors';
import type { BatchTemplate } from '../../activities/compute/batch';
import * as batches from '../../db/repositories/batches';
import * as operations from '../../db/repositories/operations';
import * as servers from '../../db/repositories/servers';
import type { components } from '../../openapi/types';
import { cancelBatchSignal, type ServerBatchInput } from '../../workflows/batch-contract';
import { OPERATIONS } from '../../workflows/catalog';
import type { AuthContext, IdentityService } from '../../services/identity';
import { listScope, visibleOr404 } from '../../services/visibility';
import { authenticate, callerOf, requireWriter } from '../auth';
import { presentOperation, startOperation, type OperationDeps } from '../operations';
import { pageQuery } from '../pagination';
import { checkPlacementRequest } from '../../services/server-requests';
import { createComputeService } from '../../services/compute';
import type { JsonBody } from '../body';

type Schemas = components['schemas'];
type BatchBody = {
  template: JsonBody<'createServer'>;
  count: number;
  name_pattern?: string;
  min_count?: number;
  max_parallel?: number;
  rollback_on_failure?: boolean;
};

/** The server checks name `body.<field>`; in a batch the field lives in the template. */
function inTemplate(err: unknown): never {
  if (err instanceof DomainError) for (const f of err.fields) f.field = f.field.replace(/^body\.(?!template\.)/, 'body.template.');
  throw err;
}

/** Members in BUILD at once when the request does not say. */
const DEFAULT_MAX_PARALLEL = 20;

export function batchesRouter(deps: OperationDeps & { identity: IdentityService }): Router {
  const { db } = deps;
  const compute = createComputeService(db);
  const router = Router();
  router.use('/v1/server-batches', authenticate(deps.identity));

  async function visibleBatch(auth: AuthContext, id: string): Promise<batches.Batch<BatchTemplate>> {
    return visibleOr404(auth, await batches.get<BatchTemplate>(db, id), { kind: 'batch', id });
  }

  async function present(batch: batches.Batch, withMembers?: { req: Request }): Promise<Schemas['ServerBatch']> {
    const [counts, ops] = await Promise.all([batches.memberCounts(db, batch.id), operations.listByResource(db, batch.id)]);
    const latest = ops[ops.length - 1];
    const base = deps.config.api.publicUrl;
    let members: Schemas['ServerBatch']['members'];
    if (withMembers) {
      const page = await servers.list(db, { ...pageQuery(withMembers.req), batchId: batch.id, includeDeleted: true });
      members = {
        items: page.items.map((s) => ({ index: s.batchIndex ?? 0, server_id: s.id, name: s.name, status: s.status, task_state: s.taskState, fault: s.fault })),
        next: page.next,
      };
    }
    return {
      id: batch.id,
      name: batch.name,
      status: batch.status,
      count: batch.count,
      min_count: batch.minCount,
      max_parallel: batch.maxParallel,
      rollback_on_failure: batch.rollbackOnFailure,
      name_pattern: batch.namePattern,
      counts: {
        pending: batch.count - counts.created,
        building: counts.BUILD,
        active: counts.ACTIVE,
        shutoff: counts.SHUTOFF,
        error: counts.ERROR,
        deleted: counts.DELETED,
      },
      fault: batch.fault,
      ...(members ? { members } : {}),
      created_at: batch.createdAt.toISOString(),
      updated_at: batch.updatedAt.toISOString(),
      links: {
        self: `${base}/v1/server-batches/${batch.id}`,
        servers: `${base}/v1/servers?batch_id=${batch.id}`,
        ...(latest ? { operation: `${base}/v1/operations/${latest.id}`, temporal_ui: (await presentOperation(deps, latest, false)).links.temporal_ui } : {}),
      },
    };
  }

  /** Records a run of the batch workflow and starts it (a new run of `batch:<id>` for a retry). */
  async function run(batch: batches.Batch, name: 'batchCreate' | 'batchRetry' | 'batchDelete'): Promise<operations.Operation> {
    return startOperation(deps, {
      def: OPERATIONS[name],
      resourceId: batch.id,
      projectId: batch.projectId,
      input: (operationId): ServerBatchInput => ({
        batchId: batch.id,
        operationId,
        count: batch.count,
        minCount: batch.minCount,
        maxParallel: batch.maxParallel,
        rollbackOnFailure: batch.rollbackOnFailure,
        ...(name === 'batchDelete' ? { rollingBack: 'delete' as const } : {}),
      }),
    });
  }

  router.post('/v1/server-batches', async (req, res) => {
    const auth = callerOf(req);
    requireWriter(auth);
    const body = req.body as BatchBody;
    const minCount = body.min_count ?? body.count;
    if (minCount > body.count) throw new InvalidInput('min_count cannot exceed count', [{ field: 'body.min_count', message: `at most count (${body.count})` }]);
    for (const [i, n] of (body.template.networks ?? []).entries()) {
      if (n.port_id) throw new InvalidInput('a batch cannot share one port between members', [{ field: `body.template.networks[${i}].port_id`, message: 'use network_id' }]);
      if (n.fixed_ip) throw new InvalidInput('a batch cannot give one address to every member', [{ field: `body.template.networks[${i}].fixed_ip`, message: 'not allowed in a batch' }]);
    }
    for (const [i, v] of (body.template.volumes ?? []).entries()) {
      if (v.volume_id) throw new InvalidInput('a batch cannot attach one volume to every member', [{ field: `body.template.volumes[${i}].volume_id`, message: 'use size_gb' }]);
    }
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
    const op = await run(batch, 'batchCreate').catch(async (err: unknown) => {
      // Nothing half-created: a batch whose workflow never started never existed for users.
      await db('server_batches').where({ id: batch.id }).delete().catch(() => undefined);
      throw err;
    });
    req.log.info({ batch: batch.id, count: batch.count, operation: op.id }, 'server batch accepted');
    res.status(202).json({ batch: await present(batch), operation: await presentOperation(deps, op, false) });
  });

  router.get('/v1/server-batches', async (req, res) => {
    const auth = callerOf(req);
    const page = await batches.list(db, { ...pageQuery(req), ...listScope(auth) });
    res.json({ server_batches: await Promise.all(page.items.map((b) => present(b))), next: page.next });
  });

  router.get('/v1/server-batches/:batch_id', async (req, res) => {
    const auth = callerOf(req);
    res.json(await present(await visibleBatch(auth, req.params.batch_id as string), { req }));
  });

  router.post('/v1/server-batches/:batch_id/retry', async (req, res) => {
    const auth = callerOf(req);
    requireWriter(auth);
    const batch = await visibleBatch(auth, req.params.batch_id as string);
    const counts = await batches.memberCounts(db, batch.id);
    if (batch.status === 'running' || batch.status === 'cancelling') throw new Conflict(`batch ${batch.id} is ${batch.status}: wait for it to end`);
    if (['cancelled', 'deleting', 'deleted'].includes(batch.status)) throw new Conflict(`batch ${batch.id} is ${batch.status}: create a new batch`);
    if (counts.ERROR === 0 && counts.created === batch.count) throw new Conflict(`batch ${batch.id} has no failed member to retry`);
    const running = await batches.transition(db, batch.id, { from: ['succeeded', 'failed'], to: 'running', fault: null });
    const op = await run(running, 'batchRetry').catch(async (err: unknown) => {
      await batches.transition(db, batch.id, { from: ['running'], to: batch.status, fault: batch.fault }).catch(() => undefined);
      throw err;
    });
    res.status(202).json({ batch: await present(running), operation: await presentOperation(deps, op, false) });
  });

  router.post('/v1/server-batches/:batch_id/cancel', async (req, res) => {
    const auth = callerOf(req);
    requireWriter(auth);
    const batch = await visibleBatch(auth, req.params.batch_id as string);
    const ops = await operations.listByResource(db, batch.id);
    const op = ops.reverse().find((o) => o.status === 'running');
    if (batch.status === 'cancelling' && op) return void res.status(202).json({ batch: await present(batch), operation: await presentOperation(deps, op, false) });
    const cancelling = await batches.transition(db, batch.id, { from: ['running'], to: 'cancelling' });
    if (!op) throw new Conflict(`batch ${batch.id} has no run to cancel`);
    await deps.temporal.workflow.getHandle(op.workflowId).signal(cancelBatchSignal);
    res.status(202).json({ batch: await present(cancelling), operation: await presentOperation(deps, op, false) });
  });

  router.delete('/v1/server-batches/:batch_id', async (req, res) => {
    const auth = callerOf(req);
    requireWriter(auth);
    const batch = await visibleBatch(auth, req.params.batch_id as string);
    const running = (await operations.listByResource(db, batch.id)).find((o) => o.kind === OPERATIONS.batchDelete.kind && o.status === 'running');
    if (running) return void res.status(202).json({ batch: await present(batch), operation: await presentOperation(deps, running, false) });
    if (batch.status === 'running' || batch.status === 'cancelling') throw new Conflict(`batch ${batch.id} is ${batch.status}: cancel it instead`);
    const deleting = await batches.transition(db, batch.id, { from: ['succeeded', 'failed', 'cancelled'], to: 'deleting' });
    const op = await run(deleting, 'batchDelete').catch(async (err: unknown) => {
      await batches.transition(db, batch.id, { from: ['deleting'], to: batch.status }).catch(() => undefined);
      throw err;
    });
    res.status(202).json({ batch: await present(deleting), operation: await presentOperation(deps, op, false) });
  });

  return router;
}
