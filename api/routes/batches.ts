/**
 * Server batches: `count` servers from one create request, as one operation. The rules live in the
 * batch service (services/batches.ts); this router parses, starts the batch workflow's runs as
 * operations, and presents.
 */
import { Router, type Request, type Response } from 'express';
import type { components } from '../../openapi/types';
import { createBatchService, type Batch, type BatchBody, type BatchDetails, type Operation } from '../../services/batches';
import type { IdentityService } from '../../services/identity';
import { cancelBatchSignal, type ServerBatchInput } from '../../workflows/batch-contract';
import { OPERATIONS } from '../../workflows/catalog';
import { authenticate, callerOf, requireWriter } from '../auth';
import { presentOperation, startOperation, type OperationDeps } from '../operations';
import { pageQuery } from '../pagination';

type Schemas = components['schemas'];

export function batchesRouter(deps: OperationDeps & { identity: IdentityService }): Router {
  const service = createBatchService(deps.db);
  const router = Router();
  router.use('/v1/server-batches', authenticate(deps.identity));

  /** The batch with its counts and latest operation; with `withMembers`, a page of its members. */
  async function present(batch: Batch, withMembers?: { req: Request }): Promise<Schemas['ServerBatch']> {
    const { counts, latest, members: page }: BatchDetails = await service.details(batch, withMembers ? pageQuery(withMembers.req) : undefined);
    const base = deps.config.api.publicUrl;
    const members: Schemas['ServerBatch']['members'] = page && {
      items: page.items.map((s) => ({ index: s.batchIndex ?? 0, server_id: s.id, name: s.name, status: s.status, task_state: s.taskState, fault: s.fault })),
      next: page.next,
    };
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
  const run = (name: 'batchCreate' | 'batchRetry' | 'batchDelete') => (batch: Batch) =>
    startOperation(deps, {
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

  /** 202 with the batch and the operation acting on it. */
  async function accepted(res: Response, { batch, operation }: { batch: Batch; operation: Operation }): Promise<void> {
    res.status(202).json({ batch: await present(batch), operation: await presentOperation(deps, operation, false) });
  }

  router.post('/v1/server-batches', async (req, res) => {
    const auth = callerOf(req);
    requireWriter(auth);
    const created = await service.create(auth, req.body as BatchBody, run('batchCreate'));
    req.log.info({ batch: created.batch.id, count: created.batch.count, operation: created.operation.id }, 'server batch accepted');
    await accepted(res, created);
  });

  router.get('/v1/server-batches', async (req, res) => {
    const page = await service.list(callerOf(req), pageQuery(req));
    res.json({ server_batches: await Promise.all(page.items.map((b) => present(b))), next: page.next });
  });

  router.get('/v1/server-batches/:batch_id', async (req, res) => {
    res.json(await present(await service.get(callerOf(req), req.params.batch_id as string), { req }));
  });

  router.post('/v1/server-batches/:batch_id/retry', async (req, res) => {
    const auth = callerOf(req);
    requireWriter(auth);
    await accepted(res, await service.retry(auth, req.params.batch_id as string, run('batchRetry')));
  });

  router.post('/v1/server-batches/:batch_id/cancel', async (req, res) => {
    const auth = callerOf(req);
    requireWriter(auth);
    const signal = (op: Operation) => deps.temporal.workflow.getHandle(op.workflowId).signal(cancelBatchSignal);
    await accepted(res, await service.cancel(auth, req.params.batch_id as string, signal));
  });

  router.delete('/v1/server-batches/:batch_id', async (req, res) => {
    const auth = callerOf(req);
    requireWriter(auth);
    await accepted(res, await service.remove(auth, req.params.batch_id as string, run('batchDelete')));
  });

  return router;
}
