/**
 * Names shared by everything that talks to Temporal: task queues and search attributes.
 * Imported by workflows too, so this file must stay free of Node builtins.
 */
import { defineSearchAttributeKey, SearchAttributeType } from '@temporalio/common';

/**
 * The default conductor task queue (every workflow and every activity that touches the database runs
 * there). Only a default: a cloud's queue is `config.temporal.conductorTaskQueue`
 * (STRATUS_CONDUCTOR_TASK_QUEUE), so code that starts a workflow takes it from there.
 */
export const CONDUCTOR_TASK_QUEUE = 'stratus-conductor';

/** One queue per hypervisor host: activities that must run on that host (libvirt). */
export function hostTaskQueue(hostName: string): string {
  return `host.${hostName}`;
}

/** Search attributes, so Temporal UI can list every operation of a project or a resource. */
export const searchAttributes = {
  project: defineSearchAttributeKey('StratusProject', SearchAttributeType.KEYWORD),
  resourceId: defineSearchAttributeKey('StratusResourceId', SearchAttributeType.KEYWORD),
  operationKind: defineSearchAttributeKey('StratusOperationKind', SearchAttributeType.KEYWORD),
} as const;

/** The same attributes as `name → type` for the dev server's `--search-attribute Name=Type` flags. */
export const SEARCH_ATTRIBUTE_FLAGS: ReadonlyArray<string> = Object.values(searchAttributes).map(
  (key) => `${key.name}=Keyword`,
);

/** The sampler of one host for one metering interval: every meter of that host with that interval. */
export function meterHostWorkflowId(hostName: string, intervalMs: number): string {
  return `meter-host:${hostName}:${intervalMs}`;
}
