/**
 * What one console read costs, before and after the console session (issue 8): a whole cloud on
 * libvirt's test driver with its own embedded dev server, one ACTIVE server whose serial log holds
 * BENCH_CONSOLE_KIB (default 64) KiB, then BENCH_READS (default 100) sequential reads of each kind:
 *
 *   before, per-read workflow   `serverConsole` started and awaited per read, as the API did until now
 *                               (a GET: 64 KiB tail; a stream poll: the 1 MiB window, every second)
 *   after, session update       an Update of the server's `serverConsoleSession` (services/compute.ts,
 *                               as the API does now): a GET's tail, and a stream poll with nothing new
 *   after, HTTP GET             GET /v1/servers/{id}/console end to end
 *
 * For each: latency p50 / p99, workflow executions created (for the session: runs it continued into),
 * history events and history bytes (JSON) added per read.
 *
 *   npm run bench:console
 *   BENCH_READS=200 BENCH_CONSOLE_KIB=256 npm run bench:console
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import type { Client } from '@temporalio/client';
import { historyToJSON } from '@temporalio/common/lib/proto-utils';
import { createConsoleService, domainNameFor, type Server } from '../services/compute';
import { connectTemporal } from '../temporal/connection';
import type { ConductorClient } from '../temporal/start-operation';
import { consoleSessionWorkflowId } from '../workflows/console-contract';
import { BENCH_PASSWORD, startBenchCloud } from './cloud';
import { jsonCaller, seedServerTemplate } from './http';
import { runBench } from './run';

const READS = Number(process.env.BENCH_READS ?? 100);
const CONSOLE_KIB = Number(process.env.BENCH_CONSOLE_KIB ?? 64);
const GET_BYTES = 65536;
const STREAM_WINDOW_BYTES = 1024 * 1024;

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? 0;
}

interface Row {
  what: string;
  ms: number[];
  executions: number;
  events: number;
  bytes: number;
}

/** Events and bytes (JSON) of one run's history, read in pages (a run may pass gRPC's 4 MB message limit). */
async function historyOf(client: Client, workflowId: string, runId?: string): Promise<{ events: number; bytes: number; continuedFrom?: string }> {
  const totals: { events: number; bytes: number; continuedFrom?: string } = { events: 0, bytes: 0 };
  let nextPageToken: Uint8Array | undefined;
  do {
    const page = await client.workflowService.getWorkflowExecutionHistory({
      namespace: client.options.namespace,
      execution: { workflowId, ...(runId ? { runId } : {}) },
      maximumPageSize: 50,
      ...(nextPageToken ? { nextPageToken } : {}),
    });
    const events = page.history?.events ?? [];
    if (totals.events === 0) totals.continuedFrom = events[0]?.workflowExecutionStartedEventAttributes?.continuedExecutionRunId || undefined;
    totals.events += events.length;
    totals.bytes += historyToJSON({ events }).length;
    nextPageToken = page.nextPageToken?.length ? page.nextPageToken : undefined;
  } while (nextPageToken);
  return totals;
}

async function timed(fn: () => Promise<unknown>): Promise<number[]> {
  const ms: number[] = [];
  for (let i = 0; i < READS; i++) {
    const started = performance.now();
    await fn();
    ms.push(performance.now() - started);
  }
  return ms.sort((a, b) => a - b);
}

/** READS per-read workflows, as the API ran them until now. */
async function perReadWorkflows({ client, taskQueue }: ConductorClient, server: Server, maxBytes: number, what: string): Promise<Row> {
  const ids: string[] = [];
  const ms = await timed(async () => {
    const workflowId = `bench:console:${randomBytes(6).toString('hex')}`;
    ids.push(workflowId);
    await client.workflow.execute('serverConsole', {
      workflowId,
      taskQueue,
      args: [{ host: server.host, domainName: domainNameFor(server.id), maxBytes }],
      workflowExecutionTimeout: '30 seconds',
    });
  });
  const sample = await historyOf(client, ids[ids.length - 1]!);
  return { what, ms, executions: ids.length, events: sample.events, bytes: sample.bytes };
}

/** Events, bytes and runs of the session so far: its current run and every run it continued from. */
async function sessionTotals(client: Client, workflowId: string): Promise<{ events: number; bytes: number; runs: number }> {
  const totals = { events: 0, bytes: 0, runs: 0 };
  let runId: string | undefined = (await client.workflow.getHandle(workflowId).describe()).runId;
  while (runId) {
    const run = await historyOf(client, workflowId, runId);
    totals.events += run.events;
    totals.bytes += run.bytes;
    totals.runs += 1;
    runId = run.continuedFrom;
  }
  return totals;
}

/** READS reads through the session; what they added to its history (across continue-as-new). */
async function sessionReads(client: Client, server: Server, what: string, read: () => Promise<unknown>): Promise<Row> {
  const workflowId = consoleSessionWorkflowId(server.id);
  const start = await sessionTotals(client, workflowId);
  const ms = await timed(read);
  const end = await sessionTotals(client, workflowId);
  return { what, ms, executions: end.runs - start.runs, events: (end.events - start.events) / READS, bytes: (end.bytes - start.bytes) / READS };
}

async function main(): Promise<void> {
  const { config, api, stop } = await startBenchCloud();
  const call = jsonCaller(api);
  const temporal = await connectTemporal(`127.0.0.1:${config.temporal.port}`, config.temporal.namespace);
  try {
    const { token, template } = await seedServerTemplate(api, BENCH_PASSWORD, '10.98.0.0/16');
    const created = await call('POST', '/v1/servers', token, { ...template, name: 'console-bench' });
    if (created.status !== 202) throw new Error(`create: ${created.status} ${JSON.stringify(created.body)}`);
    const id = created.body.server.id as string;
    let server: Server;
    for (;;) {
      const s = (await call('GET', `/v1/servers/${id}`, token)).body;
      if (s.status === 'ACTIVE') {
        server = { id, host: s.host } as Server;
        break;
      }
      if (s.status === 'ERROR') throw new Error(`server failed: ${JSON.stringify(s.fault)}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    const log = path.join(path.dirname(config.host.imageCacheDir), 'console', `${domainNameFor(id)}.log`);
    fs.mkdirSync(path.dirname(log), { recursive: true });
    fs.writeFileSync(log, Array.from({ length: CONSOLE_KIB * 16 }, (_, i) => `console line ${String(i).padStart(6, '0')} ${'.'.repeat(41)}\n`).join(''));

    const client = temporal.client;
    const conductor: ConductorClient = { client, taskQueue: config.temporal.conductorTaskQueue };
    const consoles = createConsoleService(conductor, { idleSeconds: 600 });
    const end = (await consoles.read(server, { maxBytes: STREAM_WINDOW_BYTES })).end; // starts the session
    const rows: Row[] = [
      await perReadWorkflows(conductor, server, GET_BYTES, 'before: GET (per-read workflow, 64 KiB tail)'),
      await perReadWorkflows(conductor, server, STREAM_WINDOW_BYTES, 'before: stream poll (per-read workflow, 1 MiB window)'),
      await sessionReads(client, server, 'after: GET (session update, 64 KiB tail)', () => consoles.read(server, { maxBytes: GET_BYTES })),
      await sessionReads(client, server, 'after: stream poll, nothing new (session update, since)', () => consoles.read(server, { maxBytes: STREAM_WINDOW_BYTES, since: end })),
      await sessionReads(client, server, 'after: HTTP GET /v1/servers/{id}/console', async () => {
        const res = await call('GET', `/v1/servers/${id}/console`, token);
        if (res.status !== 200) throw new Error(`GET console: ${res.status}`);
      }),
    ];
    const cpus = os.cpus();
    console.log(`console reads: ${READS} sequential per kind, a ${CONSOLE_KIB} KiB serial log (test driver); cores: ${cpus.length} × ${cpus[0]?.model ?? '?'}, load ${os.loadavg()[0]!.toFixed(1)}`);
    console.log('| read | p50 | p99 | executions per read | history events per read | history bytes per read |');
    console.log('|---|---|---|---|---|---|');
    for (const r of rows) {
      console.log(
        `| ${r.what} | ${percentile(r.ms, 50).toFixed(1)} ms | ${percentile(r.ms, 99).toFixed(1)} ms | ${(r.executions / READS).toFixed(2)} | ${r.events.toFixed(1)} | ${Math.round(r.bytes).toLocaleString('en')} |`,
      );
    }
  } finally {
    await temporal.connection.close();
    await stop();
  }
}

runBench(main);
