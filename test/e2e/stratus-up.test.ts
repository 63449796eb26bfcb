/**
 * `stratus up` as a user runs it: a child process that starts its own Temporal dev server, PGlite
 * under the data dir, the API, a conductor and a host agent (libvirt test driver). Then SIGTERM.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { freePort } from '../support/ports';

const STRATUS = path.join(__dirname, '..', '..', 'bin', 'stratus');

interface Run {
  child: ChildProcess;
  stderr: () => string;
  exited: Promise<{ code: number | null }>;
}

function run(args: string[], env: Record<string, string>): Run {
  const child = spawn(STRATUS, args, {
    env: { ...process.env, LOG_LEVEL: 'warn', ...env },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let err = '';
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  const exited = new Promise<{ code: number | null }>((resolve) => child.on('exit', (code) => resolve({ code })));
  return { child, stderr: () => err, exited };
}

async function waitFor(what: () => boolean, timeoutMs: number, describe: () => string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!what()) {
    if (Date.now() > deadline) throw new Error(`timed out: ${describe()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Running, not merely a zombie waiting for PID 1 to reap it. */
function alive(pid: number): boolean {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

function childPids(pid: number): number[] {
  const out: number[] = [];
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${entry}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === pid) out.push(Number(entry));
    } catch {
      /* gone */
    }
  }
  return out;
}

describe('stratus up', () => {
  let dataDir: string;
  let env: Record<string, string>;

  beforeAll(async () => {
    dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'stratus-up-'));
    env = {
      STRATUS_DATA_DIR: dataDir,
      STRATUS_API_PORT: String(await freePort()),
      TEMPORAL_PORT: String(await freePort()),
      TEMPORAL_UI_PORT: String(await freePort()),
      STRATUS_ADMIN_PASSWORD: 'e2e-admin-password',
      STRATUS_HOST_NAME: 'e2e-host',
      STRATUS_HOST_HEARTBEAT_SECONDS: '2',
    };
  });
  afterAll(() => fs.rmSync(dataDir, { recursive: true, force: true }));

  test('one command brings up a cloud: token, readyz, Temporal UI; SIGTERM leaves nothing behind', async () => {
    const up = run(['up'], env);
    try {
      await waitFor(() => up.stderr().includes('Stratus is ready'), 60_000, () => up.stderr());
      const api = `http://127.0.0.1:${env.STRATUS_API_PORT}`;
      expect(up.stderr()).toContain(`API docs     http://localhost:${env.STRATUS_API_PORT}/docs`);

      const token = await fetch(`${api}/v1/auth/tokens`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ username: 'admin', password: 'e2e-admin-password', project: 'admin' }),
      });
      expect(token.status).toBe(201);

      const ready = await fetch(`${api}/readyz`);
      expect(ready.status).toBe(200);
      expect(await ready.json()).toMatchObject({ status: 'ok' });

      const ui = await fetch(`http://127.0.0.1:${env.TEMPORAL_UI_PORT}/`);
      expect(ui.status).toBe(200);

      const children = childPids(up.child.pid!);
      expect(children.length).toBeGreaterThanOrEqual(1); // the Temporal dev server

      const signalled = Date.now();
      up.child.kill('SIGTERM');
      const { code } = await up.exited;
      expect(code).toBe(0);
      // Everything, children included, must be gone within 10 s of the signal.
      await waitFor(() => children.every((pid) => !alive(pid)), Math.max(0, 10_000 - (Date.now() - signalled)), () =>
        `still running: ${children.filter(alive).join(', ')}`,
      );
      expect(Date.now() - signalled).toBeLessThan(10_000);
    } finally {
      up.child.kill('SIGKILL');
    }
  }, 90_000);

  test('a restart on the same data dir keeps users (PGlite on disk) and needs no new password', async () => {
    const up = run(['up'], env);
    try {
      await waitFor(() => up.stderr().includes('Stratus is ready'), 60_000, () => up.stderr());
      expect(up.stderr()).not.toContain('shown only this once');
      const res = await fetch(`http://127.0.0.1:${env.STRATUS_API_PORT}/v1/auth/tokens`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ username: 'admin', password: 'e2e-admin-password', project: 'admin' }),
      });
      expect(res.status).toBe(201);
      up.child.kill('SIGTERM');
      expect((await up.exited).code).toBe(0);
    } finally {
      up.child.kill('SIGKILL');
    }
  }, 90_000);
});

describe('stratus up refuses to start with one clear line', () => {
  let base: Record<string, string>;
  beforeAll(async () => {
    base = {
      STRATUS_DATA_DIR: fs.mkdtempSync(path.join(os.tmpdir(), 'stratus-bad-')),
      STRATUS_API_PORT: String(await freePort()),
      TEMPORAL_PORT: String(await freePort()),
      TEMPORAL_UI_PORT: String(await freePort()),
    };
  });

  async function failure(env: Record<string, string>, args = ['up']): Promise<string> {
    const r = run(args, { ...base, ...env });
    const { code } = await r.exited;
    expect(code).not.toBe(0);
    const lines = r.stderr().trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^stratus: /);
    return lines[0]!;
  }

  test.each([
    ['no Temporal binary', { TEMPORAL_CLI_PATH: '/nonexistent/temporal' }, /TEMPORAL_CLI_PATH=\/nonexistent\/temporal/],
    ['an unreachable database', { DATABASE_URL: 'postgres://stratus:secret@127.0.0.1:1/nope' }, /database unreachable at postgres:\/\/127\.0\.0\.1:1\/nope.*DATABASE_URL/],
    ['a bad variable', { STRATUS_API_PORT: 'eighty' }, /STRATUS_API_PORT="eighty"/],
    ['an unknown libvirt URI', { STRATUS_LIBVIRT_URI: 'bogus:///nowhere' }, /libvirt.*bogus:\/\/\/nowhere/],
  ])('%s', async (_case, env, expected) => {
    const line = await failure(env);
    expect(line).toMatch(expected);
    expect(line).not.toContain('secret');
  }, 60_000);

  test('the API port in use', async () => {
    const net = await import('node:net');
    const blocker = net.createServer().listen(Number(base.STRATUS_API_PORT), '127.0.0.1');
    try {
      expect(await failure({})).toMatch(/port \d+ \(STRATUS_API_PORT\) is in use/);
    } finally {
      blocker.close();
    }
  }, 60_000);

  test('the Temporal port in use', async () => {
    const net = await import('node:net');
    const blocker = net.createServer().listen(Number(base.TEMPORAL_PORT), '127.0.0.1');
    try {
      expect(await failure({})).toMatch(/port \d+ \(TEMPORAL_PORT\) is in use/);
    } finally {
      blocker.close();
    }
  }, 60_000);

  test('separate processes without shared services say what to set', async () => {
    expect(await failure({}, ['api'])).toMatch(/TEMPORAL_ADDRESS/);
    expect(await failure({}, ['frobnicate'])).toMatch(/unknown command ['"]frobnicate['"]/);
  }, 30_000);
});
