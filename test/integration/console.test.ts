/**
 * The console through one session workflow per server (workflows/console-session.ts), against a
 * real cloud (Temporal dev server, PGlite, one test-driver host agent the test can kill):
 *
 * - polls of the stream and one-shot GETs: one session execution per server, no per-read workflow,
 *   the right output (incremental on the stream);
 * - ten concurrent GETs on one server all answer the same output;
 * - the session ends after its idle bound (STRATUS_CONSOLE_IDLE_SECONDS, lowered here), also once
 *   its server is deleted (a stream open on it ends);
 * - reads across continue-as-new (a run that answers 3 reads) all answer;
 * - the host's agent gone: a read answers 503 naming the host within the host bound (20 s), the
 *   session does not hang and ends when idle.
 */
import fs from 'node:fs';
import path from 'node:path';
import { Worker } from '@temporalio/worker';
import { connectTemporal } from '../../temporal/connection';
import { createConsoleService, type Server } from '../../services/compute';
import { consoleSessionWorkflowId } from '../../workflows/console-contract';
import { startTestCloud, type TestCloud } from '../support/cloud';
import type { TestHost } from '../support/hosts';
import { keystoneLogin, osCall } from '../support/openstack';
import { createNetwork, flavorId, uploadRawImage, waitGone, waitSettled } from '../support/stratus-fixtures';
import { testTemporal } from '../support/temporal';
import { testWorkflowBundle } from '../support/workflow-bundle';

/** The session's idle bound here (the default is 120 s). */
const IDLE_SECONDS = 4;

let t: TestCloud;
let admin: string;
let nova: ReturnType<typeof osCall>;
let host: TestHost;
let body: (name: string) => Record<string, unknown>;
let temporal: Awaited<ReturnType<typeof connectTemporal>>;
const startedAt = new Date();

beforeAll(async () => {
  t = await startTestCloud({ builtInAgent: false, hosts: [{}], env: { STRATUS_CONSOLE_IDLE_SECONDS: String(IDLE_SECONDS) } });
  host = t.hosts[0]!;
  admin = await t.login();
  nova = osCall(t, await keystoneLogin(t));
  await t.waitFor('/v1/hosts?limit=100', admin, (r) => (r.body.hosts ?? []).some((h: { name: string; alive: boolean }) => h.name === host.name && h.alive));
  const [imageId, tiny, net] = await Promise.all([uploadRawImage(t, admin), flavorId(t, admin), createNetwork(t, admin, '10.61.0.0/24')]);
  body = (name) => ({ name, flavor_id: tiny, image_id: imageId, networks: [{ network_id: net.networkId }] });
  const { address, namespace } = testTemporal();
  temporal = await connectTemporal(address, namespace);
}, 120_000);

/** This file's Temporal client, starting sessions on the test cloud's conductor task queue (as its API does). */
const conductor = () => ({ client: temporal.client, taskQueue: t.config.temporal.conductorTaskQueue });

afterAll(async () => {
  await temporal?.connection.close();
  await t?.stop();
});

async function activeServer(name: string): Promise<string> {
  const created = await t.call('POST', '/v1/servers', { token: admin, body: body(name) });
  expect(created.status).toBe(202);
  const server = await waitSettled(t, admin, created.body.server.id);
  expect(server).toMatchObject({ status: 'ACTIVE', host: host.name });
  return server.id as string;
}

async function removeServer(id: string): Promise<void> {
  expect((await t.call('DELETE', `/v1/servers/${id}`, { token: admin })).status).toBe(202);
  await waitGone(t, admin, id);
}

/** The serial log the agent reads (the test driver runs no guest: the test writes it as QEMU would). */
function consoleLog(serverId: string): string {
  const file = path.join(path.dirname(host.config.imageCacheDir), 'console', `stratus-${serverId}.log`);
  fs.mkdirSync(path.dirname(file), { recursive: true });
  return file;
}

/**
 * Runs of the server's console session (status from each run itself: visibility may lag), and
 * console workflows of the old kind (one per read) since this file started.
 */
async function executions(serverId: string): Promise<{ sessionRuns: Array<{ runId: string; status: string }>; perRead: number }> {
  const workflowId = consoleSessionWorkflowId(serverId);
  const latest = (await temporal.client.workflow.getHandle(workflowId).describe()).runId;
  let runIds: string[] = [];
  for (let tries = 0; tries < 40 && !runIds.includes(latest); tries++) {
    if (tries > 0) await new Promise((r) => setTimeout(r, 250));
    runIds = [];
    for await (const wf of temporal.client.workflow.list({ query: `WorkflowId="${workflowId}"` })) runIds.push(wf.runId);
  }
  const sessionRuns = await Promise.all(runIds.map(async (runId) => ({ runId, status: (await temporal.client.workflow.getHandle(workflowId, runId).describe()).status.name })));
  let perRead = 0;
  for await (const wf of temporal.client.workflow.list({ query: `WorkflowType="serverConsole" AND StartTime > "${startedAt.toISOString()}"` })) if (wf.workflowId.includes(serverId)) perRead += 1;
  return { sessionRuns, perRead };
}

async function waitClosed(serverId: string, timeoutMs: number): Promise<string> {
  const handle = temporal.client.workflow.getHandle(consoleSessionWorkflowId(serverId));
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const status = (await handle.describe()).status.name;
    if (status !== 'RUNNING' || Date.now() > deadline) return status;
    await new Promise((r) => setTimeout(r, 250));
  }
}

/** Reads the SSE stream until `text` has arrived in the data events; returns what arrived. */
function sse(serverId: string) {
  const controller = new AbortController();
  const received = { data: '', errors: [] as string[], ended: false };
  const opened = fetch(`${t.baseUrl}/v1/servers/${serverId}/console/stream`, { headers: { authorization: `Bearer ${admin}` }, signal: controller.signal });
  const pump = (async () => {
    const res = await opened;
    expect(res.status).toBe(200);
    const reader = res.body!.getReader();
    const decoder = new TextDecoder();
    let buffer = '';
    for (;;) {
      const { value, done } = await reader.read().catch(() => ({ value: undefined, done: true }));
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      let cut;
      while ((cut = buffer.indexOf('\n\n')) >= 0) {
        const event = buffer.slice(0, cut);
        buffer = buffer.slice(cut + 2);
        const data = event.split('\n').find((l) => l.startsWith('data: '));
        if (!data) continue;
        if (event.startsWith('event: error')) received.errors.push(JSON.parse(data.slice(6)) as string);
        else received.data += JSON.parse(data.slice(6)) as string;
      }
    }
    received.ended = true;
  })();
  return {
    received,
    async until(check: () => boolean, timeoutMs = 15_000) {
      const deadline = Date.now() + timeoutMs;
      while (!check() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      return check();
    },
    async close() {
      controller.abort();
      await pump.catch(() => undefined);
    },
  };
}

test('stream polls and GETs share one session execution; the stream sends only what is new', async () => {
  const id = await activeServer('console-polls');
  const log = consoleLog(id);
  fs.appendFileSync(log, 'hello from the guest\n');

  const stream = sse(id);
  expect(await stream.until(() => stream.received.data.includes('hello'))).toBe(true);
  fs.appendFileSync(log, 'second line, é\n');
  expect(await stream.until(() => stream.received.data.includes('second line'))).toBe(true);
  // More polls with nothing new: no data events, no new workflow.
  await new Promise((r) => setTimeout(r, 3000));
  fs.appendFileSync(log, 'third\n');
  expect(await stream.until(() => stream.received.data.includes('third'))).toBe(true);
  await stream.close();
  expect(stream.received).toMatchObject({ data: 'hello from the guest\nsecond line, é\nthird\n', errors: [] });

  for (let i = 0; i < 5; i++) {
    const res = await t.call('GET', `/v1/servers/${id}/console`, { token: admin });
    expect(res).toMatchObject({ status: 200, body: { output: 'hello from the guest\nsecond line, é\nthird\n' } });
  }
  expect((await t.call('GET', `/v1/servers/${id}/console?max_bytes=6`, { token: admin })).body.output).toBe('third\n');
  const novaOutput = await nova('POST', `/compute/v2.1/servers/${id}/action`, { body: { 'os-getConsoleOutput': { length: 1 } } });
  expect(novaOutput).toMatchObject({ status: 200, body: { output: 'third\n' } });

  const { sessionRuns, perRead } = await executions(id);
  expect(perRead).toBe(0);
  expect(sessionRuns).toHaveLength(1);
  expect(sessionRuns[0]!.status).toBe('RUNNING');
  // Every read is an update of that one run.
  const history = await temporal.client.workflow.getHandle(consoleSessionWorkflowId(id)).fetchHistory();
  const updates = (history.events ?? []).filter((e) => e.workflowExecutionUpdateCompletedEventAttributes).length;
  expect(updates).toBeGreaterThanOrEqual(5 + 1 + 1 + 5);
  process.stderr.write(`console session: ${updates} reads, ${history.events!.length} history events (${(history.events!.length / updates).toFixed(1)} per read)\n`);

  // (3) idle: the session ends on its own once nobody reads.
  expect(await waitClosed(id, (IDLE_SECONDS + 10) * 1000)).toBe('COMPLETED');
  // A read after that starts a new run of the same session.
  expect((await t.call('GET', `/v1/servers/${id}/console`, { token: admin })).body.output).toContain('third');
  expect((await executions(id)).sessionRuns).toHaveLength(2);
  await removeServer(id);
  expect((await t.call('GET', `/v1/servers/${id}/console`, { token: admin })).status).toBe(404);
  expect(await waitClosed(id, (IDLE_SECONDS + 10) * 1000)).toBe('COMPLETED');
}, 120_000);

test('a stream on a server that is deleted ends, and so does the session', async () => {
  const id = await activeServer('console-deleted');
  fs.appendFileSync(consoleLog(id), 'up\n');
  const stream = sse(id);
  expect(await stream.until(() => stream.received.data === 'up\n')).toBe(true);
  expect((await t.call('DELETE', `/v1/servers/${id}`, { token: admin })).status).toBe(202);
  await waitGone(t, admin, id);
  expect(await stream.until(() => stream.received.ended, 10_000)).toBe(true);
  expect(stream.received.errors).toEqual([`server ${id} is gone`]);
  await stream.close();
  expect(await waitClosed(id, (IDLE_SECONDS + 10) * 1000)).toBe('COMPLETED');
}, 90_000);

test('ten concurrent GETs on one server all answer, through one session; readers in other processes share host reads', async () => {
  const id = await activeServer('console-concurrent');
  fs.appendFileSync(consoleLog(id), 'ready\n');
  const answers = await Promise.all(
    Array.from({ length: 10 }, (_, i) => t.call('GET', `/v1/servers/${id}/console${i % 2 ? '?max_bytes=3' : ''}`, { token: admin })),
  );
  expect(answers.map((a) => [a.status, a.body.output])).toEqual(Array.from({ length: 10 }, (_, i) => [200, i % 2 ? 'dy\n' : 'ready\n']));
  const { sessionRuns, perRead } = await executions(id);
  expect({ runs: sessionRuns.length, perRead }).toEqual({ runs: 1, perRead: 0 });

  // Five API processes (five services: nothing shared in memory) read at once: the session shares host reads.
  const server = { id, host: host.name } as Server;
  const handle = temporal.client.workflow.getHandle(consoleSessionWorkflowId(id));
  const count = async () => {
    const events = (await handle.fetchHistory()).events ?? [];
    return { updates: events.filter((e) => e.workflowExecutionUpdateCompletedEventAttributes).length, hostReads: events.filter((e) => e.activityTaskScheduledEventAttributes).length };
  };
  const before = await count();
  const apis = Array.from({ length: 5 }, () => createConsoleService(conductor(), { idleSeconds: IDLE_SECONDS }));
  const outputs = await Promise.all(apis.map((api, i) => api.read(server, { maxBytes: i === 0 ? 1024 : 3 })));
  expect(outputs.map((o) => o.output)).toEqual(['ready\n', 'dy\n', 'dy\n', 'dy\n', 'dy\n']);
  const after = await count();
  process.stderr.write(`10 concurrent GETs + 5 readers elsewhere: ${after.updates} updates, ${after.hostReads} host reads\n`);
  expect(after.updates - before.updates).toBe(5);
  expect(after.hostReads - before.hostReads).toBeLessThan(5);

  await Worker.runReplayHistory({ workflowBundle: await testWorkflowBundle() }, await handle.fetchHistory(), consoleSessionWorkflowId(id));
  await removeServer(id);
}, 90_000);

test('reads across continue-as-new all answer (a run of 3 reads)', async () => {
  const id = await activeServer('console-roll');
  fs.appendFileSync(consoleLog(id), 'rolling\n');
  const consoles = createConsoleService(conductor(), { idleSeconds: IDLE_SECONDS, readsPerRun: 3 });
  const server = { id, host: host.name } as Server;
  const outputs: string[] = [];
  for (let i = 0; i < 7; i++) outputs.push((await consoles.read(server, { maxBytes: 1024 + i })).output);
  // Distinct reads (not shared in this process), fewer than the 10 updates Temporal admits in flight.
  outputs.push(...(await Promise.all(Array.from({ length: 8 }, (_, i) => consoles.read(server, { maxBytes: 2048 + i })))).map((c) => c.output));
  expect(outputs).toEqual(Array.from({ length: 15 }, () => 'rolling\n'));
  const { sessionRuns } = await executions(id);
  expect(sessionRuns.length).toBeGreaterThanOrEqual(3);
  expect(sessionRuns.filter((r) => r.status === 'RUNNING')).toHaveLength(1);
  expect(sessionRuns.filter((r) => r.status !== 'RUNNING').every((r) => r.status === 'CONTINUED_AS_NEW')).toBe(true);
  await removeServer(id);
}, 90_000);

test("the host's agent gone: a read answers 503 naming the host within the host bound, and the session ends", async () => {
  const id = await activeServer('console-dead-host');
  fs.appendFileSync(consoleLog(id), 'before\n');
  expect((await t.call('GET', `/v1/servers/${id}/console`, { token: admin })).body.output).toBe('before\n');
  await host.kill();
  const started = Date.now();
  const [one, two] = await Promise.all([
    t.call('GET', `/v1/servers/${id}/console`, { token: admin }),
    nova('POST', `/compute/v2.1/servers/${id}/action`, { body: { 'os-getConsoleOutput': {} } }),
  ]);
  const seconds = (Date.now() - started) / 1000;
  process.stderr.write(`dead host: the reads answered after ${seconds.toFixed(1)} s\n`);
  expect(one.status).toBe(503);
  expect(one.headers.get('retry-after')).toBe('5');
  expect(one.body.detail).toBe(`the console of server ${id} could not be read: host ${host.name} did not answer for 20 s (SCHEDULE_TO_START)`);
  expect(two.status).toBe(503);
  expect(JSON.stringify(two.body)).toContain(`host ${host.name} did not answer`);
  expect(seconds).toBeLessThan(30);
  // Nothing waits on the dead host any more: the session ends once idle.
  expect(await waitClosed(id, (IDLE_SECONDS + 10) * 1000)).toBe('COMPLETED');
}, 90_000);
