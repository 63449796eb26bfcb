/**
 * POST /v1/servers → ACTIVE latency over N sequential creates on libvirt's test driver, through the
 * whole stack: API, Temporal (its own embedded dev server), conductor, host agent, PGlite.
 *
 *   npm run bench:create            # 50 creates
 *   BENCH_CREATES=200 npm run bench:create
 *
 * Each server is deleted after it is measured (not timed), so the host never fills up.
 */
import os from 'node:os';
import { randomBytes } from 'node:crypto';
import { BENCH_PASSWORD, startBenchCloud } from './cloud';
import { jsonCaller } from './http';
import { runBench } from './run';

const N = Number(process.env.BENCH_CREATES ?? 50);
const POLL_MS = Number(process.env.BENCH_POLL_MS ?? 20);

function median(xs: number[]): number {
  return [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? 0;
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

async function main(): Promise<void> {
  const { api, stop } = await startBenchCloud();
  const call = jsonCaller(api);
  try {
    const token = (await call('POST', '/v1/auth/tokens', undefined, { username: 'admin', password: BENCH_PASSWORD, project: 'admin' })).body.token as string;
    const image = (await call('POST', '/v1/images', token, { name: 'bench', disk_format: 'raw' })).body;
    await fetch(`${api}/v1/images/${image.id}/file`, {
      method: 'PUT',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/octet-stream' },
      body: randomBytes(1024 * 1024),
    });
    const network = (await call('POST', '/v1/networks', token, { name: 'bench' })).body;
    await call('POST', '/v1/subnets', token, { network_id: network.id, cidr: '10.99.0.0/16' });
    const flavor = (await call('GET', '/v1/flavors', token)).body.flavors.find((f: { name: string }) => f.name === 'm1.tiny');

    const latencies: number[] = [];
    const serverSide: number[] = [];
    const postMs: number[] = [];
    const getMs: number[] = [];
    const stepMs: Record<string, number[]> = {};
    for (let i = 0; i < N + 1; i += 1) {
      const started = performance.now();
      const created = await call('POST', '/v1/servers', token, {
        name: `bench-${i}`,
        flavor_id: flavor.id,
        image_id: image.id,
        networks: [{ network_id: network.id }],
      });
      if (created.status !== 202) throw new Error(`create: ${created.status} ${JSON.stringify(created.body)}`);
      const id = created.body.server.id as string;
      if (i > 0) postMs.push(performance.now() - started);
      for (;;) {
        const getStarted = performance.now();
        const s = (await call('GET', `/v1/servers/${id}`, token)).body;
        if (i > 0) getMs.push(performance.now() - getStarted);
        if (s.status === 'ACTIVE') break;
        if (s.status === 'ERROR') throw new Error(`server ${id} failed: ${JSON.stringify(s.fault)}`);
        await new Promise((r) => setTimeout(r, POLL_MS));
      }
      if (i > 0) {
        latencies.push(performance.now() - started); // the first create warms caches (image pull)
        const op = (await call('GET', `/v1/operations/${created.body.operation.id}`, token)).body;
        // Accepted → succeeded on the server's clock: free of the client's polling interval.
        serverSide.push(Date.parse(op.updated_at) - Date.parse(op.created_at));
        for (const step of op.progress?.steps ?? []) {
          if (step.started_at && step.ended_at) (stepMs[step.name] ??= []).push(Date.parse(step.ended_at) - Date.parse(step.started_at));
        }
      }
      await call('DELETE', `/v1/servers/${id}`, token);
      for (;;) {
        if ((await call('GET', `/v1/servers/${id}`, token)).status === 404) break;
        await new Promise((r) => setTimeout(r, POLL_MS));
      }
    }
    latencies.sort((a, b) => a - b);
    const mean = latencies.reduce((a, b) => a + b, 0) / latencies.length;
    const cpus = os.cpus();
    console.log(`create → ACTIVE over ${N} sequential creates (test driver, 1 NIC, image cached after the first)`);
    console.log(`cores: ${cpus.length} × ${cpus[0]?.model ?? '?'}`);
    console.log(`POST → ACTIVE seen by a client polling every ${POLL_MS} ms:`);
    console.log(`  p50 ${percentile(latencies, 50).toFixed(0)} ms   p90 ${percentile(latencies, 90).toFixed(0)} ms   p99 ${percentile(latencies, 99).toFixed(0)} ms`);
    serverSide.sort((a, b) => a - b);
    console.log(`accepted → ACTIVE on the server's clock (operation created_at → updated_at):`);
    console.log(`  p50 ${percentile(serverSide, 50).toFixed(0)} ms   p90 ${percentile(serverSide, 90).toFixed(0)} ms   p99 ${percentile(serverSide, 99).toFixed(0)} ms`);
    console.log(`median POST /v1/servers ${median(postMs).toFixed(0)} ms, median GET /v1/servers/{id} while building ${median(getMs).toFixed(0)} ms`);
    console.log(`median per step (workflow clock): ${Object.entries(stepMs).map(([k, v]) => `${k} ${median(v)}`).join(', ')} ms`);
    console.log(`mean ${mean.toFixed(0)} ms   min ${latencies[0]!.toFixed(0)} ms   max ${latencies[latencies.length - 1]!.toFixed(0)} ms`);
  } finally {
    await stop();
  }
}

runBench(main);
