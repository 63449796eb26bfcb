/**
 * `stratus` processes as a user runs them, for the benches that measure one: bin/stratus (the
 * compiled bundle while it is current, the node flags bin/node-flags gives the command), in a child
 * process whose CPU is read from /proc.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

const ROOT = path.resolve(__dirname, '..');

export interface StratusProcess {
  child: ChildProcess;
  /** SIGTERM, and resolves once it exited (SIGKILL after 30 s). */
  stop(): Promise<void>;
}

/**
 * Starts `bin/stratus <role>` with `env` over this process's; its stderr is this process's, its stdout
 * is dropped, or appended to the file BENCH_STRATUS_STDOUT names (e.g. with --trace-gc in STRATUS_NODE_FLAGS).
 */
export function spawnStratus(role: 'up' | 'api' | 'conductor' | 'agent', env: NodeJS.ProcessEnv): StratusProcess {
  const stdout = process.env.BENCH_STRATUS_STDOUT ? fs.openSync(process.env.BENCH_STRATUS_STDOUT, 'a') : 'ignore';
  const child = spawn(path.join(ROOT, 'bin/stratus'), [role], { env: { ...process.env, ...env }, stdio: ['ignore', stdout, 'inherit'] });
  if (typeof stdout === 'number') fs.closeSync(stdout);
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.on('exit', (code, signal) => {
    if (code !== 0 && signal !== 'SIGTERM') console.error(`stratus ${role} exited: ${code ?? signal}`);
  });
  return {
    child,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
      await exited;
      clearTimeout(timer);
    },
  };
}

/** Polls `probe` every 500 ms until it gives a value (a throw counts as not yet). */
export async function waitFor<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs: number): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const found = await probe().catch(() => undefined);
    if (found !== undefined) return found;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 500));
  }
}

/** CPU seconds (user + system) a process has used so far. */
export function cpuSecondsOf(pid: number): number {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100; // USER_HZ
}

/** The node flags bin/stratus gives `role`: STRATUS_NODE_FLAGS when set, else its line in bin/node-flags. */
export function nodeFlagsOf(role: 'up' | 'api' | 'conductor' | 'agent'): string {
  const line = fs.readFileSync(path.join(ROOT, 'bin/node-flags'), 'utf8').match(new RegExp(`^${role}:(.*)$`, 'm'))?.[1];
  return (process.env.STRATUS_NODE_FLAGS ?? line ?? '').trim();
}
