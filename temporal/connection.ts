/**
 * Connecting to Temporal (the embedded dev server or an external cluster at TEMPORAL_ADDRESS), and
 * making sure an external cluster has the Stratus namespace and search attributes.
 */
import { Client, Connection, isGrpcServiceError } from '@temporalio/client';
import { SearchAttributeType } from '@temporalio/common';
import { msToTs } from '@temporalio/common/lib/time';
import { setTimeout as sleep } from 'node:timers/promises';
import { MissingDependency } from '../core/errors';
import type { Logger } from '../core/log';
import { searchAttributes } from './constants';

/** gRPC status codes used here (from @grpc/grpc-js `status`). */
const GRPC_ALREADY_EXISTS = 6;
const GRPC_NOT_FOUND = 5;

/** temporal.api.enums.v1.IndexedValueType, by the SDK's SearchAttributeType. */
const INDEXED_VALUE_TYPE: Record<SearchAttributeType, number> = {
  [SearchAttributeType.TEXT]: 1,
  [SearchAttributeType.KEYWORD]: 2,
  [SearchAttributeType.INT]: 3,
  [SearchAttributeType.DOUBLE]: 4,
  [SearchAttributeType.BOOL]: 5,
  [SearchAttributeType.DATETIME]: 6,
  [SearchAttributeType.KEYWORD_LIST]: 7,
};

export interface TemporalConnection {
  connection: Connection;
  client: Client;
}

/**
 * Connects (verifying the server answers) and builds a Client bound to `namespace`.
 * An unreachable server is a one-line MissingDependency. Close with `connection.close()`.
 */
export async function connectTemporal(
  address: string,
  namespace: string,
  options: { connectTimeoutMs?: number } = {},
): Promise<TemporalConnection> {
  const connection = Connection.lazy({ address, connectTimeout: options.connectTimeoutMs ?? 10_000 });
  try {
    await connection.ensureConnected();
  } catch (err) {
    await connection.close();
    throw new MissingDependency(
      `Temporal is unreachable at ${address} (${oneLine(err)}): start it, or check TEMPORAL_ADDRESS (unset it to run the embedded dev server)`,
    );
  }
  return { connection, client: new Client({ connection, namespace }) };
}

export interface EnsureResult {
  namespaceCreated: boolean;
  searchAttributesAdded: string[];
}

/**
 * For an external cluster: registers `namespace` if it is missing (retention 7 days by default) and
 * adds the Stratus search attributes it lacks. Idempotent; safe when several processes race.
 * A search attribute that exists with another type is a one-line MissingDependency.
 */
export async function ensureNamespaceAndSearchAttributes(
  connection: Connection,
  namespace: string,
  options: { retentionDays?: number; log?: Logger; timeoutMs?: number } = {},
): Promise<EnsureResult> {
  const log = options.log?.child({ component: 'temporal' });
  const deadline = Date.now() + (options.timeoutMs ?? 30_000);
  let namespaceCreated = false;

  if (!(await namespaceExists(connection, namespace))) {
    try {
      await connection.workflowService.registerNamespace({
        namespace,
        description: 'Stratus control plane operations',
        workflowExecutionRetentionPeriod: msToTs(`${options.retentionDays ?? 7} days`),
      });
      namespaceCreated = true;
      log?.info({ namespace }, 'registered Temporal namespace');
    } catch (err) {
      if (!(isGrpcServiceError(err) && err.code === GRPC_ALREADY_EXISTS)) throw err;
    }
  }

  // A new namespace is described at once, but the operator service answers NOT_FOUND until the
  // server's namespace cache refreshes (seconds): poll.
  let customAttributes: Record<string, unknown> | null | undefined;
  for (;;) {
    try {
      ({ customAttributes } = await connection.operatorService.listSearchAttributes({ namespace }));
      break;
    } catch (err) {
      if (!(isGrpcServiceError(err) && err.code === GRPC_NOT_FOUND)) throw err;
      if (Date.now() > deadline) {
        throw new MissingDependency(`Temporal namespace ${namespace} was registered but is still not visible`);
      }
      await sleep(250);
    }
  }
  const existing = customAttributes ?? {};
  const missing: Record<string, number> = {};
  for (const key of Object.values(searchAttributes)) {
    const wanted = INDEXED_VALUE_TYPE[key.type];
    const have = existing[key.name];
    if (have === undefined || have === null) {
      missing[key.name] = wanted;
    } else if (Number(have) !== wanted) {
      throw new MissingDependency(
        `Temporal search attribute ${key.name} exists in namespace ${namespace} with type ${String(have)}, Stratus needs ${key.type}: remove or rename it on the cluster`,
      );
    }
  }
  const searchAttributesAdded = Object.keys(missing);
  if (searchAttributesAdded.length > 0) {
    try {
      await connection.operatorService.addSearchAttributes({ namespace, searchAttributes: missing });
    } catch (err) {
      // Another process added them first.
      if (!(isGrpcServiceError(err) && err.code === GRPC_ALREADY_EXISTS)) throw err;
    }
    log?.info({ namespace, searchAttributes: searchAttributesAdded }, 'added Temporal search attributes');
  }
  return { namespaceCreated, searchAttributesAdded };
}

/** Temporal UI URL of one workflow run's history. */
export function temporalUiRunUrl(uiUrl: string, namespace: string, workflowId: string, runId: string): string {
  const base = uiUrl.replace(/\/+$/, '');
  const e = encodeURIComponent;
  return `${base}/namespaces/${e(namespace)}/workflows/${e(workflowId)}/${e(runId)}/history`;
}

async function namespaceExists(connection: Connection, namespace: string): Promise<boolean> {
  try {
    await connection.workflowService.describeNamespace({ namespace });
    return true;
  } catch (err) {
    if (isGrpcServiceError(err) && err.code === GRPC_NOT_FOUND) return false;
    throw err;
  }
}

function oneLine(err: unknown): string {
  const cause = (err as { cause?: unknown }).cause;
  const message = cause instanceof Error ? cause.message : err instanceof Error ? err.message : String(err);
  return message.replace(/\s+/g, ' ').trim();
}
