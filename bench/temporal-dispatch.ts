/**
 * What one activity round trip costs on the embedded Temporal dev server, from this SDK: a workflow
 * runs N no-op activities one after another, either on another task queue (as the create flow's boot
 * step does: conductor → host.<name>) or on its own queue (eligible for eager dispatch). Each round
 * runs fresh workflows back to back; the per-activity time is read from the workflow's history.
 *
 *   npx tsx bench/temporal-dispatch.ts            # 5 rounds × 10 activities each way
 *
 * Measured here (2 cores): a cross-queue round trip (two task dispatches: the activity task, then the
 * next workflow task) costs ~15 ms for about a second, then settles at ~100 ms for as long as the
 * traffic lasts; a same-queue one (eager activity: one dispatch) then costs ~50 ms. So each task
 * dispatch settles at ~50 ms. Cause not found yet; ruled out: task-queue partitions and the poll
 * forwarder's rate, the new matcher, SQLite (memory or file, WAL), sticky queues, poller counts and
 * autoscaling, one or two client connections, TCP delayed ACKs on loopback.
 */
import os from 'node:os';
import { Client, Connection } from '@temporalio/client';
import { DefaultLogger, NativeConnection, Runtime, Worker } from '@temporalio/worker';
import { loadConfig } from '../core/config';
import { createLogger } from '../core/log';
import { startScratchDevServer } from '../temporal/dev-server';
import { runBench } from './run';

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
const N = 10;

async function main(): Promise<void> {
  Runtime.install({ logger: new DefaultLogger('WARN'), telemetryOptions: { logging: { filter: { core: 'ERROR', other: 'ERROR' }, console: {} } } });
  const log = createLogger('warn');
  const server = await startScratchDevServer(loadConfig(), log);
  const native = await NativeConnection.connect({ address: server.address });
  const connection = await Connection.connect({ address: server.address });
  const client = new Client({ connection, namespace: 'stratus' });
  const activities = { ping: async () => 1 };
  const conductor = await Worker.create({
    connection: native,
    namespace: 'stratus',
    taskQueue: 'dispatch-bench',
    workflowsPath: require.resolve('./temporal-dispatch/workflows'),
    activities,
  });
  const host = await Worker.create({ connection: native, namespace: 'stratus', taskQueue: 'dispatch-bench-host', activities });

  /** Milliseconds between consecutive ActivityTaskCompleted events: one round trip each. */
  async function roundTrips(type: 'crossQueue' | 'sameQueue'): Promise<number[]> {
    const handle = await client.workflow.start(type, { taskQueue: 'dispatch-bench', workflowId: `${type}-${Date.now()}-${Math.random()}`, args: [N] });
    await handle.result();
    const history = await handle.fetchHistory();
    const completed = (history.events ?? [])
      .filter((e) => String(e.eventType) === 'EVENT_TYPE_ACTIVITY_TASK_COMPLETED' || e.eventType === 12)
      .map((e) => Number(e.eventTime!.seconds) * 1000 + Math.round((e.eventTime!.nanos ?? 0) / 1e6));
    return completed.slice(1).map((t, i) => t - completed[i]!);
  }

  const running = [conductor.run(), host.run()];
  try {
    console.log(`temporal dispatch: ${os.cpus().length} cores, dev server ${server.address}, ${N} activities per workflow`);
    for (const type of ['crossQueue', 'sameQueue'] as const) {
      for (let r = 1; r <= ROUNDS; r += 1) {
        const ms = await roundTrips(type);
        const sorted = [...ms].sort((a, b) => a - b);
        console.log(`  ${type} round ${r}: median ${sorted[Math.floor(sorted.length / 2)]} ms  [${ms.join(', ')}]`);
      }
    }
  } finally {
    conductor.shutdown();
    host.shutdown();
    await Promise.all(running);
    await native.close();
    await connection.close();
    await server.stop();
  }
}

runBench(main);
