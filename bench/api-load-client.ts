/**
 * bench:api's load generator, in a process of its own (forked by bench/api-load.ts): a generator in
 * the server's process would share its event loop and CPU, so its own work and timers would count as
 * the server's latency. Takes one run over IPC, answers with its figures, and exits.
 *
 * Two generators:
 * - `fixed-rate` (what the goals are measured with): request i is due at start + i/rate, evenly
 *   spaced, sent on a pool of `connections` keep-alive sockets (queued in the pool when all are busy).
 *   Its latency counts from when it was due, not from when a socket was free, so a server that falls
 *   behind shows it (no coordinated omission).
 * - `autocannon` (9.0.0, kept to compare with earlier figures): with a rate, each connection sends
 *   its share of the second's requests back to back as soon as the second starts, then waits for
 *   the next second, so the load comes in bursts of `connections` concurrent requests; and its
 *   coordinated-omission correction uses an expected interval of ceil(1/rate) = 1 ms (not
 *   1000/rate ms), which adds a synthetic sample per millisecond of every response.
 */
import fs from 'node:fs';
import http from 'node:http';
import autocannon from 'autocannon';

export type Generator = 'fixed-rate' | 'autocannon';

export interface LoadRun {
  generator: Generator;
  url: string;
  token: string;
  /** Request paths, taken in turn (one per request). */
  paths: string[];
  connections: number;
  rate: number;
  seconds: number;
}

export interface LoadFigures {
  p50: number;
  p99: number;
  max: number;
  ok: number;
  failed: number;
  /** Why the first few failed (a status code, or the socket's error), to tell a server's fault from the generator's. */
  reasons?: string[];
}

async function runAutocannon({ url, token, paths, connections, rate, seconds }: LoadRun): Promise<LoadFigures> {
  let next = 0;
  const result = await autocannon({
    url,
    connections,
    overallRate: rate,
    duration: seconds,
    headers: { authorization: `Bearer ${token}` },
    requests: [
      {
        setupRequest: (req) => {
          next = (next + 1) % paths.length;
          return { ...req, method: 'GET', path: paths[next]! };
        },
      },
    ],
  });
  return { p50: result.latency.p50, p99: result.latency.p99, max: result.latency.max, ok: result['2xx'], failed: result.non2xx + result.errors + result.timeouts };
}

function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

async function runFixedRate({ url, token, paths, connections, rate, seconds }: LoadRun): Promise<LoadFigures> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: connections });
  const target = new URL(url);
  const total = Math.round(rate * seconds);
  const interval = 1000 / rate;
  const latencies: number[] = [];
  /** BENCH_TRACE=file: each request's due time (ms from the start) and latency, appended as CSV, to see when the slow ones came. */
  const trace: string[] = [];
  let failed = 0;
  let settled = 0;
  const reasons: string[] = [];
  return new Promise((resolve) => {
    const finish = () => {
      agent.destroy();
      if (process.env.BENCH_TRACE) fs.appendFileSync(process.env.BENCH_TRACE, trace.join(''));
      latencies.sort((a, b) => a - b);
      const round = (ms: number) => Math.round(ms * 10) / 10;
      resolve({ p50: round(percentile(latencies, 50)), p99: round(percentile(latencies, 99)), max: round(latencies.at(-1) ?? 0), ok: latencies.length, failed, reasons });
    };
    const fail = (reason: string) => {
      failed += 1;
      if (reasons.length < 3) reasons.push(reason);
      if (++settled === total) finish();
    };
    const send = (i: number, due: number) => {
      const req = http.request(
        { agent, host: target.hostname, port: target.port, path: paths[i % paths.length], headers: { authorization: `Bearer ${token}` } },
        (res) => {
          res.on('data', () => undefined);
          res.on('end', () => {
            if (res.statusCode !== 200) return fail(`${res.statusCode} on ${paths[i % paths.length]}`);
            latencies.push(performance.now() - due);
            if (process.env.BENCH_TRACE) trace.push(`${seconds},${(due - start).toFixed(1)},${(performance.now() - due).toFixed(2)}\n`);
            if (++settled === total) finish();
          });
        },
      );
      req.on('error', (err) => fail(`${err.message} on ${paths[i % paths.length]}`));
      req.end();
    };
    const start = performance.now();
    let sent = 0;
    // Sends every request due by now, then sleeps until the next one is due (timers fire late, never early).
    const tick = () => {
      const now = performance.now();
      while (sent < total && start + sent * interval <= now) {
        send(sent, start + sent * interval);
        sent += 1;
      }
      if (sent < total) setTimeout(tick, Math.max(0, start + sent * interval - performance.now()));
    };
    tick();
  });
}

process.once('message', (message: LoadRun) => {
  (message.generator === 'autocannon' ? runAutocannon(message) : runFixedRate(message)).then(
    (figures) => process.send!(figures, () => process.exit(0)),
    (err: unknown) => {
      console.error(err);
      process.exit(1);
    },
  );
});
