/**
 * bin/stratus, the launcher: runs the compiled dist/stratus.js only while it is newer than every
 * TypeScript source, so an edited checkout never runs stale code. Tested on a copy of the launcher in
 * a scratch tree whose two entry points say which one ran.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const REPO = path.resolve(__dirname, '../..');
let root: string;

/** A scratch tree: bin/stratus (the real launcher), bin/stratus.ts and dist/stratus.js printing their names. */
beforeAll(() => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'stratus-launcher-'));
  fs.mkdirSync(path.join(root, 'bin'));
  fs.mkdirSync(path.join(root, 'dist'));
  fs.mkdirSync(path.join(root, 'core'));
  fs.copyFileSync(path.join(REPO, 'bin/stratus'), path.join(root, 'bin/stratus'));
  fs.copyFileSync(path.join(REPO, 'bin/node-flags'), path.join(root, 'bin/node-flags'));
  fs.chmodSync(path.join(root, 'bin/stratus'), 0o755);
  fs.symlinkSync(path.join(REPO, 'node_modules'), path.join(root, 'node_modules'));
  const report = "console.log(JSON.stringify({ ran: '%s', args: process.argv.slice(2), arenas: process.env.MALLOC_ARENA_MAX, flags: process.execArgv.filter((f) => !f.includes('tsx')) }));";
  fs.writeFileSync(path.join(root, 'bin/stratus.ts'), report.replace('%s', 'tsx'));
  fs.writeFileSync(path.join(root, 'core/config.ts'), 'export {};\n');
});

afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

function writeDist(): void {
  fs.writeFileSync(path.join(root, 'dist/stratus.js'), "console.log(JSON.stringify({ ran: 'dist', args: process.argv.slice(2), arenas: process.env.MALLOC_ARENA_MAX, flags: process.execArgv }));");
  // A source older than the bundle, as after `npm run build`.
  const past = new Date(Date.now() - 60_000);
  for (const f of ['bin/stratus.ts', 'core/config.ts']) fs.utimesSync(path.join(root, f), past, past);
}

function launch(env: NodeJS.ProcessEnv = {}, args = ['server', 'list']): { ran: string; args: string[]; arenas: string; flags: string[] } {
  const clean = { ...process.env, STRATUS_TSX: '', STRATUS_NODE_FLAGS: undefined, MALLOC_ARENA_MAX: undefined, ...env };
  return JSON.parse(execFileSync(path.join(root, 'bin/stratus'), args, { env: clean, encoding: 'utf8' }));
}

test('no bundle: the TypeScript sources run through tsx', () => {
  expect(launch()).toMatchObject({ ran: 'tsx', args: ['server', 'list'] });
});

test('a bundle newer than every source runs, with the flags bin/node-flags gives its command', () => {
  writeDist();
  expect(launch()).toEqual({ ran: 'dist', args: ['server', 'list'], arenas: '2', flags: ['--max-semi-space-size=1', '--optimize-for-size'] });
  // The processes that serve the API trade some memory for speed; the others keep to size.
  for (const command of ['up', 'api']) expect(launch({}, [command, '--help']).flags).toEqual(['--max-semi-space-size=1', '--heap-growing-percent=50']);
  for (const command of ['conductor', 'agent']) expect(launch({}, [command, '--help']).flags).toEqual(['--max-semi-space-size=1', '--optimize-for-size']);
});

test('STRATUS_TSX=1 runs the sources; STRATUS_NODE_FLAGS and MALLOC_ARENA_MAX replace the defaults', () => {
  writeDist();
  expect(launch({ STRATUS_TSX: '1' }).ran).toBe('tsx');
  expect(launch({ STRATUS_NODE_FLAGS: '--max-old-space-size=300', MALLOC_ARENA_MAX: '8' })).toMatchObject({ ran: 'dist', arenas: '8', flags: ['--max-old-space-size=300'] });
  expect(launch({ STRATUS_NODE_FLAGS: '' }).flags).toEqual([]);
});

test('a source edited after the build makes the launcher run the sources, never the stale bundle; a daemon says so', () => {
  writeDist();
  const future = new Date(Date.now() + 60_000);
  fs.utimesSync(path.join(root, 'core/config.ts'), future, future);
  expect(launch().ran).toBe('tsx');
  const daemon = spawnSync(path.join(root, 'bin/stratus'), ['agent'], { env: { ...process.env, STRATUS_TSX: '', STRATUS_NODE_FLAGS: undefined }, encoding: 'utf8' });
  expect(JSON.parse(daemon.stdout)).toMatchObject({ ran: 'tsx', args: ['agent'] });
  expect(daemon.stderr).toContain('dist/stratus.js is missing or older than a source');
});
