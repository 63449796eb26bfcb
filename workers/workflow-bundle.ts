/**
 * The conductor's workflow bundle (webpack, through the Temporal SDK). Built in a short-lived child
 * process, so webpack (tens of MiB of code and strings, measured in a heap snapshot of `stratus up`)
 * never stays in the long-running one, and kept in a cache keyed by the hash of every source file,
 * so later starts (and every test cloud) reuse it; any edit to a source makes a new bundle.
 *
 *   node --import tsx workers/build-workflow-bundle.ts <out file>     (what the parent runs)
 *
 * The child runs from the TypeScript sources even when `stratus` itself runs the compiled dist/
 * (webpack bundles the sources of workflows/, not dist/).
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Logger } from '../core/log';

const ROOT = path.resolve(__dirname, '..');
/** Directories whose sources a workflow may import (directly or not); test and bench code never is. */
const SOURCE_DIRS = ['workflows', 'activities', 'core', 'db', 'images', 'libvirt', 'services', 'temporal'];
const CACHE_DIR = path.join(os.tmpdir(), 'stratus-workflow-bundles');
const CHILD = path.join(ROOT, 'workers', 'build-workflow-bundle.ts');

function sourceHash(): string {
  const hash = createHash('sha256');
  const sdk = JSON.parse(fs.readFileSync(require.resolve('@temporalio/worker/package.json'), 'utf8')) as { version: string };
  hash.update(`@temporalio/worker@${sdk.version}\n`);
  const walk = (dir: string): void => {
    for (const entry of fs.readdirSync(dir, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
      const full = path.join(dir, entry.name);
      if (entry.isDirectory()) walk(full);
      else if (entry.name.endsWith('.ts')) hash.update(`${path.relative(ROOT, full)}\n`).update(fs.readFileSync(full));
    }
  };
  for (const dir of SOURCE_DIRS) walk(path.join(ROOT, dir));
  return hash.digest('hex').slice(0, 24);
}

/** The bundle's code: from the cache, or built by a child process into it. */
export async function loadWorkflowBundle(log: Logger): Promise<{ code: string }> {
  const file = path.join(CACHE_DIR, `${sourceHash()}.js`);
  if (!fs.existsSync(file)) {
    const started = Date.now();
    fs.mkdirSync(CACHE_DIR, { recursive: true });
    const tsx = path.join(ROOT, 'node_modules/tsx/dist/loader.mjs');
    const child = spawn(process.execPath, ['--import', `file://${tsx}`, CHILD, file], { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, NODE_OPTIONS: '' } });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const code = await new Promise<number | null>((resolve, reject) => {
      child.on('error', reject);
      child.on('exit', resolve);
    });
    if (code !== 0 || !fs.existsSync(file)) throw new Error(`bundling the workflows failed (exit ${code}): ${stderr.trim().slice(-2000)}`);
    log.debug({ ms: Date.now() - started, file }, 'workflow bundle built');
  }
  return { code: await fs.promises.readFile(file, 'utf8') };
}
