/**
 * What the API and the batch workflow share (workflow-safe: no Node builtins, no activity proxies):
 * the workflow id, its input, the cancel signal and the progress query.
 */
import { defineQuery, defineSignal } from '@temporalio/workflow';
import type { MemberCounts } from '../db/repositories/batches';

export const cancelBatchSignal = defineSignal<[]>('cancel');
export const batchProgressQuery = defineQuery<BatchRunState>('progress');

export interface ServerBatchInput {
  batchId: string;
  operationId: string;
  count: number;
  minCount: number;
  maxParallel: number;
  rollbackOnFailure: boolean;
  /** Carried over continue-as-new: the next member index to launch, and a rollback under way. */
  next?: number;
  rollingBack?: 'cancel' | 'failure' | 'delete';
}

export interface BatchRunState {
  phase: 'launching' | 'rolling_back' | 'done';
  next: number;
  counts: MemberCounts | null;
}

export function serverBatchWorkflowId(batchId: string): string {
  return `batch:${batchId}`;
}
