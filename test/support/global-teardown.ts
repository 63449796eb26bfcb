import fs from 'node:fs';
import path from 'node:path';

/** Stops the shared Temporal dev server that global-setup.ts started (if it started one), removes the run's workflow bundle. */
export default async function globalTeardown(): Promise<void> {
  const bundle = globalThis.__STRATUS_TEST_WORKFLOW_BUNDLE__;
  globalThis.__STRATUS_TEST_WORKFLOW_BUNDLE__ = undefined;
  if (bundle) fs.rmSync(path.dirname(bundle), { recursive: true, force: true });
  const server = globalThis.__STRATUS_TEST_TEMPORAL__;
  globalThis.__STRATUS_TEST_TEMPORAL__ = undefined;
  if (server) await server.stop();
}
