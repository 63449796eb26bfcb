/**
 * Starts ONE Temporal dev server (in-memory, random free ports, namespace `stratus`) for the whole
 * jest run and exports it to test files through environment variables (see temporal.ts).
 *
 * Set STRATUS_TEST_TEMPORAL_ADDRESS beforehand to use an existing server instead (its namespace,
 * STRATUS_TEST_TEMPORAL_NAMESPACE or `stratus`, and search attributes are created if missing).
 * A server left behind by a jest run that was killed is reaped here (pid files under
 * $TMPDIR/stratus-jest-temporal/, one per jest process).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { loadConfig } from '../../core/config';
import { MissingDependency } from '../../core/errors';
import { createLogger } from '../../core/log';
import { resolveTemporalCli } from '../../temporal/binary';
import { connectTemporal, ensureNamespaceAndSearchAttributes } from '../../temporal/connection';
import { reapStaleDevServer, startDevServer, type DevServer } from '../../temporal/dev-server';
import { freePort } from './ports';
import { TEMPORAL_ADDRESS_ENV, TEMPORAL_NAMESPACE_ENV } from './temporal';
import { bundleWorkflows } from '../../workers/conductor';

declare global {
  // Shared with global-teardown.ts (jest runs both in its parent process).
  var __STRATUS_TEST_TEMPORAL__: DevServer | undefined;
}

export const PID_DIR = path.join(os.tmpdir(), 'stratus-jest-temporal');

export default async function globalSetup(): Promise<void> {
  const log = createLogger(process.env.STRATUS_TEST_LOG_LEVEL ?? 'warn');
  const namespace = process.env[TEMPORAL_NAMESPACE_ENV] || 'stratus';
  process.env[TEMPORAL_NAMESPACE_ENV] = namespace;

  // The workflow bundle, built (or found in its cache) while Temporal starts: test/support/workflow-bundle.ts.
  const bundled = bundleWorkflows(log);

  try {
    await Promise.all([bundled, startSharedTemporal(log, namespace)]);
  } catch (err) {
    // A missing piece is one clear line, not a stack trace into jest internals.
    if (err instanceof MissingDependency) err.stack = `${err.name}: ${err.message}`;
    throw err;
  }
}

async function startSharedTemporal(log: ReturnType<typeof createLogger>, namespace: string): Promise<void> {
  const external = process.env[TEMPORAL_ADDRESS_ENV];
  if (external) {
    const { connection } = await connectTemporal(external, namespace);
    try {
      await ensureNamespaceAndSearchAttributes(connection, namespace, { retentionDays: 1, log });
    } finally {
      await connection.close();
    }
    return;
  }

  const cliPath = resolveTemporalCli(loadConfig());
  await reapStaleServers(log);
  const server = await startDevServer({
    cliPath,
    port: await freePort(),
    uiPort: await freePort(),
    dbFile: undefined,
    namespace,
    log,
    pidFile: path.join(PID_DIR, `${process.pid}.json`),
  });
  globalThis.__STRATUS_TEST_TEMPORAL__ = server;
  process.env[TEMPORAL_ADDRESS_ENV] = server.address;
  if (server.uiUrl) process.env.STRATUS_TEST_TEMPORAL_UI_URL = server.uiUrl; // for a look while debugging
}

async function reapStaleServers(log: ReturnType<typeof createLogger>): Promise<void> {
  let files: string[];
  try {
    files = fs.readdirSync(PID_DIR);
  } catch {
    return;
  }
  for (const file of files) {
    if (file.endsWith('.json')) await reapStaleDevServer(path.join(PID_DIR, file), log);
  }
}
