/**
 * A test cloud of two hosts and no built-in agent (test/support/hosts.ts, private libvirt state
 * each): A has more RAM and disk than B, so the scheduler (and volume placement) tries A first.
 * Returns once both hosts are alive, with an image, the m1.tiny flavor and a network ready.
 */
import { FaultPlan } from '../../activities/fault-injection';
import { startTestCloud, type TestCloud } from './cloud';
import type { TestHost } from './hosts';
import { createNetwork, flavorId, uploadRawImage } from './stratus-fixtures';

export interface TwoHostCloud {
  t: TestCloud;
  admin: string;
  A: TestHost;
  B: TestHost;
  faultsA: FaultPlan;
  faultsB: FaultPlan;
  imageId: string;
  tiny: string;
  net: { networkId: string; subnetId: string };
}

export async function startTwoHostCloud(cidr: string, env: Record<string, string> = {}): Promise<TwoHostCloud> {
  const faultsA = new FaultPlan();
  const faultsB = new FaultPlan();
  const stamp = Date.now().toString(36);
  const t = await startTestCloud({
    env,
    builtInAgent: false,
    hosts: [
      { name: `a-${stamp}`, faults: faultsA, env: { STRATUS_HOST_RAM_MB: '16384', STRATUS_HOST_DISK_GB: '200' } },
      { name: `b-${stamp}`, faults: faultsB, env: { STRATUS_HOST_RAM_MB: '8192', STRATUS_HOST_DISK_GB: '100' } },
    ],
  });
  try {
    const [A, B] = t.hosts as [TestHost, TestHost];
    const admin = await t.login();
    await t.waitFor('/v1/hosts?limit=100', admin, (r) => {
      const alive = new Set((r.body.hosts ?? []).filter((h: { alive: boolean }) => h.alive).map((h: { name: string }) => h.name));
      return alive.has(A.name) && alive.has(B.name);
    });
    const imageId = await uploadRawImage(t, admin);
    const tiny = await flavorId(t, admin);
    const net = await createNetwork(t, admin, cidr);
    return { t, admin, A, B, faultsA, faultsB, imageId, tiny, net };
  } catch (err) {
    await t.stop();
    throw err;
  }
}
