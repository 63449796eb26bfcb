/**
 * What the API and the batch workflow share (workflow-safe: no Node builtins, no activity proxies):
 * the members' template, the workflow id, its input, the cancel signal and the progress query.
 */
import { defineQuery, defineSignal } from '@temporalio/workflow';
import type { Flavor } from '../activities/compute/types';
import type { NetworkRequest } from '../activities/network/types';
import type { MemberCounts } from '../db/repositories/batches';

/**
 * What each member is created from: the server create request, resolved and checked by the batch
 * service (services/batches.ts) and stored with the batch; the batch activities create members from it.
 */
export interface BatchTemplate {
  flavor: Flavor;
  imageId: string;
  networks: NetworkRequest[];
  volumes: Array<{ sizeGb: number; deleteOnTermination?: boolean }>;
  metadata: Record<string, string>;
  /** Placement asked for: members are created in this zone and join this server group. */
  availabilityZone?: string | null;
  groupId?: string | null;
}

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
