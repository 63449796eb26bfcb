/**
 * Progress carried on a conductor step (workflows/carried-progress.ts, workers/progress-carrier.ts):
 * the activity gets exactly its own arguments, the write happens beside it, and a failed write never
 * fails the step. (servers.test.ts shows it end to end: the rows during a held step, and a create's
 * local activities without a progress write among them.)
 */
import type { ActivityExecuteInput } from '@temporalio/worker';
import { silentLogger } from '../../core/log';
import { carriedArg, takeCarried, type ProgressWrite } from '../../workflows/carried-progress';
import { progressCarrier } from '../../workers/progress-carrier';

const write: ProgressWrite = { operationId: 'op-1', progress: { status: 'running', current: 'schedule' }, seq: 3 };

test('takeCarried splits off the carried write, and only that', () => {
  expect(takeCarried([{ serverId: 's' }, carriedArg(write)])).toEqual({ args: [{ serverId: 's' }], write });
  expect(takeCarried([{ serverId: 's' }])).toEqual({ args: [{ serverId: 's' }], write: null });
  expect(takeCarried([])).toEqual({ args: [], write: null });
  expect(takeCarried([null])).toEqual({ args: [null], write: null });
});

function execute(record: (w: ProgressWrite) => Promise<void>, args: unknown[], activity: (...a: unknown[]) => Promise<unknown>) {
  const interceptor = progressCarrier(record, silentLogger)({} as never).inbound!;
  const input = { args, headers: {} } as unknown as ActivityExecuteInput;
  return interceptor.execute!(input, (i) => activity(...i.args));
}

test('the activity runs with its own arguments while the carried progress is written', async () => {
  const written: ProgressWrite[] = [];
  const seen: unknown[][] = [];
  const result = await execute(async (w) => void written.push(w), [{ serverId: 's' }, carriedArg(write)], async (...a) => (seen.push(a), 'ok'));
  expect(result).toBe('ok');
  expect(seen).toEqual([[{ serverId: 's' }]]);
  expect(written).toEqual([write]);
});

test('a failed progress write does not fail the step; a failed step still fails', async () => {
  const broken = async () => {
    throw new Error('database gone');
  };
  await expect(execute(broken, [{}, carriedArg(write)], async () => 'ok')).resolves.toBe('ok');
  await expect(execute(async () => undefined, [{}, carriedArg(write)], async () => Promise.reject(new Error('step failed')))).rejects.toThrow('step failed');
});

test('an activity called without a carried write is untouched', async () => {
  let calls = 0;
  const seen: unknown[][] = [];
  await execute(async () => void (calls += 1), [{ a: 1 }, { b: 2 }], async (...a) => void seen.push(a));
  expect(calls).toBe(0);
  expect(seen).toEqual([[{ a: 1 }, { b: 2 }]]);
});
