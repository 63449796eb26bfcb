/**
 * A whole `stratus up` cloud for a bench, in this process: its own embedded Temporal dev server on
 * free ports, PGlite in a temp data dir, one host agent `bench-host` on libvirt's test driver, admin
 * password BENCH_PASSWORD. `stop()` stops it and removes the data dir.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { loadConfig, type Config } from '../core/config';
import { createLogger } from '../core/log';
import { freePort } from '../core/ports';
import { startCloud, type RunningCloud } from '../workers/cloud';

export const BENCH_PASSWORD = 'bench-password';

export interface BenchCloud {
  config: Config;
  cloud: RunningCloud;
  /** Base URL of the API. */
  api: string;
  stop(): Promise<void>;
}

/** The environment of a bench's `stratus up`: data in `dataDir`, free ports, host `bench-host` on the test driver. */
export async function benchUpEnv(dataDir: string): Promise<Record<string, string>> {
  return {
    STRATUS_DATA_DIR: dataDir,
    STRATUS_API_PORT: String(await freePort()),
    TEMPORAL_PORT: String(await freePort()),
    TEMPORAL_UI_PORT: String(await freePort()),
    STRATUS_ADMIN_PASSWORD: BENCH_PASSWORD,
    STRATUS_LIBVIRT_URI: 'test:///default',
    STRATUS_HOST_NAME: 'bench-host',
    LOG_LEVEL: 'warn',
  };
}

export async function startBenchCloud(env: Record<string, string> = {}): Promise<BenchCloud> {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'stratus-bench-'));
  const config = loadConfig({ ...process.env, ...(await benchUpEnv(dataDir)), ...env });
  const cloud = await startCloud('up', config, createLogger('warn'));
  return {
    config,
    cloud,
    api: `http://127.0.0.1:${config.api.port}`,
    async stop() {
      await cloud.stop();
      fs.rmSync(dataDir, { recursive: true, force: true });
    },
  };
}
