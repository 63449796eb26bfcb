/**
 * Every workflow type and outcome, run for real (Temporal dev server, PGlite, two test-driver hosts),
 * each live history replayed against today's workflow bundle. With STRATUS_RECORD_HISTORIES=1
 * (`npm run record:histories`) the histories become the replay corpus in test/fixtures/histories/,
 * which test/integration/replay-corpus.test.ts replays on every run (docs/workflow-versioning.md).
 *
 *   create-success, create-reschedule (boot fails on A, ACTIVE on B), create-error (every host
 *   fails), create-cancel (cancelled while booting), delete-server, server-action (stop),
 *   console-session (two reads, then its idle end), volume-create / -attach / -detach / -delete,
 *   host-monitor, meter-host (host A's sampler, at a 1 s interval so it samples a few ticks).
 *   (meter-host.sampler-pages-before.json, the sampler before pages, stays as recorded until the
 *   patch is deprecated; docs/workflow-versioning.md.)
 *   (server-console.json, the per-read console workflow the API no longer starts, and
 *   meter-server.json, from before creates stopped starting one (migration 0011), stay in the corpus
 *   as recorded.)
 */
import fs from 'node:fs';
import path from 'node:path';
import { historyToJSON } from '@temporalio/common/lib/proto-utils';
import { Worker } from '@temporalio/worker';
import type { FaultPlan } from '../../activities/fault-injection';
import { connectTemporal } from '../../temporal/connection';
import { testWorkflowBundle } from '../support/workflow-bundle';
import { createServerWorkflowId } from '../../workflows/create-server';
import { hostMonitorWorkflowId } from '../../workflows/host-monitor';
import { meterHostWorkflowId } from '../../temporal/constants';
import type { TestCloud } from '../support/cloud';
import type { TestHost } from '../support/hosts';
import { waitGone, waitSettled } from '../support/stratus-fixtures';
import { startTwoHostCloud } from '../support/two-host-cloud';
import { testTemporal } from '../support/temporal';

export const HISTORIES_DIR = path.join(__dirname, '..', 'fixtures', 'histories');
const RECORD = process.env.STRATUS_RECORD_HISTORIES === '1';

let t: TestCloud;
let admin: string;
let A: TestHost;
let B: TestHost;
let faultsA: FaultPlan;
let faultsB: FaultPlan;
let body: (extra?: Record<string, unknown>) => Record<string, unknown>;
let temporal: Awaited<ReturnType<typeof connectTemporal>>;
let bundle: { code: string };
const startedAt = new Date();
/** name → workflow id, filled by the tests, replayed (and recorded) by the last one. */
const recorded = new Map<string, string>();

beforeAll(async () => {
  const cloud = await startTwoHostCloud('10.50.0.0/24', { STRATUS_CONSOLE_IDLE_SECONDS: '2', STRATUS_METER_INTERVAL: '1' });
  ({ t, admin, A, B, faultsA, faultsB } = cloud);
  body = (extra = {}) => ({ name: 'history', flavor_id: cloud.tiny, image_id: cloud.imageId, networks: [{ network_id: cloud.net.networkId }], ...extra });
  const { address, namespace } = testTemporal();
  temporal = await connectTemporal(address, namespace);
  bundle = await testWorkflowBundle();
}, 120_000);

afterEach(() => {
  faultsA.clear();
  faultsB.clear();
});

afterAll(async () => {
  await temporal?.connection.close();
  await t?.stop();
});

/** Workflow ids of `type` started by this file (the dev server is shared with other files). */
async function idsOf(type: string): Promise<string[]> {
  const ids: string[] = [];
  for await (const wf of temporal.client.workflow.list({ query: `WorkflowType="${type}" AND StartTime > "${startedAt.toISOString()}"` })) ids.push(wf.workflowId);
  return ids;
}

/** Waits (≤ 20 s) for the workflow to close; a long-running one is recorded as far as it got. */
async function closed(workflowId: string): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([
    temporal.client.workflow.getHandle(workflowId).result().catch(() => undefined),
    new Promise((r) => (timer = setTimeout(r, 20_000))),
  ]);
  clearTimeout(timer);
}

async function createAndSettle(extra: Record<string, unknown> = {}) {
  const created = await t.call('POST', '/v1/servers', { token: admin, body: body(extra) });
  expect(created.status).toBe(202);
  const server = await waitSettled(t, admin, created.body.server.id);
  await closed(createServerWorkflowId(server.id));
  return server;
}

test('create success, server action, console, volume create / attach / detach / delete, delete', async () => {
  const server = await createAndSettle({ volumes: [{ size_gb: 1, delete_on_termination: true }] });
  expect(server).toMatchObject({ status: 'ACTIVE', host: A.name });
  recorded.set('create-success', createServerWorkflowId(server.id));

  expect((await t.call('POST', `/v1/servers/${server.id}/action`, { token: admin, body: { action: 'stop' } })).status).toBe(202);
  expect((await waitSettled(t, admin, server.id)).status).toBe('SHUTOFF');
  expect((await t.call('GET', `/v1/servers/${server.id}/console`, { token: admin })).status).toBe(200);
  expect((await t.call('GET', `/v1/servers/${server.id}/console?max_bytes=16`, { token: admin })).status).toBe(200);

  const vol = await t.call('POST', '/v1/volumes', { token: admin, body: { name: 'history-vol', size_gb: 1 } });
  expect(vol.status).toBe(202);
  const volumeId = vol.body.volume.id as string;
  await t.waitFor(`/v1/volumes/${volumeId}`, admin, (r) => r.body.status === 'available');
  expect((await t.call('POST', `/v1/servers/${server.id}/volumes`, { token: admin, body: { volume_id: volumeId } })).status).toBe(202);
  await t.waitFor(`/v1/volumes/${volumeId}`, admin, (r) => r.body.status === 'in-use');
  expect((await t.call('DELETE', `/v1/servers/${server.id}/volumes/${volumeId}`, { token: admin })).status).toBe(202);
  await t.waitFor(`/v1/volumes/${volumeId}`, admin, (r) => r.body.status === 'available');
  expect((await t.call('DELETE', `/v1/volumes/${volumeId}`, { token: admin })).status).toBe(202);
  await t.waitFor(`/v1/volumes/${volumeId}`, admin, (r) => r.status === 404);

  expect((await t.call('DELETE', `/v1/servers/${server.id}`, { token: admin })).status).toBe(202);
  await waitGone(t, admin, server.id);
  for (const [name, type] of [
    ['server-action', 'serverAction'],
    ['console-session', 'serverConsoleSession'],
    ['volume-create', 'createVolume'],
    ['volume-attach', 'attachVolume'],
    ['volume-detach', 'detachVolume'],
    ['volume-delete', 'deleteVolume'],
    ['delete-server', 'deleteServer'],
  ] as const) {
    const [id] = await idsOf(type);
    expect({ type, id }).toEqual({ type, id: expect.any(String) });
    await closed(id!);
    recorded.set(name, id!);
  }
}, 120_000);

test('create rescheduled: the boot fails on A, ACTIVE on B', async () => {
  faultsA.failAt('hypervisor.startDomain', 'fatal');
  const server = await createAndSettle({ volumes: [{ size_gb: 1, delete_on_termination: true }] });
  expect(server).toMatchObject({ status: 'ACTIVE', host: B.name });
  recorded.set('create-reschedule', createServerWorkflowId(server.id));
  await t.call('DELETE', `/v1/servers/${server.id}`, { token: admin });
  await waitGone(t, admin, server.id);
}, 90_000);

test('create ERROR: every host fails', async () => {
  faultsA.failAt('hypervisor.startDomain', 'fatal');
  faultsB.failAt('hypervisor.startDomain', 'fatal');
  const server = await createAndSettle();
  expect(server.status).toBe('ERROR');
  recorded.set('create-error', createServerWorkflowId(server.id));
  await t.call('DELETE', `/v1/servers/${server.id}`, { token: admin });
  await waitGone(t, admin, server.id);
}, 90_000);

test('create cancelled while booting', async () => {
  // Boots keep failing (retryable) on both hosts, so the create is still running when cancelled.
  faultsA.failAt('hypervisor.startDomain', 'retryable');
  faultsB.failAt('hypervisor.startDomain', 'retryable');
  const created = await t.call('POST', '/v1/servers', { token: admin, body: body() });
  const id = created.body.server.id as string;
  await t.waitFor(`/v1/servers/${id}`, admin, (r) => r.body.task_state === 'spawning');
  // DELETE in BUILD cancels the create where that is supported; otherwise cancel it in Temporal (as from its UI).
  const del = await t.call('DELETE', `/v1/servers/${id}`, { token: admin });
  if (del.status !== 202) await temporal.client.workflow.getHandle(createServerWorkflowId(id)).cancel();
  await closed(createServerWorkflowId(id));
  const description = await temporal.client.workflow.getHandle(createServerWorkflowId(id)).describe();
  expect(description.status.name).not.toBe('RUNNING');
  recorded.set('create-cancel', createServerWorkflowId(id));
  faultsA.clear();
  faultsB.clear();
  const after = await t.call('GET', `/v1/servers/${id}`, { token: admin });
  if (after.status === 200 && after.body.status !== 'BUILD') {
    await t.call('DELETE', `/v1/servers/${id}`, { token: admin });
    await waitGone(t, admin, id).catch(() => undefined);
  }
}, 90_000);

test('every history replays against the current workflow code (and is recorded when asked)', async () => {
  recorded.set('host-monitor', hostMonitorWorkflowId(A.name));
  recorded.set('meter-host', meterHostWorkflowId(A.name, 1000));
  await closed(meterHostWorkflowId(A.name, 1000)); // its host has no meter left: it ends
  expect([...recorded.keys()].sort()).toEqual(
    [
      'create-cancel',
      'create-error',
      'create-reschedule',
      'create-success',
      'delete-server',
      'host-monitor',
      'meter-host',
      'server-action',
      'console-session',
      'volume-attach',
      'volume-create',
      'volume-delete',
      'volume-detach',
    ].sort(),
  );
  if (RECORD) fs.mkdirSync(HISTORIES_DIR, { recursive: true });
  for (const [name, workflowId] of recorded) {
    const history = await temporal.client.workflow.getHandle(workflowId).fetchHistory();
    await Worker.runReplayHistory({ workflowBundle: bundle, replayName: name }, history, workflowId);
    if (RECORD) fs.writeFileSync(path.join(HISTORIES_DIR, `${name}.json`), `${historyToJSON(history)}\n`);
  }
}, 120_000);
