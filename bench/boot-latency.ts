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
 *   api   the whole stack, POST /v1/servers → the marker on GET /v1/servers/{id}/console: not wired
 *         yet (it needs the kernel/initrd images through the image API and the create workflow passing
 *         them on); `apiTarget` below is the place to do it
 *
 * Each figure is measured from the moment the boot is requested, so it includes what the host does
 * before the domain runs (image cache, root overlay, network + DHCP reservation, define, start).
 */
import os from 'node:os';
import { createLogger } from '../core/log';
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
 * Through the API (the lead's to finish): start a cloud on qemu:///system (workers/cloud.ts with
 * STRATUS_LIBVIRT_URI=qemu:///system), upload .tools/guest/{vmlinuz,initrd.img,root.raw} as images,
 * then per sample: POST /v1/servers with the kernel/initrd → poll the console until MARKER;
 * DELETE afterwards.
 */
async function apiTarget(): Promise<BootTarget> {
  throw new Error('BENCH_VIA=api is not wired yet: see apiTarget() in bench/boot-latency.ts');
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
