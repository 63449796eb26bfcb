/**
 * --wait: follows an operation until it ends, showing the live step (a line rewritten in place on a
 * terminal; one line per change otherwise). A failed operation is an error naming its step.
 */
import { CliError, type ApiClient } from './api-client';

export interface Operation {
  id: string;
  kind: string;
  status: 'running' | 'succeeded' | 'failed';
  resource_id: string;
  error: { step: string; code: string; message: string } | null;
  progress: { current: string | null; hosts: string[]; steps: Array<{ name: string; status: string; attempts: number }> } | null;
  links: { self: string; temporal_ui: string };
}

export interface WaitOptions {
  intervalMs?: number;
  timeoutMs?: number;
  /** Where the live step goes (stderr, so stdout stays clean for --json). */
  stream?: NodeJS.WriteStream;
  quiet?: boolean;
}

export function describeStep(op: Operation): string {
  const p = op.progress;
  if (!p) return op.status;
  const done = p.steps.filter((s) => s.status === 'done').length;
  const current = p.current ?? (op.status === 'running' ? 'starting' : op.status);
  const attempt = p.steps.find((s) => s.name === p.current)?.attempts ?? 1;
  const host = p.hosts.length > 0 ? ` on ${p.hosts[p.hosts.length - 1]}` : '';
  return `${op.kind}: ${current}${attempt > 1 ? ` (attempt ${attempt})` : ''}${host} [${done}/${p.steps.length} steps]`;
}

export async function waitForOperation(api: ApiClient, operationId: string, options: WaitOptions = {}): Promise<Operation> {
  const { intervalMs = 250, timeoutMs = 15 * 60_000, stream = process.stderr, quiet = false } = options;
  const tty = Boolean(stream.isTTY);
  const deadline = Date.now() + timeoutMs;
  let last = '';
  for (;;) {
    const op = await api.get<Operation>(`/v1/operations/${operationId}`);
    const line = describeStep(op);
    if (!quiet && line !== last) {
      if (tty) stream.write(`\r\x1b[2K${line}`);
      else stream.write(`${line}\n`);
      last = line;
    }
    if (op.status !== 'running') {
      if (!quiet && tty) stream.write('\n');
      if (op.status === 'failed') {
        const f = op.error;
        throw new CliError(f ? `${op.kind} failed at step ${f.step} (${f.code}): ${f.message}` : `${op.kind} failed`);
      }
      return op;
    }
    if (Date.now() > deadline) throw new CliError(`${op.kind} still running after ${Math.round(timeoutMs / 1000)} s; follow it at ${op.links.temporal_ui}`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}
