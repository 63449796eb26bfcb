/**
 * The host monitor workflow against the shared Temporal dev server and a real database: a heartbeat
 * registers the host, missed heartbeats mark it down, a new heartbeat brings it back, goodbye marks
 * it down at once.
 */
import { randomBytes } from 'node:crypto';
import { Client, Connection } from '@temporalio/client';
import { NativeConnection, type Worker } from '@temporalio/worker';
import { silentLogger } from '../../core/log';
import * as hosts from '../../db/repositories/hosts';
import { ImageUrlSigner } from '../../images/signed-url';
import { createConductorWorker } from '../../workers/conductor';
import { testWorkflowBundle } from '../support/workflow-bundle';
import { installTemporalRuntime } from '../../workers/temporal-runtime';
import { goodbyeSignal, heartbeatSignal, hostMonitor, hostMonitorWorkflowId } from '../../workflows/host-monitor';
import { engines, useDatabase } from '../support/databases';
import { testConductorQueue, testTemporal } from '../support/temporal';

const db = useDatabase(engines[0]!); // PGlite; the repositories are tested on both engines elsewhere
/** This file's own conductor task queue: its monitors outlive it, and no other file's conductor may serve them. */
const conductorQueue = testConductorQueue();
let worker: Worker;
let running: Promise<void>;
let client: Client;
let connection: Connection;
let native: NativeConnection;

beforeAll(async () => {
  const { address, namespace } = testTemporal();
  installTemporalRuntime(silentLogger, { forwardCoreLogs: false });
  native = await NativeConnection.connect({ address });
  const workflowBundle = await testWorkflowBundle();
  worker = await createConductorWorker({
    connection: native,
    namespace,
    taskQueue: conductorQueue,
    db: db(),
    log: silentLogger,
    workflowBundle,
    heartbeatSeconds: 1,
    images: { signer: new ImageUrlSigner('x'.repeat(32)), apiBaseUrl: 'http://127.0.0.1:1', urlTtlSeconds: 60 },
  });
  running = worker.run();
  connection = await Connection.connect({ address });
  client = new Client({ connection, namespace });
}, 60_000);

afterAll(async () => {
  worker?.shutdown();
  await running;
  await native?.close();
  await connection?.close();
});

async function until<T>(read: () => Promise<T>, ok: (v: T) => boolean, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await read();
    if (ok(value) || Date.now() > deadline) return value;
    await new Promise((r) => setTimeout(r, 100));
  }
}

function report(name: string, vcpus = 4) {
  return { name, libvirtUri: 'test:///default', libvirtVersion: '9.0.0', vcpus, ramMb: 8192, diskGb: 100, capabilities: { hotplugDisks: false } };
}

test('heartbeat registers; silence marks down; a heartbeat revives; goodbye marks down at once', async () => {
  const name = `hm-${randomBytes(3).toString('hex')}`;
  const start = (vcpus: number) =>
    client.workflow.signalWithStart(hostMonitor, {
      workflowId: hostMonitorWorkflowId(name),
      taskQueue: conductorQueue,
      args: [{ hostName: name, heartbeatSeconds: 1 }],
      signal: heartbeatSignal,
      signalArgs: [report(name, vcpus)],
    });

  const handle = await start(4);
  const up = await until(() => hosts.get(db(), name), (h) => h?.status === 'up');
  expect(up).toMatchObject({ name, status: 'up', vcpus: 4, libvirtVersion: '9.0.0' });

  // No heartbeat for 3 intervals → down.
  const down = await until(() => hosts.get(db(), name), (h) => h?.status === 'down', 8000);
  expect(down?.status).toBe('down');

  // The same workflow takes the next heartbeat (capacity changes are recorded too).
  await start(8);
  const back = await until(() => hosts.get(db(), name), (h) => h?.status === 'up' && h.vcpus === 8);
  expect(back).toMatchObject({ status: 'up', vcpus: 8 });

  await handle.signal(goodbyeSignal);
  const gone = await until(() => hosts.get(db(), name), (h) => h?.status === 'down', 2000);
  expect(gone?.status).toBe('down');

  // One workflow per host, still running and waiting.
  expect((await handle.describe()).status.name).toBe('RUNNING');
  await handle.terminate('test done');
}, 30_000);
