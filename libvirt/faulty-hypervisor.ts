/**
 * A failure-injecting Hypervisor for tests (after nova/virt/fake.py): `withFaults(h, plan)` returns a
 * Hypervisor whose every method first calls `plan.check('hypervisor.<method>')` and only then
 * delegates to `h`. Arming 'hypervisor.startDomain' therefore fails a boot after its domain and disks
 * exist: the half-success a saga must undo.
 *
 * The plan is anything with `check(point)` that throws when the point is armed (Stratus uses
 * activities/fault-injection.ts's FaultPlan); this layer knows nothing of it. Production code passes
 * no plan and never wraps its hypervisor.
 */
import type { Hypervisor } from './hypervisor';

export interface FaultCheck {
  /** Throw if `point` is armed to fail; return otherwise. */
  check(point: string): void;
  /** Optional async form: may also hold the caller at `point` for a while. */
  pass?(point: string): Promise<void>;
}

type Method = Exclude<keyof Hypervisor, 'capabilities'>;

const METHODS = [
  'hostInfo',
  'defineDomain',
  'startDomain',
  'stopDomain',
  'destroyDomain',
  'undefineDomain',
  'domainState',
  'listDomains',
  'domainStats',
  'domainXml',
  'domainDisks',
  'rebootDomain',
  'ensurePool',
  'createVolume',
  'createOverlayVolume',
  'deleteVolume',
  'listVolumes',
  'volumePath',
  'volumeInfo',
  'defineNetwork',
  'startNetwork',
  'destroyNetwork',
  'undefineNetwork',
  'listNetworks',
  'networkDhcpHosts',
  'networkAddDhcpHost',
  'networkRemoveDhcpHost',
  'attachDisk',
  'detachDisk',
  'close',
] as const satisfies readonly Method[];

// Compile-time guard: a method added to Hypervisor must be listed above.
type Unlisted = Exclude<Method, (typeof METHODS)[number]>;
const everyMethodListed: [Unlisted] extends [never] ? true : Unlisted = true;
void everyMethodListed;

/** The fault-check point of a Hypervisor method: 'hypervisor.<method>'. */
export function faultPoint(method: Method): string {
  return `hypervisor.${method}`;
}

export function withFaults(hypervisor: Hypervisor, plan: FaultCheck): Hypervisor {
  const wrapped: Record<string, unknown> = {};
  for (const method of METHODS) {
    const fn = hypervisor[method] as (...args: unknown[]) => Promise<unknown>;
    const point = faultPoint(method);
    // async: a fault rejects the returned promise, as a real hypervisor failure would
    wrapped[method] = async (...args: unknown[]): Promise<unknown> => {
      if (plan.pass) await plan.pass(point);
      else plan.check(point);
      return fn.apply(hypervisor, args);
    };
  }
  Object.defineProperty(wrapped, 'capabilities', { get: () => hypervisor.capabilities, enumerable: true });
  return wrapped as unknown as Hypervisor;
}
