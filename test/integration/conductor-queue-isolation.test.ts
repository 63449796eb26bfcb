/**
 * Clouds on one Temporal namespace stay apart when their conductor task queues differ
 * (STRATUS_CONDUCTOR_TASK_QUEUE): a host agent whose cloud's conductor is gone keeps heartbeating to
 * its monitor workflow, and no other cloud's conductor writes that host into its database; each
 * cloud keeps its own reconciler (a conductor's start replaces only its own cloud's).
 *
 * This is how a finished jest file's host once turned up in the next file's cloud (a volume of
 * openstack-volume.test.ts placed on a host of two-hosts.test.ts): every file used one queue. The
 * control case puts a third cloud on the first one's queue, and the ghost host appears there.
 */
import { connectTemporal } from '../../temporal/connection';
import { reconcilerWorkflowId } from '../../workflows/reconciler';
import { startTestCloud, type TestCloud } from '../support/cloud';
import type { TestHost } from '../support/hosts';
import { testTemporal } from '../support/temporal';

/** Heartbeats are 1 s in test clouds: this is 4 of them. */
const WATCH_MS = 4000;

let a: TestCloud | undefined;
let b: TestCloud | undefined;
let c: TestCloud | undefined;
let temporal: Awaited<ReturnType<typeof connectTemporal>> | undefined;

afterAll(async () => {
  await temporal?.connection.close();
  await Promise.all([a?.stop(), b?.stop(), c?.stop()]);
});

async function hostNames(t: TestCloud, token: string): Promise<string[]> {
  const res = await t.call('GET', '/v1/hosts?limit=100', { token });
  expect(res.status).toBe(200);
  return (res.body.hosts as Array<{ name: string }>).map((h) => h.name);
}

test("a cloud's host never shows up in another cloud on its own queue, even while it heartbeats with its conductor gone", async () => {
  a = await startTestCloud({ builtInAgent: false, hosts: [{}] });
  const ghost: TestHost = a.hosts[0]!;
  const aQueue = a.config.temporal.conductorTaskQueue;
  expect(await hostNames(a, await a.login())).toEqual([ghost.name]);
  // Cloud A's conductor and API stop; its host agent does not (TestCloud.stop would stop it too).
  await a.cloud.stop();

  b = await startTestCloud();
  expect(b.config.temporal.conductorTaskQueue).not.toBe(aQueue);
  const bToken = await b.login();
  const seenByB = new Set<string>();
  for (const until = Date.now() + WATCH_MS; Date.now() < until; ) {
    for (const name of await hostNames(b, bToken)) seenByB.add(name);
    await new Promise((r) => setTimeout(r, 200));
  }
  expect(ghost.gone).toBe(false); // it heartbeated all along
  expect([...seenByB]).toEqual([b.config.host.name]);
  // B's conductor started B's reconciler and left A's alone.
  temporal = await connectTemporal(testTemporal().address, testTemporal().namespace);
  const reconcilerOf = (queue: string) => temporal!.client.workflow.getHandle(reconcilerWorkflowId(queue)).describe();
  expect((await reconcilerOf(aQueue)).status.name).toBe('RUNNING');
  expect(await reconcilerOf(b.config.temporal.conductorTaskQueue)).toMatchObject({ status: { name: 'RUNNING' }, taskQueue: b.config.temporal.conductorTaskQueue });

  // Control: a cloud on A's queue serves A's host monitor, and the ghost lands in its database.
  c = await startTestCloud({ env: { STRATUS_CONDUCTOR_TASK_QUEUE: aQueue } });
  const cToken = await c.login();
  await c.waitFor('/v1/hosts?limit=100', cToken, (r) => (r.body.hosts ?? []).some((h: { name: string }) => h.name === ghost.name), 15_000);
  expect(await hostNames(b, bToken)).toEqual([b.config.host.name]);
}, 120_000);
