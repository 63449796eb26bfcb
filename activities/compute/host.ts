/**
 * Compute activities that run on a hypervisor host (task queue `host.<name>`, nova-compute's job):
 * they talk to libvirt through the Hypervisor driver and never to the database.
 *
 * Every activity is idempotent and safe to run again after any partial run. Activities on one
 * server (boot, destroy, power actions) are serialized in this process, so a boot attempt that
 * Temporal gave up on (timed out) but that is still running here finishes before the saga's
 * `destroyServer` starts, and cannot recreate what the destroy removed.
 *
 * Failures: what retrying cannot fix becomes a non-retryable `HypervisorRejected` failure (see
 * ../fault-injection.ts); everything else is a plain Error that Temporal retries.
 */
import { mkdir, open, rm } from 'node:fs/promises';
import path from 'node:path';
import { Context } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';
import type { Logger } from '../../core/log';
import type { DiskSpec, DomainSpec, DomainState, DomainType, Hypervisor } from '../../libvirt';
import { asActivity } from '../fault-injection';
import { createNetworkHost, isNotFound, KeyedMutex } from '../network/host';
import type { HostNetwork } from '../network/types';
import { createImageOverlay, GiB, volumeDisk, type EnsureImageCached } from '../storage/host';
import type { HostReport } from './control';
import type { BootRequest, BootResult, ComputeHostActivitiesContract, ConsoleChunk, ConsoleChunkRequest, PowerAction, TeardownRequest } from './types';

/** Node's process.arch as libvirt/Glance name architectures. */
const ARCHITECTURES: Record<string, string> = { x64: 'x86_64', arm64: 'aarch64', ia32: 'i686', arm: 'armv7l', ppc64: 'ppc64le', s390x: 's390x' };

export interface ComputeHostDeps {
  hostName: string;
  /** The storage pool whose capacity is the host's disk capacity; root disks live in it. */
  storagePool: string;
  hypervisor: Hypervisor;
  /** Capacity from configuration wins over what libvirt reports (e.g. to keep room for the host itself). */
  overrides: { vcpus?: number | undefined; ramMb?: number | undefined; diskGb?: number | undefined };
  /** Pulls an image into the host cache and returns the cached file (activities/image/host.ts). */
  ensureImageCached: EnsureImageCached;
  /** Directory of the serial console logs, `<consoleDir>/<domainName>.log` (created if absent). */
  consoleDir: string;
  /** 'test' on libvirt's test driver, 'qemu' (TCG) or 'kvm' on a real host. */
  domainType: DomainType;
  log: Logger;
  /** How long bootServer waits for the domain to run after starting it. Default 30 s. */
  bootTimeoutMs?: number;
  /** How long a 'stop' waits for the guest to power off before pulling the plug. Default 30 s. */
  stopTimeoutMs?: number;
}

/** Name of a server's root disk in the pool. */
export function rootVolumeFor(serverId: string): string {
  return `root-${serverId}`;
}

/**
 * 'test' for libvirt's test driver (whatever is configured); otherwise the configured type
 * (STRATUS_DOMAIN_TYPE: 'kvm' on hosts with a usable /dev/kvm), by default 'qemu' (TCG emulation:
 * KVM is not usable on these machines, notes/libvirt.md).
 */
export function domainTypeFor(hypervisor: Hypervisor, configured?: 'qemu' | 'kvm'): DomainType {
  if (hypervisor.capabilities.driver.toLowerCase() === 'test') return 'test';
  return configured ?? 'qemu';
}

/** Kernel command line of a direct kernel boot when the request names none: the console on the serial port. */
/**
 * `no_timer_check`: a guest's kernel checks its timer interrupt against the wall clock at boot; on a
 * loaded host under TCG the check can miss and the kernel panics ("IO-APIC + timer doesn't work", seen
 * in CI). Cloud images boot VMs with it for the same reason.
 */
export const DEFAULT_KERNEL_CMDLINE = 'console=ttyS0 no_timer_check';

const DOMAIN_NAME_RE = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$/;
const DEFAULT_CONSOLE_BYTES = 100 * 1024; // as nova's get_console_output
const MAX_CONSOLE_BYTES = 1024 * 1024; // stays well under Temporal's payload limit

/** Servers being worked on in this process: one activity per server at a time. */
const serverLocks = new KeyedMutex();

/** A wait that a cancelled activity cuts short (Context.sleep); a plain timer outside an activity. */
function sleep(ms: number): Promise<void> {
  try {
    return Context.current().sleep(ms);
  } catch {
    return new Promise((r) => setTimeout(r, ms));
  }
}

/** Heartbeat when running inside a Temporal activity (a no-op when called directly, e.g. in tests). */
function heartbeat(details: unknown): void {
  let ctx: Context;
  try {
    ctx = Context.current();
  } catch {
    return;
  }
  ctx.heartbeat(details);
}

/**
 * How many of the first `length` bytes of `buf` hold whole UTF-8 characters: a sequence cut short at
 * the end (the guest has not written the rest yet) is left for the next read.
 */
function completeUtf8Length(buf: Buffer, length: number): number {
  for (let i = length - 1; i >= 0 && i >= length - 4; i--) {
    const b = buf[i]!;
    if ((b & 0xc0) === 0x80) continue; // a continuation byte: look further back for the lead byte
    const width = b >= 0xf0 ? 4 : b >= 0xe0 ? 3 : b >= 0xc0 ? 2 : 1;
    return i + width <= length ? length : i;
  }
  return length;
}

function checkDomainName(name: string): void {
  if (!DOMAIN_NAME_RE.test(name)) {
    throw ApplicationFailure.nonRetryable(`'${name}' is not a domain name ([A-Za-z0-9_.-], 1-64 characters)`, 'HypervisorRejected');
  }
}

export function createComputeHostActivities(deps: ComputeHostDeps) {
  const { hostName, storagePool, hypervisor, overrides, ensureImageCached, consoleDir, domainType, log } = deps;
  const bootTimeoutMs = deps.bootTimeoutMs ?? 30_000;
  const stopTimeoutMs = deps.stopTimeoutMs ?? 30_000;
  const networks = createNetworkHost({ hypervisor, log });
  const consolePath = (domainName: string): string => path.join(consoleDir, `${domainName}.log`);

  /** Poll until libvirt reports the domain running; throw (retryable) after the bound. */
  async function waitRunning(domainName: string): Promise<void> {
    const deadline = Date.now() + bootTimeoutMs;
    let state: DomainState | undefined;
    for (let wait = 10; ; wait = Math.min(wait * 2, 500)) {
      state = await hypervisor.domainState(domainName);
      if (state === 'running') return;
      if (Date.now() >= deadline) break;
      heartbeat({ waitingFor: 'running', state });
      await sleep(Math.min(wait, Math.max(1, deadline - Date.now())));
    }
    throw new Error(`domain ${domainName} is ${state ?? 'gone'}, not running, ${bootTimeoutMs / 1000} s after start`);
  }

  /** Start (no-op if running) and wait until running. */
  async function startAndWait(domainName: string): Promise<void> {
    await hypervisor.startDomain(domainName);
    await waitRunning(domainName);
  }

  /** State of an existing domain; a non-retryable NotFound when there is none. */
  async function existingState(domainName: string): Promise<DomainState> {
    const state = await hypervisor.domainState(domainName);
    if (state === undefined) throw ApplicationFailure.nonRetryable(`domain ${domainName} does not exist`, 'NotFound');
    return state;
  }

  async function boot(req: BootRequest): Promise<BootResult> {
    const { serverId, domainName } = req;
    const started = Date.now();
    // (a) the image, in the host cache; for a direct kernel boot the kernel and initramfs too
    // (a cmdline without a kernel is ignored, as nova ignores os_command_line without kernel_id)
    if (req.initrd && !req.kernel) {
      throw ApplicationFailure.nonRetryable('an initrd needs a kernel (direct kernel boot)', 'InvalidInput');
    }
    heartbeat({ step: 'image' });
    const [cached, kernel, initrd] = await Promise.all([
      ensureImageCached(req.image),
      req.kernel ? ensureImageCached(req.kernel) : undefined,
      req.initrd ? ensureImageCached(req.initrd) : undefined,
    ]);

    // (b) the root disk: a qcow2 overlay on the cached image
    heartbeat({ step: 'root_disk' });
    const rootVolume = rootVolumeFor(serverId);
    const root = await createImageOverlay(hypervisor, storagePool, {
      name: rootVolume,
      cachedPath: cached.path,
      diskFormat: req.image.diskFormat,
      minBytes: req.rootDiskGb * GiB,
    });

    // (c) networks and DHCP reservations (the hostname goes with the first port on each network:
    //     libvirt refuses two reservations with one name)
    heartbeat({ step: 'network' });
    const named = new Set<string>();
    for (const port of req.ports) {
      const first = !named.has(port.network.libvirtName);
      named.add(port.network.libvirtName);
      await networks.realizePort(port.network, { mac: port.mac, ip: port.ip, ...(first ? { name: domainName } : {}) });
    }

    // (d) define, (e) start: a domain already running was defined by an earlier run of this boot
    const consoleLogPath = consolePath(domainName);
    const state = await hypervisor.domainState(domainName);
    if (state !== 'running') {
      const volumeDisks: DiskSpec[] = [];
      for (const v of req.volumes) {
        try {
          volumeDisks.push(await volumeDisk(hypervisor, storagePool, v));
        } catch (err) {
          if (isNotFound(err)) throw ApplicationFailure.nonRetryable(`volume ${v.poolVolume} (${v.volumeId}) is not in pool ${storagePool}`, 'VolumeNotFound');
          throw err;
        }
      }
      await mkdir(consoleDir, { recursive: true });
      const spec: DomainSpec = {
        name: domainName,
        vcpus: req.vcpus,
        memoryMb: req.ramMb,
        domainType,
        disks: [{ path: root.path, format: 'qcow2', target: 'vda', serial: 'root' }, ...volumeDisks],
        interfaces: req.ports.map((p) => ({ network: p.network.libvirtName, mac: p.mac })),
        serialLogPath: consoleLogPath,
        ...(kernel ? { kernel: kernel.path, cmdline: req.cmdline ?? DEFAULT_KERNEL_CMDLINE } : {}),
        ...(initrd ? { initrd: initrd.path } : {}),
      };
      heartbeat({ step: 'define' });
      await hypervisor.defineDomain(spec); // replaces a definition left by an earlier partial run
      heartbeat({ step: 'start' });
      await hypervisor.startDomain(domainName);
    }
    // (f) running
    await waitRunning(domainName);
    log.info({ server: serverId, domain: domainName, host: hostName, ms: Date.now() - started, resumed: state !== undefined }, 'server booted');
    return { domainName, rootVolume, rootDiskPath: root.path, backingPath: cached.path, consoleLogPath };
  }

  async function teardown(req: TeardownRequest): Promise<void> {
    const { serverId, domainName } = req;
    await hypervisor.undefineDomain(domainName); // destroys first; absent: no-op
    await hypervisor.deleteVolume(storagePool, rootVolumeFor(serverId)); // absent: no-op
    await rm(consolePath(domainName), { force: true });
    const byName = new Map<string, HostNetwork>();
    for (const port of req.ports) {
      await networks.removeDhcpHost(port.network, port.mac); // absent reservation or network: no-op
      byName.set(port.network.libvirtName, port.network);
    }
    for (const net of byName.values()) await networks.removeNetworkIfUnused(net);
    log.info({ server: serverId, domain: domainName, host: hostName }, 'server destroyed');
  }

  async function power(domainName: string, action: PowerAction): Promise<void> {
    const state = await existingState(domainName);
    switch (action) {
      case 'start':
        await startAndWait(domainName);
        return;
      case 'stop': {
        if (state === 'shutoff') return;
        heartbeat({ step: 'stop' });
        const off = await hypervisor.stopDomain(domainName, { timeoutMs: stopTimeoutMs });
        if (!off) {
          log.warn({ domain: domainName, timeoutMs: stopTimeoutMs }, 'guest did not power off: destroying');
          await hypervisor.destroyDomain(domainName);
        }
        return;
      }
      case 'reboot':
        // a domain that is not running is simply started (as nova's hard reboot powers it on)
        if (state !== 'running') {
          await startAndWait(domainName);
          return;
        }
        await hypervisor.rebootDomain(domainName); // ACPI: returns once delivered
        return;
      default: {
        const never: never = action;
        throw ApplicationFailure.nonRetryable(`unknown power action '${String(never)}'`, 'InvalidInput');
      }
    }
  }

  /** See ComputeHostActivitiesContract.readConsoleChunk. */
  async function consoleChunk(domainName: string, maxBytes: number, since: number | undefined): Promise<ConsoleChunk> {
    let fh;
    try {
      fh = await open(consolePath(domainName), 'r');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { output: '', end: 0 };
      throw err;
    }
    try {
      const size = (await fh.stat()).size;
      // `since` is a character boundary (an earlier chunk's end); a start of our own may not be.
      const follows = since !== undefined && since <= size && size - since <= maxBytes;
      const from = follows ? since : Math.max(0, size - maxBytes);
      const buf = Buffer.alloc(size - from);
      const { bytesRead } = await fh.read(buf, 0, buf.length, from);
      let start = 0;
      // do not begin inside a UTF-8 sequence (continuation bytes are 10xxxxxx)
      if (!follows) while (from > 0 && start < bytesRead && start < 4 && ((buf[start] ?? 0) & 0xc0) === 0x80) start++;
      const stop = completeUtf8Length(buf, bytesRead);
      if (stop <= start) return { output: '', end: from + start };
      return { output: buf.subarray(start, stop).toString('utf8'), end: from + stop };
    } finally {
      await fh.close();
    }
  }

  const consoleBytes = (maxBytes: number | undefined): number => {
    const wanted = maxBytes !== undefined && Number.isFinite(maxBytes) ? Math.floor(maxBytes) : DEFAULT_CONSOLE_BYTES;
    return Math.max(0, Math.min(wanted, MAX_CONSOLE_BYTES));
  };

  const activities = {
    /** This host's identity, capacity and capabilities, as the scheduler sees them. */
    async describeHost(): Promise<HostReport> {
      const info = await hypervisor.hostInfo(storagePool);
      return {
        name: hostName,
        libvirtUri: info.uri,
        libvirtVersion: info.libvirtVersion,
        vcpus: overrides.vcpus ?? info.vcpus,
        ramMb: overrides.ramMb ?? info.ramMb,
        diskGb: overrides.diskGb ?? info.diskGb,
        // The scheduler's image-properties filter matches `architecture` and `driver` (the hypervisor type).
        capabilities: { ...hypervisor.capabilities, architecture: ARCHITECTURES[process.arch] ?? process.arch },
      };
    },

    /**
     * Image into the host cache, root disk `root-<serverId>` as a qcow2 overlay on it (capacity
     * max(rootDiskGb, the image's virtual size)), each port's network + DHCP reservation, the domain
     * (root disk vda serial 'root', volumes by serial, NICs, serial console to
     * `<consoleDir>/<domainName>.log`) defined and started, then polled until running (bounded).
     * With `kernel` (and `initrd`), those are cached like the image and the domain boots them
     * directly, with `cmdline` (default DEFAULT_KERNEL_CMDLINE).
     * A rerun after any partial run completes the job without duplicates.
     */
    bootServer: (req: BootRequest): Promise<BootResult> =>
      asActivity(() => {
        checkDomainName(req.domainName);
        return serverLocks.run(req.domainName, () => boot(req));
      }),

    /**
     * Destroy + undefine the domain, delete its root disk and console log, remove its ports' DHCP
     * reservations, and each network nothing uses any more. Every piece may be absent (this is the
     * boot saga's compensation and the delete path). Volumes are not touched (storage activities).
     */
    destroyServer: (req: TeardownRequest): Promise<void> =>
      asActivity(() => {
        checkDomainName(req.domainName);
        return serverLocks.run(req.domainName, () => teardown(req));
      }),

    /**
     * start (wait until running), stop (graceful, destroyed after `stopTimeoutMs`), reboot (ACPI
     * when running; started when not). Absent domain: non-retryable NotFound.
     */
    powerAction: (req: { domainName: string; action: PowerAction }): Promise<void> =>
      asActivity(() => {
        checkDomainName(req.domainName);
        return serverLocks.run(req.domainName, () => power(req.domainName, req.action));
      }),

    /** The tail (default 100 KiB, at most 1 MiB) of the serial console log; '' when there is none. */
    readConsole: (req: { domainName: string; maxBytes?: number }): Promise<string> =>
      asActivity(async () => {
        checkDomainName(req.domainName);
        return (await consoleChunk(req.domainName, consoleBytes(req.maxBytes), undefined)).output;
      }),

    /** What is new in the serial console log since an earlier chunk (see the contract); at most 1 MiB. */
    readConsoleChunk: (req: ConsoleChunkRequest): Promise<ConsoleChunk> =>
      asActivity(() => {
        checkDomainName(req.domainName);
        const since = req.since !== undefined && Number.isSafeInteger(req.since) && req.since >= 0 ? req.since : undefined;
        return consoleChunk(req.domainName, consoleBytes(req.maxBytes), since);
      }),
  } satisfies ComputeHostActivitiesContract & Record<string, unknown>;
  return activities;
}

export type ComputeHostActivities = ReturnType<typeof createComputeHostActivities>;
