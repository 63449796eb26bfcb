/**
 * The `stratus` CLI against a real cloud (in-process test cloud: Temporal dev server, PGlite, libvirt's
 * test driver), run as a user runs it: the real executable in a child process, a config dir of its own.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { FaultPlan } from '../../activities/fault-injection';
import { ADMIN_PASSWORD, startTestCloud, type TestCloud } from '../support/cloud';

const BIN = path.join(__dirname, '..', '..', 'bin', 'stratus');
let t: TestCloud;
const faults = new FaultPlan();
let home: string;

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function stratus(args: string[], env: Record<string, string> = {}): Promise<Run> {
  return new Promise((resolve) => {
    execFile(
      BIN,
      args,
      { env: { PATH: process.env.PATH, HOME: home, XDG_CONFIG_HOME: path.join(home, '.config'), ...env }, timeout: 90_000 },
      (err, stdout, stderr) => resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
  });
}

/** Runs a --json command that must succeed; returns its parsed answer. */
async function json(args: string[]): Promise<any> {
  const r = await stratus([...args, '--json']);
  if (r.code !== 0) throw new Error(`stratus ${args.join(' ')} exited ${r.code}: ${r.stderr}`);
  return JSON.parse(r.stdout);
}

beforeAll(async () => {
  t = await startTestCloud({ faults, env: { STRATUS_HOST_VCPUS: '256', STRATUS_HOST_RAM_MB: '65536', STRATUS_QUOTA_SERVERS: '-1', STRATUS_QUOTA_PORTS: '-1' } });
  home = fs.mkdtempSync(path.join(os.tmpdir(), 'stratus-cli-'));
}, 120_000);

afterAll(async () => {
  await t?.stop();
  if (home) fs.rmSync(home, { recursive: true, force: true });
});

test('login keeps the token in a 0600 file; no login is one readable line', async () => {
  const none = await stratus(['server', 'list']);
  expect(none.code).toBe(1);
  expect(none.stderr.trim().split('\n')).toHaveLength(1);
  expect(none.stderr).toMatch(/^stratus: not logged in/);

  const bad = await stratus(['login', '--url', t.baseUrl, '--username', 'admin', '--project', 'admin'], { STRATUS_PASSWORD: 'wrong' });
  expect(bad.code).toBe(1);
  expect(bad.stderr).toMatch(/^stratus: 401 /);

  const ok = await stratus(['login', '--url', t.baseUrl, '--username', 'admin', '--project', 'admin', '--json'], { STRATUS_PASSWORD: ADMIN_PASSWORD });
  expect(ok.code).toBe(0);
  const saved = JSON.parse(ok.stdout);
  expect(saved).toMatchObject({ url: t.baseUrl, username: 'admin', project: 'admin' });
  expect(fs.statSync(saved.config).mode & 0o777).toBe(0o600);
  expect(JSON.parse(fs.readFileSync(saved.config, 'utf8')).token).toEqual(expect.any(String));
});

test('STRATUS_URL and STRATUS_TOKEN override the saved login', async () => {
  const r = await stratus(['flavor', 'list', '--json'], { STRATUS_TOKEN: 'not-a-token' });
  expect(r.code).toBe(1);
  expect(r.stderr).toMatch(/401/);
  const token = await t.login();
  const env = await stratus(['flavor', 'list', '--json'], { STRATUS_URL: t.baseUrl, STRATUS_TOKEN: token });
  expect(env.code).toBe(0);
  expect(JSON.parse(env.stdout).map((f: { name: string }) => f.name)).toContain('m1.tiny');
});

test('image, network, subnet, server with --wait, actions, console, volume, delete', async () => {
  const suffix = randomBytes(3).toString('hex');
  const file = path.join(home, 'disk.raw');
  fs.writeFileSync(file, randomBytes(256 * 1024));
  const image = await json(['image', 'upload', `img-${suffix}`, '--file', file]);
  expect(image).toMatchObject({ name: `img-${suffix}`, status: 'active', size_bytes: 256 * 1024 });

  const net = await json(['network', 'create', `net-${suffix}`]);
  const subnet = await json(['subnet', 'create', '--network', `net-${suffix}`, '--cidr', '10.77.0.0/24']);
  expect(subnet).toMatchObject({ network_id: net.id, cidr: '10.77.0.0/24' });

  // Names resolve to ids; --wait follows the create to ACTIVE and prints the server.
  const server = await json(['server', 'create', `vm-${suffix}`, '--flavor', 'm1.tiny', '--image', `img-${suffix}`, '--network', `net-${suffix}`, '--volume-size', '1', '--wait']);
  expect(server).toMatchObject({ name: `vm-${suffix}`, status: 'ACTIVE', task_state: null });
  expect(server.addresses[0].ip).toMatch(/^10\.77\.0\./);
  expect(server.volumes_attached).toHaveLength(1);

  const listed = await json(['server', 'list']);
  expect(listed.map((s: { id: string }) => s.id)).toContain(server.id);
  const table = await stratus(['server', 'list']);
  expect(table.stdout).toContain(`vm-${suffix}`);
  expect(table.stdout).toContain('ACTIVE');

  expect((await json(['server', 'stop', `vm-${suffix}`, '--wait'])).status).toBe('SHUTOFF');
  expect((await json(['server', 'start', server.id, '--wait'])).status).toBe('ACTIVE');
  expect((await json(['server', 'reboot', server.id, '--wait'])).status).toBe('ACTIVE');
  expect(await json(['server', 'console', server.id])).toEqual({ output: expect.any(String) });

  const volume = await json(['volume', 'create', `vol-${suffix}`, '--size', '1', '--wait']);
  expect(volume).toMatchObject({ name: `vol-${suffix}`, status: 'available' });
  expect((await json(['volume', 'list'])).map((v: { id: string }) => v.id)).toContain(volume.id);
  expect(await json(['volume', 'delete', `vol-${suffix}`, '--wait'])).toEqual({ deleted: volume.id });

  const del = await stratus(['server', 'delete', `vm-${suffix}`, '--wait']);
  expect(del.code).toBe(0);
  expect(del.stdout).toContain('deleted');
  const gone = await stratus(['server', 'show', server.id]);
  expect(gone.code).toBe(1);
  expect(gone.stderr).toMatch(/^stratus: 404 /);
}, 180_000);

test('batch create --wait, retry of the failed members, delete', async () => {
  const suffix = randomBytes(3).toString('hex');
  const file = path.join(home, 'batch.raw');
  fs.writeFileSync(file, randomBytes(64 * 1024));
  await json(['image', 'upload', `bimg-${suffix}`, '--file', file]);
  await json(['network', 'create', `bnet-${suffix}`]);
  await json(['subnet', 'create', '--network', `bnet-${suffix}`, '--cidr', '10.78.0.0/24']);

  faults.failAt('allocate_port', 'fatal', 2);
  const args = ['batch', 'create', `fleet-${suffix}`, '--count', '5', '--flavor', 'm1.tiny', '--image', `bimg-${suffix}`, '--network', `bnet-${suffix}`, '--wait'];
  const failed = await stratus([...args, '--json']);
  faults.clear();
  expect(failed.code).toBe(1); // two members failed: the batch did not reach min_count (5)
  expect(failed.stderr).toMatch(/^stratus: batch fleet-\w+ failed: 3 of 5 members ACTIVE/);
  const batch = JSON.parse(failed.stdout);
  expect(batch.counts).toMatchObject({ active: 3, error: 2 });

  const table = await stratus(['batch', 'show', batch.id]);
  expect(table.code).toBe(0);
  expect(table.stdout).toContain('Failed member');
  expect(table.stdout).toContain('allocate_port');

  const retried = await json(['batch', 'retry', batch.id, '--wait']);
  expect(retried).toMatchObject({ status: 'succeeded', counts: { active: 5, error: 0 } });
  const members = await json(['server', 'list']);
  expect(members.filter((s: { batch_id: string }) => s.batch_id === batch.id)).toHaveLength(5);

  // What the batch used, as the client shows it (admins may ask for every project).
  const usage = await json(['usage', '--project', 'all', '--from', new Date(Date.now() - 3600_000).toISOString()]);
  expect(usage.servers.filter((s: { name: string }) => s.name.startsWith(`fleet-${suffix}`)).length).toBeGreaterThanOrEqual(3);
  expect(Number(usage.total.vcpu_hours)).toBeGreaterThan(0);
  const cost = await json(['usage', 'cost', '--project', 'all']);
  expect(cost).toMatchObject({ lines: expect.any(Array), totals: expect.any(Array) });
  const bad = await stratus(['usage', '--from', 'yesterday-ish']);
  expect(bad.stderr.trim()).toBe('stratus: --from: expected a date or time such as 2026-12-01 or 2026-12-01T10:00:00Z, got "yesterday-ish"');

  const deleted = await json(['batch', 'delete', batch.id, '--wait']);
  expect(deleted).toMatchObject({ status: 'deleted', counts: { active: 0, deleted: 5 } });
}, 180_000);

test('bad input is one readable line naming the problem, and creates nothing', async () => {
  const before = await json(['server', 'list']);
  const r = await stratus(['server', 'create', 'x', '--flavor', 'no-such-flavor', '--image', 'whatever']);
  expect(r.code).toBe(1);
  expect(r.stderr.trim()).toBe('stratus: no flavor named "no-such-flavor"');
  const size = await stratus(['volume', 'create', 'v', '--size', 'ten']);
  expect(size.stderr.trim()).toBe('stratus: --size: expected a positive whole number, got "ten"');
  const field = await stratus(['subnet', 'create', '--network', (await json(['network', 'list']))[0].id, '--cidr', 'nonsense']);
  expect(field.code).toBe(1);
  expect(field.stderr).toMatch(/^stratus: 400 .*body\.cidr/);
  expect(await json(['server', 'list'])).toHaveLength(before.length);
});

test('shell completion is generated from the commands', async () => {
  const r = await stratus(['completion', 'bash']);
  expect(r.code).toBe(0);
  expect(r.stdout).toContain('complete -o default -F _stratus_complete stratus');
  expect(r.stdout).toMatch(/"server"\) words="create list show delete start stop reboot console/);
  expect(r.stdout).toMatch(/"server create"\) words="--flavor --image --network/);
  expect(r.stdout).toMatch(/""\) words="login logout server batch image network subnet volume flavor usage completion up api conductor agent --json --url/);
});
