/**
 * Step-by-step progress of an operation workflow, answered by the `progress` query (the API merges it
 * into GET /v1/servers/{id} and GET /v1/operations/{id}), plus the saga's compensation stack.
 * Deterministic: times come from the workflow clock.
 *
 * The saga always finishes: every undo runs, in reverse, whatever happens to the others, in a
 * non-cancellable scope (a cancelled workflow still cleans up). An undo that fails is recorded (in the
 * step's progress and in the ledger of leftovers, with what the reconciler runs to finish the job), and
 * the rollback goes on, so the resource reaches its end state within seconds of the failure.
 */
import { ActivityFailure, ApplicationFailure, CancellationScope, defineQuery, isCancellation, patched, proxyLocalActivities, setHandler, TimeoutFailure, uuid4 } from '@temporalio/workflow';
import type { ComputeControlActivities } from '../activities/compute/control';
import type { LeftoverAction } from '../db/repositories/leftovers';
import { cleanupOnHost, conductor, HOST_SILENCE_SECONDS, type ConductorActivities } from './activity-proxies';
import { carriedArg, type ProgressWrite } from './carried-progress';

export type StepStatus = 'pending' | 'running' | 'done' | 'failed' | 'compensated';

export interface StepProgress {
  name: string;
  status: StepStatus;
  startedAt?: string;
  endedAt?: string;
  /** How many times the workflow ran this step (more than 1 after a reschedule). */
  attempts: number;
  error?: string;
}

export interface Fault {
  step: string;
  code: string;
  message: string;
}

export interface Progress {
  status: 'running' | 'succeeded' | 'failed';
  current: string | null;
  steps: StepProgress[];
  /** Hosts tried, in order (create flow). */
  hosts: string[];
  error: Fault | null;
  /** Undos that failed: what they left behind is in the ledger of leftovers. */
  leftovers: Array<{ step: string; activity: string; host: string | null; error: string }>;
}

export const progressQuery = defineQuery<Progress>('progress');

/** Progress goes into the operation's row (what GET /v1/servers/{id} and /v1/operations/{id} read). */
const progressWriter = proxyLocalActivities<Pick<ComputeControlActivities, 'recordOperationProgress'>>({
  startToCloseTimeout: '10 seconds',
  retry: { initialInterval: '100 ms', maximumInterval: '1 second', maximumAttempts: 3 },
});
/** Histories recorded before progress was written to the database replay without these writes. */
const PROGRESS_ROWS_PATCH = 'progress-rows';
/** Histories recorded before step starts rode on the next conductor step replay with their own writes. */
const PROGRESS_CARRIED_PATCH = 'progress-carried';

export interface TrackerOptions {
  /**
   * Step starts ride on the next `tracker.conductor` call (workflows/carried-progress.ts) instead of
   * a local activity each. Only for a workflow that makes every conductor call through
   * `tracker.conductor`, and ends with one (else the last start would wait for a later write).
   */
  carryProgress?: boolean;
}

/** The failure's type, as a fault code: the ApplicationFailure type, or what kind of failure it was. */
export function faultCode(err: unknown): string {
  let cause: unknown = err;
  while (cause instanceof ActivityFailure && cause.cause) cause = cause.cause;
  if (cause instanceof ApplicationFailure) return cause.type ?? 'Error';
  if (cause instanceof TimeoutFailure) return `Timeout.${cause.timeoutType}`;
  if (isCancellation(cause)) return 'Cancelled';
  if (cause instanceof Error) return cause.name;
  return 'Error';
}

/** A timeout, said as what happened (naming the host when the step ran on one). */
function timeoutMessage(timeoutType: string, host?: string): string {
  const who = host ? `host ${host}` : 'the worker';
  if (timeoutType === 'SCHEDULE_TO_START' || timeoutType === 'HEARTBEAT') return `${who} did not answer for ${HOST_SILENCE_SECONDS} s (${timeoutType})`;
  return `${who} did not finish in time (${timeoutType})`;
}

/** The innermost human message of a (possibly wrapped) failure; `host` is where the step ran. */
export function faultMessage(err: unknown, host?: string): string {
  let cause: unknown = err;
  while (cause instanceof ActivityFailure && cause.cause) cause = cause.cause;
  if (cause instanceof TimeoutFailure) return timeoutMessage(String(cause.timeoutType), host);
  if (isCancellation(cause)) return 'the operation was cancelled';
  return cause instanceof Error ? cause.message : String(cause);
}

/** What an operation's leftovers are filed under. */
export interface LeftoverContext {
  operationId: string;
  resourceType: string;
  resourceId: string;
}

/** Runs a ledger action: a host activity (bounded cleanup profile) or a conductor activity. */
export function performAction(action: LeftoverAction): Promise<unknown> {
  type Callable = Record<string, (...args: unknown[]) => Promise<unknown>>;
  const acts = (action.host ? cleanupOnHost(action.host) : conductor) as unknown as Callable;
  const fn = acts[action.activity];
  if (!fn) return Promise.reject(ApplicationFailure.nonRetryable(`no activity ${action.activity}`, 'UnknownActivity'));
  return fn(...action.args);
}

/** Runs `fn` so that cancelling the workflow cannot interrupt it (compensation, final writes). */
export function finishing<T>(fn: () => Promise<T>): Promise<T> {
  return CancellationScope.nonCancellable(fn);
}

interface Compensation {
  step: string;
  undo: () => Promise<unknown>;
  /** What the reconciler runs when `undo` fails (none: the failure is only reported). */
  action?: LeftoverAction;
}

export class OperationTracker {
  readonly progress: Progress;
  private readonly compensations: Compensation[] = [];
  /** Hosts that stopped answering: their undos go straight to the ledger (nobody waits on a dead host). */
  private readonly silentHosts = new Set<string>();
  private seq = 0;
  private readonly lastStep: string | undefined;
  /** Carry mode (TrackerOptions.carryProgress, on runs that have the patch). */
  private readonly carry: boolean;
  /** Progress saved since the last conductor call, which the next one carries (carry mode). */
  private pending: ProgressWrite | undefined;
  private carrier: ConductorActivities | undefined;

  /** `context`: the operation (its row gets the progress) and resource (for the ledger). */
  constructor(
    stepNames: readonly string[],
    private readonly context?: LeftoverContext,
    options: TrackerOptions = {},
  ) {
    this.lastStep = stepNames[stepNames.length - 1];
    this.carry = options.carryProgress === true && context !== undefined && patched(PROGRESS_CARRIED_PATCH);
    this.progress = {
      status: 'running',
      current: null,
      steps: stepNames.map((name) => ({ name, status: 'pending', attempts: 0 })),
      hosts: [],
      error: null,
      leftovers: [],
    };
    setHandler(progressQuery, () => this.progress);
  }

  private stepOf(name: string): StepProgress {
    let step = this.progress.steps.find((s) => s.name === name);
    if (!step) {
      step = { name, status: 'pending', attempts: 0 };
      this.progress.steps.push(step);
    }
    return step;
  }

  /** The progress as it is now, as a write into the operation's row (null: no operation, or a run from before rows). */
  private snapshot(): ProgressWrite | null {
    const operationId = this.context?.operationId;
    if (!operationId || !patched(PROGRESS_ROWS_PATCH)) return null;
    this.seq += 1;
    return { operationId, progress: JSON.parse(JSON.stringify(this.progress)) as Progress, seq: this.seq };
  }

  /**
   * Writes the progress (as it is now) into the operation's row, as a local activity of its own. Best
   * effort: a failed write never fails the operation. Awaiting the result is optional: a step's start
   * is written while the step runs.
   */
  private save(): Promise<void> {
    const write = this.snapshot();
    this.pending = undefined;
    if (!write) return Promise.resolve();
    // Scheduled here and now, so the order of the workflow's commands never depends on when an earlier
    // write completed (a write chained on the one before it made replays nondeterministic); writes
    // that land out of order are harmless: the row keeps the highest seq.
    return progressWriter.recordOperationProgress(write).catch(() => undefined);
  }

  /** Progress to write while the step runs: carried by the next conductor call in carry mode, else written now. */
  private saveSoon(): void {
    if (!this.carry) {
      void this.save();
      return;
    }
    this.pending = this.snapshot() ?? undefined;
  }

  /**
   * The conductor's activities; in carry mode each call carries the progress saved since the last
   * one (workflows/carried-progress.ts). The same activities, options and commands either way.
   */
  get conductor(): ConductorActivities {
    if (!this.carry) return conductor;
    this.carrier ??= new Proxy(conductor, {
      get: (target, name) => {
        const call = (target as unknown as Record<string | symbol, (...args: unknown[]) => Promise<unknown>>)[name]!;
        return (...args: unknown[]) => {
          const write = this.pending;
          this.pending = undefined;
          return write ? call(...args, carriedArg(write)) : call(...args);
        };
      },
    });
    return this.carrier;
  }

  /**
   * Runs one step, recording start/end/attempts/error. A failure is rethrown with the step attached
   * (and the host it ran on, which a timeout's message names).
   */
  async run<T>(name: string, work: () => Promise<T>, host?: string): Promise<T> {
    const step = this.stepOf(name);
    step.status = 'running';
    step.attempts += 1;
    step.startedAt = new Date().toISOString();
    delete step.endedAt;
    delete step.error;
    this.progress.current = name;
    this.saveSoon(); // written while the step runs; the next step's start records this one's end
    try {
      const result = await work();
      step.status = 'done';
      step.endedAt = new Date().toISOString();
      if (name === this.lastStep) {
        // In carry mode the workflow's closing conductor call carries it.
        if (this.carry) this.saveSoon();
        else await this.save();
      }
      return result;
    } catch (err) {
      step.status = 'failed';
      step.endedAt = new Date().toISOString();
      step.error = faultMessage(err, host);
      await this.save();
      throw new StepFailed(name, err, host);
    }
  }

  /**
   * Registers an undo for `step`, to run (in reverse order) if the operation fails later. With
   * `action`, a failed undo leaves that action in the ledger for the reconciler.
   */
  onFailureUndo(step: string, undo: () => Promise<unknown>, action?: LeftoverAction): void {
    this.compensations.push({ step, undo, ...(action ? { action } : {}) });
  }

  /** Registers an undo that is one activity call: what it runs is also what the ledger retries. */
  undoWith(step: string, action: LeftoverAction): void {
    this.onFailureUndo(step, () => performAction(action), action);
  }

  /** `host` did not answer (scheduleToStart or heartbeat timeout): do not wait on it again in this run. */
  hostSilent(host: string): void {
    this.silentHosts.add(host);
  }

  /** The undo's host is known to be silent: what it would run goes to the ledger at once. */
  private skipsSilentHost(action: LeftoverAction | undefined): boolean {
    return action?.host != null && this.silentHosts.has(action.host);
  }

  /**
   * Runs and forgets the undos registered since `mark` (for a reschedule: undo only the host's part).
   * Every undo runs, even after another failed; failures go to the ledger. Never throws.
   */
  async compensateSince(mark: number): Promise<void> {
    const undo = this.compensations.splice(mark).reverse();
    await finishing(async () => {
      for (const c of undo) {
        const step = this.stepOf(c.step);
        try {
          if (this.skipsSilentHost(c.action)) throw new HostSilent(c.action!.host!);
          await c.undo();
          if (step.status === 'done' || step.status === 'failed') step.status = 'compensated';
        } catch (err) {
          step.error = `undo failed: ${faultMessage(err, c.action?.host ?? undefined)}`;
          await this.leave(c.step, c.action, err);
        }
      }
      if (undo.length > 0 || this.pending) await this.save();
    });
  }

  /**
   * Runs one cleanup action now (not an undo of this run's own step: e.g. the delete flow's
   * teardown). A failure goes to the ledger and returns false; never throws.
   */
  async attempt(step: string, action: LeftoverAction): Promise<boolean> {
    try {
      if (this.skipsSilentHost(action)) throw new HostSilent(action.host!);
      await finishing(() => performAction(action));
      return true;
    } catch (err) {
      await this.leave(step, action, err);
      return false;
    }
  }

  /** Records what a failed undo left behind: in progress, and (with an action) in the ledger. */
  private async leave(step: string, action: LeftoverAction | undefined, err: unknown): Promise<void> {
    const error = faultMessage(err, action?.host ?? undefined);
    this.progress.leftovers.push({ step, activity: action?.activity ?? 'undo', host: action?.host ?? null, error });
    if (!action || !this.context) return;
    const ctx = this.context;
    await finishing(() =>
      conductor.recordLeftover({ id: uuid4(), operationId: ctx.operationId, resourceType: ctx.resourceType, resourceId: ctx.resourceId, action, error: `${step}: ${error}` }),
    ).catch(() => undefined); // the database is gone for minutes: the fault and the progress still say it
  }

  get mark(): number {
    return this.compensations.length;
  }

  async compensateAll(): Promise<void> {
    await this.compensateSince(0);
  }

  succeed(): void {
    this.progress.status = 'succeeded';
    this.progress.current = null;
  }

  fail(fault: Fault): void {
    this.progress.status = 'failed';
    this.progress.error = fault;
    this.progress.current = null;
  }

  /** Records the operation as failed by `err` and returns its fault (step, code, message). */
  failed(err: unknown): Fault {
    const fault = toFault(err, this);
    this.fail(fault);
    return fault;
  }
}

/** An undo not tried: its host stopped answering earlier in this operation. */
class HostSilent extends Error {
  constructor(host: string) {
    super(`host ${host} did not answer earlier in this operation; left for the reconciler`);
    this.name = 'HostSilent';
  }
}

/** True when `err` (a step failure) says its host did not answer at all (not picked up, or went silent). */
export function hostDidNotAnswer(err: unknown): boolean {
  let cause: unknown = err instanceof StepFailed ? err.failure : err;
  while (cause instanceof ActivityFailure && cause.cause) cause = cause.cause;
  return cause instanceof TimeoutFailure && ((cause.timeoutType === 'SCHEDULE_TO_START' || cause.timeoutType === 'HEARTBEAT'));
}

/** A step failed: carries the step name (and the host it ran on) to the saga's catch. */
export class StepFailed extends Error {
  constructor(
    readonly step: string,
    readonly failure: unknown,
    readonly host?: string,
  ) {
    super(`${step}: ${faultMessage(failure, host)}`);
    this.name = 'StepFailed';
  }

  get fault(): Fault {
    return { step: this.step, code: faultCode(this.failure), message: faultMessage(this.failure, this.host) };
  }
}

/** The fault of a failed operation: the failed step when a step failed, else the step in progress. */
export function toFault(err: unknown, tracker: OperationTracker): Fault {
  if (err instanceof StepFailed) return err.fault;
  return { step: tracker.progress.current ?? 'unknown', code: faultCode(err), message: faultMessage(err) };
}

/** What an operation workflow throws at the end, after cleaning up: Temporal UI shows the run as Failed. */
export function operationFailure(fault: Fault): ApplicationFailure {
  return ApplicationFailure.nonRetryable(`${fault.step} failed: ${fault.message}`, fault.code, fault);
}

/**
 * A server operation that failed for good: the server goes to ERROR with the fault, the operation is
 * finished as failed, and the returned failure is what the workflow throws (Temporal UI shows it).
 */
export async function serverFailed(serverId: string, operationId: string, fault: Fault): Promise<ApplicationFailure> {
  await finishing(() =>
    conductor.finishServerOperation({ server: { serverId, status: 'ERROR', taskState: null, fault }, operationId, status: 'failed', error: fault }),
  );
  return operationFailure(fault);
}
