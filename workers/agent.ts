/**
 * The host agent (nova-compute's job): one per hypervisor host. It runs host-side activities on the
 * `host.<name>` task queue and heartbeats to its `hostMonitor` workflow (started on its cloud's
 * conductor task queue), which registers the host in the database. It holds no database credentials.
 */
import path from 'node:path';
import type { Client } from '@temporalio/client';
import { NativeConnection, Worker } from '@temporalio/worker';
import { createComputeHostActivities, domainTypeFor } from '../activities/compute/host';
import type { FaultPlan } from '../activities/fault-injection';
import { createImageHostActivities } from '../activities/image/host';
import { createMeteringHostActivities } from '../activities/metering/host';
import { activityMetricsInterceptor } from './metrics';
import { createNetworkHostActivities } from '../activities/network/host';
import { createStorageHostActivities } from '../activities/storage/host';
import type { Config } from '../core/config';
import type { Logger } from '../core/log';
import type { Hypervisor } from '../libvirt';
import { withFaults } from '../libvirt/faulty-hypervisor';
import { hostTaskQueue } from '../temporal/constants';
import {
  goodbyeSignal,
  heartbeatSignal,
  hostMonitor,
  hostMonitorWorkflowId,
  type HostMonitorInput,
} from '../workflows/host-monitor';

export interface HostAgentDeps {
  connection: NativeConnection;
  client: Client;
  namespace: string;
  /** The cloud's conductor task queue (config.temporal.conductorTaskQueue): where the host's monitor runs. */
  conductorTaskQueue: string;
  hypervisor: Hypervisor;
  host: Config['host'];
  log: Logger;
  /** Serial console logs; default `<image cache dir>/../console` (`<data dir>/hosts/<host>/console`). */
  consoleDir?: string;
  /** Host activities run at once (STRATUS_HOST_MAX_CONCURRENT_ACTIVITIES); more wait in the task queue. */
  maxConcurrentActivities?: number;
  /** Tests only: failure points the agent's hypervisor checks before each call (libvirt/faulty-hypervisor.ts). */
  faults?: FaultPlan;
}

export interface HostAgent {
  worker: Worker;
  /** Sends one heartbeat now (also the registration); resolves once Temporal accepted it. */
  heartbeat(): Promise<void>;
  /**
   * Stops heartbeating and tells the monitor the host is leaving. The worker is shut down by its owner.
   * `goodbye: false` (tests: a host that dies) stops without telling anyone.
   */
  stopHeartbeats(opts?: { goodbye?: boolean }): Promise<void>;
}

export async function createHostAgent(deps: HostAgentDeps): Promise<HostAgent> {
  const { connection, client, namespace, host, log } = deps;
  const hypervisor = deps.faults ? withFaults(deps.hypervisor, deps.faults) : deps.hypervisor;
  const agentLog = log.child({ component: 'agent', host: host.name });
  await hypervisor.ensurePool(host.storagePool, host.storagePoolDir);
  const imageActivities = createImageHostActivities({ cacheDir: host.imageCacheDir, log: agentLog });
  const { ensureImageCached } = imageActivities;
  const activities = createComputeHostActivities({
    hostName: host.name,
    storagePool: host.storagePool,
    hypervisor,
    overrides: { vcpus: host.vcpus, ramMb: host.ramMb, diskGb: host.diskGb },
    ensureImageCached,
    consoleDir: deps.consoleDir ?? path.join(path.dirname(host.imageCacheDir), 'console'),
    domainType: domainTypeFor(hypervisor, host.domainType),
    log: agentLog,
  });
  const storageActivities = createStorageHostActivities({ hypervisor, storagePool: host.storagePool, ensureImageCached, log: agentLog });
  const networkActivities = createNetworkHostActivities({ hypervisor, log: agentLog });
  const meteringActivities = createMeteringHostActivities({ hypervisor, hostName: host.name, log: agentLog });
  const worker = await Worker.create({
    connection,
    namespace,
    taskQueue: hostTaskQueue(host.name),
    ...(deps.maxConcurrentActivities ? { maxConcurrentActivityTaskExecutions: deps.maxConcurrentActivities } : {}),
    activities: { ...activities, ...imageActivities, ...storageActivities, ...networkActivities, ...meteringActivities },
    interceptors: { activity: [activityMetricsInterceptor(hostTaskQueue(host.name))] },
  });
  const workflowId = hostMonitorWorkflowId(host.name);
  const input: HostMonitorInput = { hostName: host.name, heartbeatSeconds: host.heartbeatSeconds };

  async function heartbeat(): Promise<void> {
    const report = await activities.describeHost();
    await client.workflow.signalWithStart(hostMonitor, {
      workflowId,
      taskQueue: deps.conductorTaskQueue,
      args: [input],
      signal: heartbeatSignal,
      signalArgs: [report],
    });
  }

  let timer: NodeJS.Timeout | undefined = setInterval(() => {
    heartbeat().catch((err: unknown) => agentLog.warn({ err }, 'heartbeat failed; will retry'));
  }, host.heartbeatSeconds * 1000);

  return {
    worker,
    heartbeat,
    async stopHeartbeats({ goodbye = true } = {}) {
      if (timer) clearInterval(timer);
      timer = undefined;
      if (!goodbye) return;
      await client.workflow
        .getHandle(workflowId)
        .signal(goodbyeSignal)
        .catch((err: unknown) => agentLog.warn({ err }, 'could not say goodbye to the host monitor'));
    },
  };
}
