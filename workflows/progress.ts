/**
 * Step-by-step progress of an operation workflow, plus the saga's compensation stack. Written into the
 * operation's row at each step start, step end and compensation (a local activity, ~1 ms), which is
 * what GET /v1/servers/{id} and GET /v1/operations/{id} read; also answered by the `progress` query.
 * Deterministic: times come from the workflow clock.
 */
import { ActivityFailure, ApplicationFailure, defineQuery, patched, proxyLocalActivities, setHandler, TimeoutFailure } from '@temporalio/workflow';
import type { ComputeControlActivities } from '../activities/compute/control';

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
}

export const progressQuery = defineQuery<Progress>('progress');

const progressWriter = proxyLocalActivities<Pick<ComputeControlActivities, 'recordOperationProgress'>>({
  startToCloseTimeout: '10 seconds',
  retry: { initialInterval: '100 ms', maximumInterval: '1 second', maximumAttempts: 3 },
});
/** Histories recorded before progress was written to the database replay without these writes. */
const PROGRESS_ROWS_PATCH = 'progress-rows';

/** The failure's type, as a fault code: the ApplicationFailure type, or what kind of failure it was. */
export function faultCode(err: unknown): string {
  let cause: unknown = err;
  while (cause instanceof ActivityFailure && cause.cause) cause = cause.cause;
  if (cause instanceof ApplicationFailure) return cause.type ?? 'Error';
  if (cause instanceof TimeoutFailure) return `Timeout.${cause.timeoutType}`;
  if (cause instanceof Error) return cause.name;
  return 'Error';
}

/** The innermost human message of a (possibly wrapped) failure. */
export function faultMessage(err: unknown): string {
  let cause: unknown = err;
  while (cause instanceof ActivityFailure && cause.cause) cause = cause.cause;
  if (cause instanceof TimeoutFailure) return `no answer in time (${cause.timeoutType})`;
  return cause instanceof Error ? cause.message : String(cause);
}

export class OperationTracker {
  readonly progress: Progress;
  private readonly compensations: Array<{ step: string; undo: () => Promise<unknown> }> = [];
  private seq = 0;
  /** The progress writes in flight, chained so they land in order. */
  private writes: Promise<void> = Promise.resolve();
  private readonly lastStep: string | undefined;

  /** `operationId`: the operation row the progress is written into (none: only the query answers it). */
  constructor(
    stepNames: readonly string[],
    private readonly operationId?: string,
  ) {
    this.lastStep = stepNames[stepNames.length - 1];
    this.progress = {
      status: 'running',
      current: null,
      steps: stepNames.map((name) => ({ name, status: 'pending', attempts: 0 })),
      hosts: [],
      error: null,
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

  /**
   * Writes the progress (as it is now) into the operation's row, after the writes before it. Best
   * effort: a failed write never fails the operation. Awaiting the result is optional: a step's start
   * is written while the step runs.
   */
  private save(): Promise<void> {
    if (!this.operationId || !patched(PROGRESS_ROWS_PATCH)) return Promise.resolve();
    this.seq += 1;
    const request = { operationId: this.operationId, progress: JSON.parse(JSON.stringify(this.progress)) as Progress, seq: this.seq };
    this.writes = this.writes.then(() => progressWriter.recordOperationProgress(request).catch(() => undefined));
    return this.writes;
  }

  /** Runs one step, recording start/end/attempts/error. A failure is rethrown with the step attached. */
  async run<T>(name: string, work: () => Promise<T>): Promise<T> {
    const step = this.stepOf(name);
    step.status = 'running';
    step.attempts += 1;
    step.startedAt = new Date().toISOString();
    delete step.endedAt;
    delete step.error;
    this.progress.current = name;
    void this.save(); // written while the step runs; the next step's start records this one's end
    try {
      const result = await work();
      step.status = 'done';
      step.endedAt = new Date().toISOString();
      if (name === this.lastStep) await this.save();
      return result;
    } catch (err) {
      step.status = 'failed';
      step.endedAt = new Date().toISOString();
      step.error = faultMessage(err);
      await this.save();
      throw new StepFailed(name, err);
    }
  }

  /** Registers an undo for `step`, to run (in reverse order) if the operation fails later. */
  onFailureUndo(step: string, undo: () => Promise<unknown>): void {
    this.compensations.push({ step, undo });
  }

  /** Runs and forgets the undos registered since `mark` (for a reschedule: undo only the host's part). */
  async compensateSince(mark: number): Promise<void> {
    const undo = this.compensations.splice(mark).reverse();
    for (const c of undo) {
      await c.undo();
      const step = this.stepOf(c.step);
      if (step.status === 'done' || step.status === 'failed') step.status = 'compensated';
    }
    if (undo.length > 0) await this.save();
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

/** A step failed: carries the step name to the saga's catch. */
export class StepFailed extends Error {
  constructor(
    readonly step: string,
    readonly failure: unknown,
  ) {
    super(`${step}: ${faultMessage(failure)}`);
    this.name = 'StepFailed';
  }

  get fault(): Fault {
    return { step: this.step, code: faultCode(this.failure), message: faultMessage(this.failure) };
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
