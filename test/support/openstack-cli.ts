/**
 * The real OpenStack clients against a test cloud: python-openstackclient 10.5.0 and openstacksdk
 * 4.22.0 from .venv-osc (scripts/setup-openstack-client.sh, run here when the venv is missing, so
 * `npm test` works on a fresh checkout), a throwaway clouds.yaml, and each command run as its own
 * process with a timeout. Commands run asynchronously: the cloud answers them from this very process.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export const REPO = path.resolve(__dirname, '../..');
export const VENV = path.join(REPO, '.venv-osc');
export const OPENSTACK = path.join(VENV, 'bin', 'openstack');
export const PYTHON = path.join(VENV, 'bin', 'python');

export interface Run {
  code: number;
  stdout: string;
  stderr: string;
  /** The command line, for messages. */
  cmd: string;
}

function run(file: string, args: string[], options: { env?: NodeJS.ProcessEnv; timeoutSeconds: number; cwd?: string }): Promise<Run> {
  // coreutils `timeout` (as CI would run it): the process and its children get TERM, then KILL.
  const argv = ['--kill-after=5', String(options.timeoutSeconds), file, ...args];
  const cmd = [file, ...args].map((a) => (/[\s'"]/.test(a) ? JSON.stringify(a) : a)).join(' ');
  return new Promise((resolve) => {
    execFile('timeout', argv, { env: options.env, cwd: options.cwd ?? REPO, maxBuffer: 32 * 1024 * 1024 }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? ((err as { code: number }).code) : 1) : 0;
      resolve({ code, stdout: String(stdout), stderr: String(stderr), cmd });
    });
  });
}

/** Installs the pinned clients when .venv-osc is missing or holds other versions (0.1 s when present). */
export async function ensureOpenStackClient(): Promise<void> {
  const res = await run(path.join(REPO, 'scripts', 'setup-openstack-client.sh'), [], { env: process.env, timeoutSeconds: 600 });
  if (res.code !== 0) throw new Error(`scripts/setup-openstack-client.sh failed (exit ${res.code}):\n${res.stdout}\n${res.stderr}`);
}

export interface OpenStackClient {
  /** The temp dir that is HOME and holds clouds.yaml. */
  home: string;
  env: NodeJS.ProcessEnv;
  /** `openstack <args>`; never throws. */
  run(args: string[], timeoutSeconds?: number): Promise<Run>;
  /** `openstack <args> -f json`, parsed; throws with the command's stderr unless it exits 0 with JSON. */
  json(args: string[], timeoutSeconds?: number): Promise<any>;
  /** `openstack <args>`, which must exit 0; its stdout. */
  ok(args: string[], timeoutSeconds?: number): Promise<string>;
  /** A Python script of the same venv with the same clouds.yaml. */
  python(script: string, args: string[], extraEnv?: Record<string, string>, timeoutSeconds?: number): Promise<Run>;
  cleanup(): void;
}

/** What a failed command printed, for a test failure that says what happened. */
export function describeRun(r: Run): string {
  return `\`${r.cmd}\` exited ${r.code}${r.code === 124 ? ' (timed out)' : ''}\n--- stdout ---\n${r.stdout.slice(-4000)}\n--- stderr ---\n${r.stderr.slice(-4000)}`;
}

/**
 * A client for the cloud at `publicUrl` (its catalog's base: STRATUS_PUBLIC_URL) as `username` in
 * `project`: a clouds.yaml in a fresh HOME (no user config leaks in), OS_CLOUD=stratus.
 */
export function openstackClient(publicUrl: string, auth: { username: string; password: string; project: string }): OpenStackClient {
  const home = fs.mkdtempSync(path.join(os.tmpdir(), 'stratus-osc-'));
  const cloudsYaml = path.join(home, 'clouds.yaml');
  fs.writeFileSync(
    cloudsYaml,
    [
      'clouds:',
      '  stratus:',
      '    auth:',
      `      auth_url: ${JSON.stringify(`${publicUrl}/identity`)}`,
      `      username: ${JSON.stringify(auth.username)}`,
      `      password: ${JSON.stringify(auth.password)}`,
      `      project_name: ${JSON.stringify(auth.project)}`,
      '      user_domain_name: Default',
      '      project_domain_name: Default',
      '    region_name: RegionOne',
      '    interface: public',
      '    identity_api_version: 3',
      '',
    ].join('\n'),
  );
  const env: NodeJS.ProcessEnv = {
    PATH: `${path.join(VENV, 'bin')}:${process.env.PATH ?? '/usr/bin:/bin'}`,
    HOME: home,
    OS_CLIENT_CONFIG_FILE: cloudsYaml,
    OS_CLOUD: 'stratus',
    LANG: 'C.UTF-8',
    PYTHONUNBUFFERED: '1',
    // No proxy between the client and 127.0.0.1.
    NO_PROXY: '*',
  };
  const client: OpenStackClient = {
    home,
    env,
    run: (args, timeoutSeconds = 60) => run(OPENSTACK, args, { env, timeoutSeconds }),
    async json(args, timeoutSeconds = 60) {
      const r = await client.run([...args, '-f', 'json'], timeoutSeconds);
      if (r.code !== 0) throw new Error(describeRun(r));
      try {
        return JSON.parse(r.stdout);
      } catch {
        throw new Error(`not JSON: ${describeRun(r)}`);
      }
    },
    async ok(args, timeoutSeconds = 60) {
      const r = await client.run(args, timeoutSeconds);
      if (r.code !== 0) throw new Error(describeRun(r));
      return r.stdout;
    },
    python: (script, args, extraEnv = {}, timeoutSeconds = 300) => run(PYTHON, [script, ...args], { env: { ...env, ...extraEnv }, timeoutSeconds }),
    cleanup: () => fs.rmSync(home, { recursive: true, force: true }),
  };
  return client;
}
