/**
 * One workflow bundle for the whole jest run. Bundling workflows/ (webpack) takes 4-8 s on this
 * machine, and about twenty files start a cloud or a worker: global-setup.ts bundles once, writes the
 * code to a file and names it in STRATUS_TEST_WORKFLOW_BUNDLE; every file reads it from there. The
 * bundle is of the code as it is when the run starts (a file run alone bundles for itself).
 */
import fs from 'node:fs';
import { silentLogger } from '../../core/log';
import { bundleWorkflows } from '../../workers/conductor';

export const WORKFLOW_BUNDLE_ENV = 'STRATUS_TEST_WORKFLOW_BUNDLE';

let cached: Promise<{ code: string }> | undefined;

export function testWorkflowBundle(): Promise<{ code: string }> {
  cached ??= (async () => {
    const file = process.env[WORKFLOW_BUNDLE_ENV];
    if (file && fs.existsSync(file)) return { code: fs.readFileSync(file, 'utf8') };
    return bundleWorkflows(silentLogger);
  })();
  return cached;
}
