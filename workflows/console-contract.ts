/**
 * What the API and the console session workflow share (workflow-safe: no Node builtins, no activity
 * proxies): the session's workflow id, its input, and the `read` update.
 */
import { defineUpdate } from '@temporalio/workflow';
import type { ConsoleChunk, ConsoleChunkRequest } from '../activities/compute/types';

export type { ConsoleChunk };

export interface ConsoleSessionInput {
  serverId: string;
  /** The session ends once this long has passed without a read (STRATUS_CONSOLE_IDLE_SECONDS). */
  idleSeconds: number;
  /** Reads one run answers before it continues as new (default CONSOLE_READS_PER_RUN; tests lower it). */
  readsPerRun?: number;
}

/** One read: where the server runs now (the API passes it, so a session follows a rescheduled server). */
export interface ConsoleReadRequest extends ConsoleChunkRequest {
  host: string;
  maxBytes: number;
}

export const consoleReadUpdate = defineUpdate<ConsoleChunk, [ConsoleReadRequest]>('read');

/** Failure types of a read: its host did not answer, or failed to read the log (the API answers 503). */
export const CONSOLE_HOST_UNAVAILABLE = 'HostUnavailable';
export const CONSOLE_READ_FAILED = 'ConsoleReadFailed';

/** One console session per server. (The per-read workflows before it were `server:<id>:console:<uuid>`.) */
export function consoleSessionWorkflowId(serverId: string): string {
  return `server:${serverId}:console`;
}
