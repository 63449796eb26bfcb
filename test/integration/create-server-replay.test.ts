/**
 * Determinism: the create-flow history recorded from a real run (test/fixtures/create-server-history.json,
 * re-recorded by `STRATUS_RECORD_HISTORY=1 npm test -- test/integration/servers.test.ts`) must replay
 * against today's workflow code. A change that would break running workflows fails here.
 */
import fs from 'node:fs';
import path from 'node:path';
import { Worker } from '@temporalio/worker';
import { silentLogger } from '../../core/log';
import { bundleWorkflows } from '../../workers/conductor';
import { installTemporalRuntime } from '../../workers/temporal-runtime';

const FIXTURE = path.join(__dirname, '..', 'fixtures', 'create-server-history.json');

test('the recorded create-server history replays without non-determinism', async () => {
  installTemporalRuntime(silentLogger, { forwardCoreLogs: false });
  const history = JSON.parse(fs.readFileSync(FIXTURE, 'utf8'));
  const workflowBundle = await bundleWorkflows(silentLogger);
  // Throws DeterminismViolationError (or any workflow-task failure) if today's code diverges.
  await Worker.runReplayHistory({ workflowBundle, replayName: 'create-server-fixture' }, history, 'fixture');
  const types = (history.events as Array<{ eventType?: string }>).map((e) => e.eventType);
  expect(types).toContain('EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED');
}, 60_000);
