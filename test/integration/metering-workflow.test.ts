/**
 * Metering workflows against the shared Temporal dev server, a real database (PGlite) and libvirt's
 * test driver: a host's sampler (meterHost) samples every meter of the host each interval with
 * contiguous interval indexes, continues-as-new without losing or doubling an index, writes a gap
 * (never a reading) while the host agent is down, samples again once it is back, and ends when its
 * host has no meter left; a server's meter (meterServer) stops with a final sample on `stop`; the
 * samples counters on a worker's own metrics port.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { Client, Connection } from '@temporalio/client';
import { NativeConnection, Worker } from '@temporalio/worker';
import { createMeteringHostActivities } from '../../activities/metering/host';
import type { HostPageRequest } from '../../activities/metering/types';
import { metrics } from '../../core/metrics';
import { silentLogger } from '../../core/log';
import * as meters from '../../db/repositories/meters';
import { ImageUrlSigner } from '../../images/signed-url';
import { openHypervisor, type Hypervisor } from '../../libvirt';
import { hostTaskQueue, meterHostWorkflowId } from '../../temporal/constants';
import { createConductorWorker } from '../../workers/conductor';
import { testWorkflowBundle } from '../support/workflow-bundle';
import { serveMetrics } from '../../workers/metrics';
import { installTemporalRuntime } from '../../workers/temporal-runtime';
import parsePrometheusTextFormat from 'parse-prometheus-text-format';
import { freePort } from '../support/ports';
import { meterHost, wakeMeterHostSignal } from '../../workflows/meter-host';
import { meterServer, stopMeteringSignal } from '../../workflows/meter-server';
import { engines, useDatabase } from '../support/databases';
import { testConductorQueue, testTemporal } from '../support/temporal';

const db = useDatabase(engines[0]!);
const { address, namespace } = testTemporal();
/** This file's own conductor task queue: its samplers outlive it, and no other file's conductor may serve them. */
const conductorQueue = testConductorQueue();
let conductor: Worker;
let conductorRunning: Promise<void>;
let client: Client;
let connection: Connection;
let native: NativeConnection;
let hv: Hypervisor;
const hostName = `meter-${randomBytes(4).toString('hex')}`;
const domainName = `stratus-meter-${randomBytes(4).toString('hex')}`;
const domainName2 = `${domainName}-b`;

beforeAll(async () => {
  installTemporalRuntime(silentLogger, { forwardCoreLogs: false });
  native = await NativeConnection.connect({ address });
  conductor = await createConductorWorker({
    connection: native,
    namespace,
    taskQueue: conductorQueue,
    db: db(),
    log: silentLogger,
    workflowBundle: await testWorkflowBundle(),
    heartbeatSeconds: 1,
    images: { signer: new ImageUrlSigner('x'.repeat(32)), apiBaseUrl: 'http://127.0.0.1:1', urlTtlSeconds: 60 },
  });
  conductorRunning = conductor.run();
  connection = await Connection.connect({ address });
  client = new Client({ connection, namespace });
  hv = await openHypervisor('test:///default');
  for (const name of [domainName, domainName2]) {
    await hv.defineDomain({ name, vcpus: 1, memoryMb: 128, domainType: 'test', disks: [], interfaces: [] });
    await hv.startDomain(name);
  }
}, 60_000);

afterAll(async () => {
  for (const name of [domainName, domainName2]) await hv?.undefineDomain(name);
  await hv?.close();
  conductor?.shutdown();
  await conductorRunning;
  await native?.close();
  await connection?.close();
});

/** A host agent that only meters (what the real agent registers for metering). */
async function startAgent(host = hostName, activities = createMeteringHostActivities({ hypervisor: hv, hostName: host, log: silentLogger })): Promise<{ stop(): Promise<void> }> {
  const worker = await Worker.create({ connection: native, namespace, taskQueue: hostTaskQueue(host), activities });
  const running = worker.run();
  return {
    async stop() {
      worker.shutdown();
      await running;
    },
  };
}

/** What the conductor's startMetering writes: an active meter of `domain` on `host`. */
async function startMeter(serverId: string, host: string, domain: string, intervalMs: number): Promise<void> {
  const allocation = { projectId: randomUUID(), host, domainName: domain, vcpus: 1, ramMb: 128, diskGb: 1, intervalMs };
  await meters.start(db(), { serverId, workflowId: `meter:${serverId}`, allocation });
}

async function until<T>(read: () => Promise<T>, ok: (v: T) => boolean, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await read();
    if (ok(value)) return value;
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms: ${JSON.stringify(value, (_k, v: unknown) => (typeof v === 'bigint' ? String(v) : v))}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

test('a host sampler samples every meter each interval, leaves a gap while the agent is down, continues as new; a meter stops with a final sample', async () => {
  const intervalMs = 1000;
  const serverIds = [randomUUID(), randomUUID()];
  const domainOf = new Map([[serverIds[0]!, domainName], [serverIds[1]!, domainName2]]);
  for (const serverId of serverIds) await startMeter(serverId, hostName, domainOf.get(serverId)!, intervalMs);
  let agent = await startAgent();
  const lifetimes = await Promise.all(
    serverIds.map((serverId) =>
      client.workflow.start(meterServer, {
        workflowId: `meter:${serverId}`,
        taskQueue: conductorQueue,
        args: [{ serverId, hostName, domainName: domainOf.get(serverId)!, intervalMs }],
      }),
    ),
  );
  const sampler = await client.workflow.signalWithStart(meterHost, {
    workflowId: meterHostWorkflowId(hostName, intervalMs),
    taskQueue: conductorQueue,
    args: [{ hostName, intervalMs, ticksPerRun: 3 }],
    signal: wakeMeterHostSignal,
    signalArgs: [],
  });
  const firstRun = sampler.signaledRunId;
  const serverId = serverIds[0]!;
  const okCount = (s: meters.Sample[]) => s.filter((x) => x.status === 'ok').length;

  await until(() => meters.listSamples(db(), serverId), (s) => okCount(s) >= 2);
  await agent.stop(); // the agent is killed: its host answers nothing
  const beforeRestart = await meters.listSamples(db(), serverId);
  await until(() => meters.listSamples(db(), serverId), (s) => s.filter((x) => x.status === 'missed' && x.seq > beforeRestart.at(-1)!.seq).length >= 2);
  agent = await startAgent(); // … and restarted
  const restartedAt = Date.now();
  await until(() => meters.listSamples(db(), serverId), (s) => s.some((x) => x.status === 'ok' && x.sampledAt.getTime() > restartedAt));
  for (const id of serverIds) await meters.stop(db(), id); // what the delete flow's stop_metering does first
  await Promise.all(lifetimes.map((h) => h.signal(stopMeteringSignal)));
  await Promise.all(lifetimes.map((h) => h.result()));
  await sampler.result(); // no meter left on the host: the sampler ends
  await agent.stop();

  const samples = await meters.listSamples(db(), serverId);
  // Every interval index once, in order, the last one the final sample (with a reading: the domain still runs here).
  expect(samples.map((s) => s.seq)).toEqual(samples.map((_, i) => i));
  expect(samples.at(-1)).toMatchObject({ status: 'final', counters: { powerState: 'running' } });
  const ticks = samples.slice(0, -1);
  const origin = ticks[0]!.sampledAt.getTime();
  expect(origin % intervalMs).toBe(0); // ticks are aligned to the interval
  for (const s of ticks) expect(s.sampledAt.getTime()).toBe(origin + s.seq * intervalMs);
  // ok … missed (never a reading) … ok (a loaded machine may miss other ticks too: the host did not answer in time)
  expect(ticks.map((s) => s.status).join(',')).toMatch(/ok,(missed,)+(\w+,)*ok/);
  for (const s of ticks.filter((x) => x.status === 'missed')) expect(s.counters).toBeNull();
  for (const s of ticks.filter((x) => x.status === 'ok')) {
    expect(s.counters).toMatchObject({ powerState: 'running', memoryKiB: 128 * 1024, cpuTimeNs: expect.any(Number) });
  }
  // The cpu counter's increase is recorded with each reading after the first (the first is the baseline).
  expect(ticks[0]!.deltas.cpuNs).toBe(0n);
  expect(ticks.filter((s) => s.status === 'ok').slice(1).every((s) => s.deltas.cpuNs > 0n)).toBe(true);
  // The other meter was sampled on the same ticks by the same sampler.
  const other = await meters.listSamples(db(), serverIds[1]!);
  const okTimes = (list: meters.Sample[]) => list.filter((s) => s.status === 'ok').map((s) => s.sampledAt.getTime());
  expect(okTimes(other).filter((t) => okTimes(ticks).includes(t)).length).toBeGreaterThanOrEqual(okTimes(ticks).length - 1);
  // It continued as new (3 ticks per run) without repeating or skipping an index.
  const desc = await sampler.describe();
  expect(desc.runId).not.toBe(firstRun);
  expect(desc.status.name).toBe('COMPLETED');

  // A retried write of the same intervals changes nothing.
  const again = await meters.recordSamples(db(), serverId, [{ seq: 0, status: 'missed', sampledAt: new Date(origin) }]);
  expect(again).toBe(0);
  expect((await meters.listSamples(db(), serverId))[0]).toEqual(samples[0]);
}, 60_000);

test('a host with more domains than a page: each meter gets one ok sample a tick, all pages of a tick from one bulk reading; pages count toward continue-as-new', async () => {
  const intervalMs = 2000;
  const pageSize = 3;
  const host = `meter-pages-${randomBytes(4).toString('hex')}`;
  const domains = Array.from({ length: 7 }, (_, i) => `stratus-pages-${randomBytes(4).toString('hex')}-${i}`);
  for (const [i, name] of domains.entries()) {
    await hv.defineDomain({ name, vcpus: 1, memoryMb: 128 + i, domainType: 'test', disks: [], interfaces: [] });
    await hv.startDomain(name);
  }
  try {
    // The host reads every Stratus domain of the hypervisor (this file's other two included).
    const pagesPerTick = Math.ceil((await hv.domainStats()).filter((d) => d.name.startsWith('stratus-')).length / pageSize);
    expect(pagesPerTick).toBeGreaterThanOrEqual(3);
    const requests: HostPageRequest[] = [];
    const activities = createMeteringHostActivities({ hypervisor: hv, hostName: host, log: silentLogger });
    const agent = await startAgent(host, {
      ...activities,
      sampleHostPage: (req: HostPageRequest) => {
        requests.push(req);
        return activities.sampleHostPage(req);
      },
    });
    const present = domains.map((domain) => ({ serverId: randomUUID(), domain }));
    const absent = { serverId: randomUUID(), domain: `stratus-pages-gone-${randomBytes(4).toString('hex')}` };
    // Meters start just after an interval boundary, so the sampler's first tick is their first interval.
    await new Promise((r) => setTimeout(r, intervalMs - (Date.now() % intervalMs) + 50));
    for (const m of [...present, absent]) await startMeter(m.serverId, host, m.domain, intervalMs);
    const sampler = await client.workflow.signalWithStart(meterHost, {
      workflowId: meterHostWorkflowId(host, intervalMs),
      taskQueue: conductorQueue,
      args: [{ hostName: host, intervalMs, pageSize, ticksPerRun: 2 * pagesPerTick }],
      signal: wakeMeterHostSignal,
      signalArgs: [],
    });
    // The absent domain's meter is written last in a tick (its closing write): 5 ticks done for every meter.
    await until(() => meters.listSamples(db(), absent.serverId), (s) => s.length >= 5, 30_000);
    for (const m of [...present, absent]) await meters.stop(db(), m.serverId);
    await sampler.result();
    await agent.stop();

    const samplesOf = await Promise.all([...present, absent].map((m) => meters.listSamples(db(), m.serverId)));
    const ticks = Math.min(...samplesOf.map((s) => s.length)); // a tick may fall between two stops
    expect(ticks).toBeGreaterThanOrEqual(5);
    for (const [i, samples] of samplesOf.slice(0, -1).entries()) {
      expect(samples.map((s) => s.seq)).toEqual(samples.map((_, k) => k)); // every interval index once
      expect(samples.slice(0, ticks).map((s) => [s.seq, s.status, s.sampledAt.getTime()])).toEqual(
        samplesOf[0]!.slice(0, ticks).map((s) => [s.seq, 'ok', s.sampledAt.getTime()]),
      );
      for (const s of samples) expect(s.counters).toMatchObject({ powerState: 'running', memoryKiB: (128 + i) * 1024 });
    }
    // A meter whose domain no page holds gets a gap each tick, never a reading.
    expect(samplesOf.at(-1)!.slice(0, ticks).map((s) => [s.seq, s.status])).toEqual(samplesOf[0]!.slice(0, ticks).map((s) => [s.seq, 'missed']));

    // Every tick read the host once and served it in pagesPerTick pages of pageSize.
    const sampled = requests.filter((r) => r.after === undefined).length;
    expect(requests).toHaveLength(sampled * pagesPerTick);
    expect(requests.every((r) => r.limit === pageSize)).toBe(true);
    const bulkCalls = (await metrics().hostStatsCalls.get()).values.find((v) => v.labels.host === host)?.value;
    expect(bulkCalls).toBe(sampled);
    // Each run of the sampler sampled 2 ticks (2 × pagesPerTick pages), then continued as new.
    const firstRun = await client.workflow.getHandle(meterHostWorkflowId(host, intervalMs), sampler.signaledRunId).fetchHistory();
    const pagesOfRun = firstRun.events!.filter((e) => e.activityTaskScheduledEventAttributes?.activityType?.name === 'sampleHostPage').length;
    expect(pagesOfRun).toBe(2 * pagesPerTick);
    expect(firstRun.events!.at(-1)!.workflowExecutionContinuedAsNewEventAttributes).toBeTruthy();
  } finally {
    for (const name of domains) await hv.undefineDomain(name);
  }
}, 60_000);

test('a conductor or agent alone serves its metrics on STRATUS_METRICS_PORT: samples taken and missed', async () => {
  const port = await freePort();
  const server = await serveMetrics('127.0.0.1', port);
  try {
    const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    const samples = parsePrometheusTextFormat(text).find((f) => f.name === 'stratus_meter_samples_total')!;
    const value = (status: string) => Number(samples.metrics.find((m) => m.labels?.status === status)?.value ?? 0);
    expect(value('ok')).toBeGreaterThan(0);
    expect(value('missed')).toBeGreaterThan(0); // the gap of the test above
    expect(value('final')).toBeGreaterThan(0);
    expect((await fetch(`http://127.0.0.1:${port}/other`)).status).toBe(404);
  } finally {
    await new Promise((r) => server.close(r));
  }
});
