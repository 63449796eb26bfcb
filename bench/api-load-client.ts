/**
 * bench:api's load generator, in a process of its own (forked by bench/api-load.ts): autocannon in
 * the server's process would share its event loop and CPU, so its own work and timers would count as
 * the server's latency. Takes one run over IPC, answers with autocannon's figures, and exits.
 */
import autocannon from 'autocannon';

export interface LoadRun {
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
  ok: number;
  failed: number;
}

async function run({ url, token, paths, connections, rate, seconds }: LoadRun): Promise<LoadFigures> {
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
  return { p50: result.latency.p50, p99: result.latency.p99, ok: result['2xx'], failed: result.non2xx + result.errors + result.timeouts };
}

process.once('message', (message: LoadRun) => {
  run(message).then(
    (figures) => process.send!(figures, () => process.exit(0)),
    (err: unknown) => {
      console.error(err);
      process.exit(1);
    },
  );
});
