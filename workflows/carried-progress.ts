/**
 * Progress that rides on the next conductor step instead of a local activity of its own.
 *
 * A create writes its step progress into the operation's row at every step start (so GET
 * /v1/servers/{id} shows the step in progress). As a local activity of its own, each write cost a
 * round trip between the workflow and the worker (a dispatch, an execution, a workflow activation):
 * 8 of a create's 17 local activities. Instead, the workflow appends the progress as one extra,
 * last argument of the conductor activity it calls next (which starts at the same moment), and the
 * conductor's activity interceptor (workers/progress-carrier.ts) strips it and writes it beside
 * that activity. The activity itself never sees it.
 *
 * Shared by workflows and the worker: no Node builtins here.
 */

/** What the workflow writes: the operation, its progress as it is now, and a sequence (the row keeps the highest). */
export interface ProgressWrite {
  operationId: string;
  progress: unknown;
  seq: number;
}

const KEY = '__stratusCarriedProgress';

/** The extra argument that carries `write`. */
export function carriedArg(write: ProgressWrite): Record<string, ProgressWrite> {
  return { [KEY]: write };
}

/** Splits an activity's arguments into the activity's own and the progress write they carry, if any. */
export function takeCarried(args: readonly unknown[]): { args: unknown[]; write: ProgressWrite | null } {
  const last = args[args.length - 1];
  if (args.length > 0 && typeof last === 'object' && last !== null && KEY in last) {
    return { args: args.slice(0, -1), write: (last as Record<string, ProgressWrite>)[KEY]! };
  }
  return { args: [...args], write: null };
}
