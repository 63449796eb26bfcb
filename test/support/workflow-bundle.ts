/**
 * The workflow bundle for tests. bundleWorkflows builds it in a child process once per state of the
 * sources (cached by their hash: workers/workflow-bundle.ts), so the twenty or so files that start a
 * cloud or a worker share one build; global-setup.ts warms the cache while Temporal starts.
 */
import { silentLogger } from '../../core/log';
import { bundleWorkflows } from '../../workers/conductor';

let cached: Promise<{ code: string }> | undefined;

export function testWorkflowBundle(): Promise<{ code: string }> {
  cached ??= bundleWorkflows(silentLogger);
  return cached;
}
