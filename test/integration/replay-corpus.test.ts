/**
 * Determinism gate (docs/workflow-versioning.md): every recorded history in test/fixtures/histories/
 * (one per workflow type and outcome, recorded from a real dev server by `npm run record:histories`)
 * replays against today's workflow bundle. A change that would break a workflow already running in
 * production fails here, naming the history and the event where the code diverged.
 */
import fs from 'node:fs';
import path from 'node:path';
import { historyFromJSON } from '@temporalio/common/lib/proto-utils';
import { Worker } from '@temporalio/worker';
import { silentLogger } from '../../core/log';
import { testWorkflowBundle } from '../support/workflow-bundle';
import { installTemporalRuntime } from '../../workers/temporal-runtime';

const DIR = path.join(__dirname, '..', 'fixtures', 'histories');
/** Workflow types the corpus must cover (workflows/index.ts): a new workflow needs its history here. */
const TYPES = ['createServer', 'deleteServer', 'serverAction', 'serverConsole', 'serverConsoleSession', 'createVolume', 'attachVolume', 'detachVolume', 'deleteVolume', 'hostMonitor', 'meterServer', 'meterHost', 'reconciler', 'serverBatch'];
/**
 * Types merged after the corpus was last recorded, whose histories are still to be added to
 * workflow-histories.test.ts (listed, so a further new type still fails this test).
 */
const NOT_YET_RECORDED = ['reconciler', 'serverBatch'];

function corpus() {
  return fs
    .readdirSync(DIR)
    .filter((f) => f.endsWith('.json'))
    .sort()
    .map((file) => {
      const history = historyFromJSON(JSON.parse(fs.readFileSync(path.join(DIR, file), 'utf8')));
      const started = history.events?.[0]?.workflowExecutionStartedEventAttributes;
      return { file, workflowId: file.replace(/\.json$/, ''), history, type: started?.workflowType?.name ?? '?' };
    });
}

test('the corpus covers every workflow type, and create success / ERROR / reschedule / cancel', () => {
  const histories = corpus();
  expect([...new Set(histories.map((h) => h.type))].sort()).toEqual(TYPES.filter((t) => !NOT_YET_RECORDED.includes(t)).sort());
  const workflowsIndex = fs.readFileSync(path.join(__dirname, '..', '..', 'workflows', 'index.ts'), 'utf8');
  const exported = [...workflowsIndex.matchAll(/export \{([^}]+)\}/g)].flatMap((m) => m[1]!.split(',').map((s) => s.trim()));
  expect(exported.sort()).toEqual([...TYPES].sort());
  expect(histories.map((h) => h.file)).toEqual(
    expect.arrayContaining(['create-success.json', 'create-error.json', 'create-reschedule.json', 'create-cancel.json']),
  );
});

test('every recorded history replays against the current workflow code', async () => {
  installTemporalRuntime(silentLogger, { forwardCoreLogs: false });
  const workflowBundle = await testWorkflowBundle();
  const failures: string[] = [];
  let replayed = 0;
  for await (const result of Worker.runReplayHistories({ workflowBundle, replayName: 'corpus' }, corpus())) {
    replayed += 1;
    if (result.error) failures.push(`${result.workflowId}: ${result.error.message}`);
  }
  expect(failures).toEqual([]);
  expect(replayed).toBe(corpus().length);
}, 120_000);
