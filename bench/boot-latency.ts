/**
 * Boot latency of real QEMU guests: start of a boot → "STRATUS-BOOTED" on the guest's serial console,
 * for 1 server alone (several rounds) and for N in parallel, on this machine's cores.
 *
 *   scripts/setup-qemu.sh && scripts/build-test-guest.sh     # once (as root)
 *   npx tsx bench/boot-latency.ts                             # 3 rounds alone, then 5 in parallel
 *   BENCH_ROUNDS=5 BENCH_PARALLEL=8 npx tsx bench/boot-latency.ts
 *
 * Targets (BENCH_VIA):
 *   host  (default) the host agent's activities called in-process against qemu:///system
 *         (bootServer → marker; destroyServer afterwards, not timed), as test/e2e/qemu-guest.test.ts does
 *   api   the whole stack, POST /v1/servers → the marker on GET /v1/servers/{id}/console (npm run bench:boot)
 *
 * Each figure is measured from the moment the boot is requested, so it includes what the host does
 * before the domain runs (image cache, root overlay, network + DHCP reservation, define, start).
 */
import os from 'node:os';
import { loadConfig } from '../core/config';
import { createLogger } from '../core/log';
import { startScratchDevServer } from '../temporal/dev-server';
import { consoleLine, startQemuCloud, waitForConsole } from '../test/support/qemu-api';
import { waitGone, waitSettled } from '../test/support/stratus-fixtures';
import { TEMPORAL_ADDRESS_ENV, TEMPORAL_NAMESPACE_ENV } from '../test/support/temporal';
import { median, openQemuHarness, qemuUnavailable, type GuestServer, type QemuHarness } from '../test/support/qemu-guest';

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const PARALLEL = Number(process.env.BENCH_PARALLEL ?? 5);
const VIA = process.env.BENCH_VIA ?? 'host';
const MARKER = 'STRATUS-BOOTED';

/** One timed boot: ms from the request to the domain running (if known) and to the marker. */
interface Sample {
  runningMs?: number;
  markerMs: number;
  /** The guest kernel's own clock when it started /init (from its console), in ms. */
  guestInitMs?: number;
}

/** Something that boots a test-guest server and tells when its console shows the marker. */
interface BootTarget {
  describe: string;
  bootToMarker(): Promise<{ sample: Sample; teardown: () => Promise<void> }>;
  close(): Promise<void>;
}

async function hostTarget(): Promise<BootTarget> {
  const h: QemuHarness = await openQemuHarness({ log: createLogger('warn'), bootTimeoutMs: 120_000 });
  return {
    describe: `host activities on qemu:///system (${h.hypervisor.capabilities.driver}, domain type qemu = TCG)`,
    async bootToMarker() {
      const server: GuestServer = h.newServer();
      const started = performance.now();
      await h.boot(server);
      const runningMs = performance.now() - started;
      const { seenAt, text } = await h.waitForConsole(server.domainName, MARKER, 180_000);
      const init = /\[\s*([\d.]+)\] Run \/init/.exec(text);
      return {
        sample: { runningMs, markerMs: seenAt - started, ...(init ? { guestInitMs: Number(init[1]) * 1000 } : {}) },
        teardown: () => h.destroy(server),
      };
    },
    close: () => h.close(),
  };
}

/**
 * Through the whole stack: a cloud on qemu:///system (its own Temporal dev server, PGlite, API,
 * conductor, host agent), the test guest uploaded through the image API; per sample POST /v1/servers
 * and poll GET /v1/servers/{id}/console until the marker; DELETE afterwards (not timed).
 */
async function apiTarget(): Promise<BootTarget> {
  const log = createLogger('warn');
  const server = await startScratchDevServer(loadConfig(), log);
  process.env[TEMPORAL_ADDRESS_ENV] = server.address;
  process.env[TEMPORAL_NAMESPACE_ENV] = 'stratus';
  const q = await startQemuCloud();
  let n = 0;
  const live = new Set<string>();
  const remove = async (id: string): Promise<void> => {
    await q.t.call('DELETE', `/v1/servers/${id}`, { token: q.token });
    await waitGone(q.t, q.token, id, 120_000);
    live.delete(id);
  };
  return {
    describe: 'POST /v1/servers → console, whole stack on qemu:///system (TCG)',
    async bootToMarker() {
      const started = performance.now();
      const created = await q.t.call('POST', '/v1/servers', {
        token: q.token,
        body: { name: `bench-${(n += 1)}`, flavor_id: q.flavorId, image_id: q.imageId, networks: [{ network_id: q.networkId }] },
      });
      if (created.status !== 202) throw new Error(`create: ${created.status} ${JSON.stringify(created.body)}`);
      const id = created.body.server.id as string;
      live.add(id);
      const active = await waitSettled(q.t, q.token, id, 180_000);
      const runningMs = performance.now() - started;
      if (active.status !== 'ACTIVE') throw new Error(`server ${id}: ${JSON.stringify(active.fault)}`);
      const { seenAt, text } = await waitForConsole(q, id, consoleLine(MARKER), 180_000);
      const init = /\[\s*([\d.]+)\] Run \/init/.exec(text);
      return {
        sample: { runningMs, markerMs: seenAt - started, ...(init ? { guestInitMs: Number(init[1]) * 1000 } : {}) },
        teardown: () => remove(id),
      };
    },
    async close() {
      // A failed run must not leave guests running: delete every server it still has.
      await Promise.allSettled([...live].map(remove));
      await q.t.stop();
      await server.stop();
    },
  };
}

const s = (ms: number | undefined): string => (ms === undefined ? '?' : `${(ms / 1000).toFixed(2)} s`);

async function main(): Promise<void> {
  const why = await qemuUnavailable();
  if (why) {
    console.error(`boot-latency: ${why}`);
    process.exit(1);
  }
  const target = VIA === 'api' ? await apiTarget() : await hostTarget();
  const cores = os.cpus().length;
  console.log(`boot-latency: ${target.describe}; ${cores} cores (${os.cpus()[0]?.model ?? '?'}), guest: .tools/guest`);
  try {
    // alone, one after another
    const alone: Sample[] = [];
    for (let i = 0; i < ROUNDS; i++) {
      const { sample, teardown } = await target.bootToMarker();
      await teardown();
      alone.push(sample);
      console.log(`  alone #${i + 1}: running ${s(sample.runningMs)}, ${MARKER} ${s(sample.markerMs)} (guest kernel ran /init at ${s(sample.guestInitMs)})`);
    }
    // in parallel
    const wallStarted = performance.now();
    const parallel = await Promise.all(Array.from({ length: PARALLEL }, () => target.bootToMarker()));
    const wall = performance.now() - wallStarted;
    await Promise.all(parallel.map((p) => p.teardown()));
    const markers = parallel.map((p) => p.sample.markerMs);
    for (const [i, { sample }] of parallel.entries()) {
      console.log(`  parallel #${i + 1}: running ${s(sample.runningMs)}, ${MARKER} ${s(sample.markerMs)} (guest kernel ran /init at ${s(sample.guestInitMs)})`);
    }
    console.log(
      `boot-latency: ${cores} cores | alone: ${MARKER} median ${s(median(alone.map((a) => a.markerMs)))} over ${ROUNDS} ` +
        `| ${PARALLEL} in parallel: median ${s(median(markers))}, max ${s(Math.max(...markers))}, ` +
        `${(PARALLEL / (wall / 1000)).toFixed(2)} VMs/s to the marker`,
    );
  } finally {
    await target.close();
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
