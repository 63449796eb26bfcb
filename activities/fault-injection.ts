/**
 * How host-side activities fail (nova/virt/fake.py style, for Temporal):
 *
 * - `toActivityFailure(err)` turns what the hypervisor threw into what Temporal should see: an error
 *   that will not get better by retrying (libvirt refused the configuration, the driver does not
 *   support it, the spec is invalid) becomes `ApplicationFailure.nonRetryable(msg, 'HypervisorRejected')`;
 *   anything else stays a plain Error, which Temporal retries.
 * - `FaultPlan` (tests only; production passes none) arms named points to fail, e.g.
 *   `plan.failAt('hypervisor.startDomain', 'fatal')`. Points are checked inside the activities (the
 *   hypervisor wrapped by `withFaults` in libvirt/faulty-hypervisor.ts checks `hypervisor.<method>`
 *   before each call), so Temporal sees a real activity failure, half-successes included.
 *
 * Injected faults: 'retryable' throws an `InjectedTransientFault` (a plain Error: Temporal retries it);
 * 'fatal' throws `ApplicationFailure.nonRetryable(msg, 'InjectedFault')`.
 */
import { ApplicationFailure } from '@temporalio/common';
import { InvalidInput } from '../core/errors';
import { LibvirtError, VirErr } from '../libvirt';

export type FaultKind = 'retryable' | 'fatal';

/** The error type (Temporal failure `type`) of permanent hypervisor failures. */
export const HYPERVISOR_REJECTED = 'HypervisorRejected';
/** The error type of injected fatal faults. */
export const INJECTED_FAULT = 'InjectedFault';

/** libvirt error codes that say "this request will never work here", whatever the retry. */
const PERMANENT_CODES: ReadonlySet<number> = new Set([
  VirErr.NO_SUPPORT,
  VirErr.INVALID_ARG,
  VirErr.XML_ERROR,
  VirErr.XML_DETAIL,
  VirErr.INVALID_MAC,
  VirErr.CONFIG_UNSUPPORTED,
  VirErr.ARGUMENT_UNSUPPORTED,
  VirErr.OPERATION_UNSUPPORTED,
  VirErr.ACCESS_DENIED,
  VirErr.STORAGE_VOL_EXIST, // a volume of that name exists with another format/size/backing store
  VirErr.XML_INVALID_SCHEMA,
]);

/** True when retrying the call that threw `err` cannot help. */
export function isPermanentHypervisorError(err: unknown): boolean {
  if (err instanceof InvalidInput) return true; // the driver validated the spec before calling libvirt
  if (!(err instanceof LibvirtError)) return false;
  if (PERMANENT_CODES.has(err.code)) return true;
  // the driver's own "serial already used for another path / target in use" refusals
  return err.code === VirErr.OPERATION_INVALID && err.operation === 'attachDisk';
}

/**
 * What an activity should throw for `err`: ApplicationFailures pass through, permanent hypervisor
 * errors become non-retryable `HypervisorRejected` failures (libvirt's code, code name and operation
 * in `details[0]`), anything else is returned as is (retryable).
 */
export function toActivityFailure(err: unknown): unknown {
  if (err instanceof ApplicationFailure) return err;
  if (!isPermanentHypervisorError(err)) return err;
  const e = err as Error;
  const details =
    e instanceof LibvirtError
      ? [{ code: e.code, codeName: e.codeName, operation: e.operation }]
      : [{ fields: (e as InvalidInput).fields }];
  return ApplicationFailure.create({ message: e.message, type: HYPERVISOR_REJECTED, nonRetryable: true, details, cause: e });
}

/** Run an activity body; whatever it throws is classified by `toActivityFailure`. */
export async function asActivity<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    throw toActivityFailure(err);
  }
}

/** A retryable injected fault (Temporal's failure type is the error name, which no retry policy lists). */
export class InjectedTransientFault extends Error {
  constructor(readonly point: string) {
    super(`injected retryable fault at ${point}`);
    this.name = 'InjectedTransientFault';
  }
}

interface Armed {
  kind: FaultKind;
  remaining: number;
}

/**
 * Named failure points, armed by tests. One plan is shared by everything it is handed to (the same
 * process): arm it, run the workflow or activity, assert, `clear()`.
 */
export class FaultPlan {
  private readonly armed = new Map<string, Armed>();
  private readonly checks = new Map<string, number>();
  private readonly fires = new Map<string, number>();

  /**
   * Arm `point` to throw on its next `times` checks (default: until cleared). 'retryable' (default)
   * throws a plain error Temporal retries; 'fatal' a non-retryable `InjectedFault` failure.
   * Arming a point again replaces its previous arming.
   */
  failAt(point: string, error: FaultKind = 'retryable', times = Number.POSITIVE_INFINITY): this {
    if (!(times > 0)) throw new RangeError(`times must be positive, got ${times}`);
    this.armed.set(point, { kind: error, remaining: times });
    return this;
  }

  private readonly holds = new Map<string, { reached: () => void; released: Promise<void> }>();

  /**
   * Hold the next pass through `point` until `release()` (to act while a step is in progress, e.g. a
   * DELETE during boot). `reached` resolves when a caller is held there. One-shot.
   */
  holdAt(point: string): { reached: Promise<void>; release: () => void } {
    let release!: () => void;
    const released = new Promise<void>((r) => (release = r));
    let reached!: () => void;
    const reachedP = new Promise<void>((r) => (reached = r));
    this.holds.set(point, { reached, released });
    return { reached: reachedP, release };
  }

  /** An async failure point: waits while the point is held, then checks it. */
  async pass(point: string): Promise<void> {
    const hold = this.holds.get(point);
    if (hold) {
      this.holds.delete(point);
      hold.reached();
      await hold.released;
    }
    this.check(point);
  }

  /** Called at a failure point: throws if the point is armed (and counts down its arming). */
  check(point: string): void {
    this.checks.set(point, (this.checks.get(point) ?? 0) + 1);
    const armed = this.armed.get(point);
    if (!armed) return;
    armed.remaining -= 1;
    if (armed.remaining <= 0) this.armed.delete(point);
    this.fires.set(point, (this.fires.get(point) ?? 0) + 1);
    if (armed.kind === 'fatal') {
      throw ApplicationFailure.nonRetryable(`injected fatal fault at ${point}`, INJECTED_FAULT, { point });
    }
    throw new InjectedTransientFault(point);
  }

  /** Disarm one point, or every point and the counters. */
  clear(point?: string): void {
    if (point !== undefined) {
      this.armed.delete(point);
      return;
    }
    this.armed.clear();
    this.holds.clear();
    this.checks.clear();
    this.fires.clear();
  }

  /** How often `point` was checked (armed or not) since the last `clear()`. */
  checked(point: string): number {
    return this.checks.get(point) ?? 0;
  }

  /** How often `point` threw since the last `clear()`. */
  fired(point: string): number {
    return this.fires.get(point) ?? 0;
  }

  /** Points still armed. */
  armedPoints(): string[] {
    return [...this.armed.keys()].sort();
  }
}
