/**
 * Extra host agents beside a test cloud, in the test process: each has its own name (so its own
 * `host.<name>` task queue and hostMonitor), its own data dir (image cache, console logs, pool dir),
 * its own Temporal worker connection, and optionally its own FaultPlan.
 *
 * libvirt state, two choices (libvirt/libvirt-hypervisor.ts):
 *  - 'private' (default): `test:///<data dir>/node.xml`. The test driver keeps a file URI's state
 *    per CONNECTION, and the binding opens one connection ("lane") for such URIs, so the agent's
 *    `hypervisor` below IS that host: `host.census()` shows exactly what is on this host and on no
 *    other. Use it to prove "ACTIVE on B, nothing left on A".
 *  - 'shared': `test:///default`, one state per PROCESS, shared with the cloud's own agent and with
 *    any `openHypervisor('test:///default')` of the test. Domain and volume names carry the server id,
 *    so hosts do not collide; a census then sees every shared host at once (compare before/after).
 *
 * Dead hosts: `kill()` stops the heartbeats WITHOUT the goodbye signal and shuts the worker down, so
 * from the control plane the host simply goes silent (its queue has no poller; its row stops being
 * refreshed). `stop()` is the orderly leave (goodbye: the monitor marks it down at once).
 * A real SIGKILL of a separate agent process is in test/chaos/processes.ts.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { NativeConnection, type Worker } from '@temporalio/worker';
import type { FaultPlan } from '../../activities/fault-injection';
import { loadConfig, type Config } from '../../core/config';
import type { Logger } from '../../core/log';
import { openHypervisor, type Hypervisor } from '../../libvirt';
import { connectTemporal } from '../../temporal/connection';
import { createHostAgent } from '../../workers/agent';
import { installTemporalRuntime } from '../../workers/temporal-runtime';
import { census, type Census, type CensusOptions } from './libvirt-census';

export type HostLibvirt = 'private' | 'shared';

export interface TestHostOptions {
  /** Host name (default `test-<random>`). */
  name?: string;
  /** See the file comment (default 'private'). */
  libvirt?: HostLibvirt;
  /** Failure points this agent's hypervisor checks (libvirt/faulty-hypervisor.ts). */
  faults?: FaultPlan;
  /** Heartbeat period (default 1 s, as the test cloud's conductor expects). */
  heartbeatSeconds?: number;
  /** Extra STRATUS_* variables for this agent (capacity: STRATUS_HOST_VCPUS, ...). */
  env?: Record<string, string>;
}

export interface TestHost {
  name: string;
  config: Config['host'];
  /** The agent's own hypervisor connection (for 'private': the only view of this host). */
  hypervisor: Hypervisor;
  /** Domains, pool volumes, networks and DHCP reservations on this host. */
  census(opts?: CensusOptions): Promise<Census>;
  /** Orderly stop: worker shut down, heartbeats stopped with a goodbye. Idempotent. */
  stop(): Promise<void>;
  /** The host dies: heartbeats stop without a goodbye, nothing polls its queue any more. Idempotent. */
  kill(): Promise<void>;
  /** True once stop() or kill() ran. */
  readonly gone: boolean;
}

/** Minimal node description for a private test-driver host (2 CPUs, 8 GiB). */
const NODE_XML = `<node>
  <cpu><mhz>2000</mhz><model>i686</model><active>2</active><nodes>1</nodes><sockets>1</sockets><cores>2</cores><threads>1</threads></cpu>
  <memory>8388608</memory>
</node>
`;

/** Where a test host's agent reaches its cloud: the Temporal server, namespace and the cloud's conductor task queue. */
export interface TestHostTemporal {
  address: string;
  namespace: string;
  /** The cloud's STRATUS_CONDUCTOR_TASK_QUEUE: the host's monitor runs there, served by that cloud's conductor only. */
  conductorTaskQueue: string;
}

/**
 * Starts one host agent against the Temporal server at `temporal` and waits for its first heartbeat
 * to be accepted (the conductor registers the host a moment later: poll GET /v1/hosts if needed).
 */
export async function startTestHost(
  temporal: TestHostTemporal,
  log: Logger,
  options: TestHostOptions = {},
): Promise<TestHost> {
  const name = options.name ?? `test-${randomBytes(4).toString('hex')}`;
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), `stratus-host-${name}-`));
  const mode = options.libvirt ?? 'private';
  let libvirtUri = 'test:///default';
  if (mode === 'private') {
    const nodeXml = path.join(dataDir, 'node.xml');
    fs.writeFileSync(nodeXml, NODE_XML);
    libvirtUri = `test://${nodeXml}`;
  }
  const { host: config, temporal: temporalConfig } = loadConfig({
    STRATUS_DATA_DIR: dataDir,
    TEMPORAL_ADDRESS: temporal.address,
    TEMPORAL_NAMESPACE: temporal.namespace,
    STRATUS_CONDUCTOR_TASK_QUEUE: temporal.conductorTaskQueue,
    STRATUS_HOST_NAME: name,
    STRATUS_HOST_HEARTBEAT_SECONDS: String(options.heartbeatSeconds ?? 1),
    STRATUS_LIBVIRT_URI: libvirtUri,
    ...options.env,
  });

  installTemporalRuntime(log, { forwardCoreLogs: false }); // before the first Worker (else the SDK logs to the console)
  const cleanups: Array<() => Promise<unknown>> = [];
  const unwind = async () => {
    for (const c of cleanups.splice(0).reverse()) await c().catch(() => undefined);
  };
  try {
    const hypervisor = await openHypervisor(config.libvirtUri);
    cleanups.push(() => hypervisor.close());
    const { connection: clientConnection, client } = await connectTemporal(temporal.address, temporal.namespace);
    cleanups.push(() => clientConnection.close());
    const native = await NativeConnection.connect({ address: temporal.address });
    cleanups.push(() => native.close());
    const agent = await createHostAgent({
      connection: native,
      client,
      namespace: temporal.namespace,
      conductorTaskQueue: temporalConfig.conductorTaskQueue,
      hypervisor,
      host: config,
      log,
      ...(options.faults ? { faults: options.faults } : {}),
    });
    const running = runUntilShutdown(agent.worker);
    await agent.heartbeat();

    let gone = false;
    const end = async (orderly: boolean) => {
      if (gone) return;
      gone = true;
      // kill: silence first, so no heartbeat slips out while the worker drains.
      if (orderly) await agent.stopHeartbeats();
      else await silence(agent);
      if (agent.worker.getState() === 'RUNNING') agent.worker.shutdown();
      await running;
      await unwind();
      fs.rmSync(dataDir, { recursive: true, force: true });
    };
    return {
      name,
      config,
      hypervisor,
      census: (opts) => census(hypervisor, config.storagePool, opts),
      stop: () => end(true),
      kill: () => end(false),
      get gone() {
        return gone;
      },
    };
  } catch (err) {
    await unwind();
    fs.rmSync(dataDir, { recursive: true, force: true });
    throw err;
  }
}

/** Starts `count` hosts in parallel (same options each, distinct names). */
export async function startTestHosts(
  temporal: TestHostTemporal,
  log: Logger,
  specs: TestHostOptions[],
): Promise<TestHost[]> {
  const settled = await Promise.allSettled(specs.map((spec) => startTestHost(temporal, log, spec)));
  const started = settled.flatMap((s) => (s.status === 'fulfilled' ? [s.value] : []));
  const failed = settled.find((s): s is PromiseRejectedResult => s.status === 'rejected');
  if (failed) {
    await Promise.all(started.map((h) => h.stop()));
    throw failed.reason;
  }
  return started;
}

function runUntilShutdown(worker: Worker): Promise<void> {
  return worker.run().catch(() => undefined);
}

/**
 * Stops the agent's heartbeat timer without the goodbye signal: `stopHeartbeats` clears the timer
 * and then signals; here the signal goes to a handle that is never reached (the monitor just stops
 * hearing from the host, as when the machine dies).
 */
async function silence(agent: { stopHeartbeats(opts?: { goodbye?: boolean }): Promise<void> }): Promise<void> {
  await agent.stopHeartbeats({ goodbye: false });
}
