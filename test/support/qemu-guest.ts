/**
 * Real QEMU guests under the host agent's own activities, for test/e2e/qemu-guest.test.ts and
 * bench/boot-latency.ts.
 *
 * The compute, storage and network host activities are wired as workers/agent.ts wires them, against
 * libvirtd (`qemu:///system`, as scripts/setup-qemu.sh starts it). The guest is the one
 * scripts/build-test-guest.sh builds into .tools/guest/ (kernel, initramfs, 1 MiB raw root); its
 * three files reach the host through the agent's real image cache (sha256-verified), served by a
 * stub `fetch` instead of the API. The guest prints markers on its serial console (STRATUS-BOOTED,
 * STRATUS-IP <ip>, STRATUS-DISK <serial> <dev>), which `waitForConsole` watches through the
 * `readConsole` activity.
 *
 * Every name carries the run id, so several runs (a test and a bench) can share one libvirtd; the
 * storage pool is one fixed pool (`stratus-qemu-test`, under $TMPDIR) so runs leave no pools behind.
 */
import { execFile, execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { promisify } from 'node:util';
import { createComputeHostActivities, domainTypeFor, rootVolumeFor, type ComputeHostActivities } from '../../activities/compute/host';
import type { BootRequest, BootResult, ImageForHost, PortOnHost, VolumeOnHost } from '../../activities/compute/types';
import { createImageHostActivities } from '../../activities/image/host';
import { createNetworkHost } from '../../activities/network/host';
import type { HostNetwork } from '../../activities/network/types';
import { createStorageHostActivities, type StorageHostActivities } from '../../activities/storage/host';
import { poolVolumeFor, serialFor } from '../../activities/storage/types';
import { silentLogger, type Logger } from '../../core/log';
import { openHypervisor, type Hypervisor } from '../../libvirt';

const run = promisify(execFile);

export const QEMU_URI = 'qemu:///system';
export const GUEST_DIR = path.resolve(__dirname, '..', '..', '.tools', 'guest');
export const GUEST_FILES = { kernel: 'vmlinuz', initrd: 'initrd.img', root: 'root.raw' } as const;
export const TEST_POOL = 'stratus-qemu-test';
export const TEST_POOL_DIR = path.join(os.tmpdir(), 'stratus-qemu-test', 'pool');

/** Why QEMU guests cannot run here, or undefined when they can (libvirtd answers, the guest is built). */
export async function qemuUnavailable(): Promise<string | undefined> {
  const missing = Object.values(GUEST_FILES).filter((f) => !fs.existsSync(path.join(GUEST_DIR, f)));
  if (missing.length > 0) return `the test guest is not built (${missing.join(', ')} missing in ${GUEST_DIR}): run scripts/build-test-guest.sh`;
  try {
    const hv = await openHypervisor(QEMU_URI);
    const driver = hv.capabilities.driver;
    await hv.close();
    if (driver !== 'QEMU') return `${QEMU_URI} answered with the ${driver} driver, not QEMU`;
  } catch (err) {
    return `libvirtd does not answer on ${QEMU_URI} (${(err as Error).message}): run scripts/setup-qemu.sh (as root)`;
  }
  return undefined;
}

/** The guest's files as images the host pulls: sha256, size, and a URL the stub fetch serves. */
function guestImage(name: keyof typeof GUEST_FILES): ImageForHost {
  const file = path.join(GUEST_DIR, GUEST_FILES[name]);
  const bytes = fs.readFileSync(file);
  return {
    id: `guest-${name}`,
    checksum: createHash('sha256').update(bytes).digest('hex'),
    sizeBytes: bytes.length,
    diskFormat: 'raw',
    downloadUrl: `http://guest.invalid/${GUEST_FILES[name]}`,
  };
}

/** Serves .tools/guest/<file> for http://guest.invalid/<file>, as the image API would. */
const guestFetch: typeof fetch = async (input) => {
  const url = new URL(typeof input === 'string' ? input : input instanceof URL ? input.href : input.url);
  const file = path.join(GUEST_DIR, path.basename(url.pathname));
  if (url.hostname !== 'guest.invalid' || !fs.existsSync(file)) return new Response('not found', { status: 404 });
  const body = Readable.toWeb(fs.createReadStream(file)) as ReadableStream<Uint8Array>;
  return new Response(body, { status: 200, headers: { 'content-length': String(fs.statSync(file).size) } });
};

/** A /24 in 10.213.0.0/16 that no route or address of this host touches. */
export function freeSubnet(): number {
  const inUse = execFileSync('ip', ['-4', '-o', 'addr', 'show']).toString() + execFileSync('ip', ['-4', 'route', 'show', 'table', 'all']).toString();
  for (let attempt = 0; attempt < 200; attempt++) {
    const octet = 1 + Math.floor(Math.random() * 250);
    if (!inUse.includes(`10.213.${octet}.`)) return octet;
  }
  throw new Error('no free /24 in 10.213.0.0/16 on this host');
}

export interface GuestServer {
  serverId: string;
  domainName: string;
  port: PortOnHost;
  volumes: VolumeOnHost[];
  /** Set once `boot` returned. */
  result?: BootResult;
}

export interface QemuHarness {
  runId: string;
  hypervisor: Hypervisor;
  compute: ComputeHostActivities;
  storage: StorageHostActivities;
  /** The run's NAT network (created by the first boot, removed with the last server). */
  network: HostNetwork;
  images: { kernel: ImageForHost; initrd: ImageForHost; root: ImageForHost };
  /** A server description: the next IP of the run's network, a fresh MAC. Nothing is created. */
  newServer(): GuestServer;
  /** A raw volume in the pool (storage host activity), as the volume of a server. */
  createVolume(sizeGb?: number): Promise<VolumeOnHost>;
  bootRequest(server: GuestServer, extra?: Partial<BootRequest>): BootRequest;
  /** bootServer through the host activity; resolves once libvirt reports the domain running. */
  boot(server: GuestServer, extra?: Partial<BootRequest>): Promise<BootResult>;
  destroy(server: GuestServer): Promise<void>;
  /** Polls the console (readConsole activity) until `pattern` appears; resolves the time it was first seen. */
  waitForConsole(domainName: string, pattern: string | RegExp, timeoutMs?: number): Promise<{ seenAt: number; text: string }>;
  console(domainName: string): Promise<string>;
  /** Removes whatever of this run is left (domains, volumes, the network, temp files). Idempotent. */
  close(): Promise<void>;
}

export async function openQemuHarness(opts: { log?: Logger; bootTimeoutMs?: number } = {}): Promise<QemuHarness> {
  const log = opts.log ?? silentLogger;
  const runId = randomBytes(3).toString('hex');
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), `stratus-qemu-${runId}-`));
  const hypervisor = await openHypervisor(QEMU_URI);
  fs.mkdirSync(TEST_POOL_DIR, { recursive: true });
  await hypervisor.ensurePool(TEST_POOL, TEST_POOL_DIR);
  const { ensureImageCached } = createImageHostActivities({ cacheDir: path.join(tmp, 'images'), log, fetch: guestFetch });
  const compute = createComputeHostActivities({
    hostName: os.hostname(),
    storagePool: TEST_POOL,
    hypervisor,
    overrides: {},
    ensureImageCached,
    consoleDir: path.join(tmp, 'console'),
    domainType: domainTypeFor(hypervisor),
    log,
    ...(opts.bootTimeoutMs ? { bootTimeoutMs: opts.bootTimeoutMs } : {}),
  });
  const storage = createStorageHostActivities({ hypervisor, storagePool: TEST_POOL, ensureImageCached, log });
  const octet = freeSubnet();
  const hex = `q${runId}`;
  const network: HostNetwork = {
    networkId: `${runId}00-0000-4000-8000-000000000000`,
    libvirtName: `stratus-${hex}`,
    bridge: `stb-${hex}`,
    cidr: `10.213.${octet}.0/24`,
    gatewayIp: `10.213.${octet}.1`,
    prefix: 24,
    dhcpStart: `10.213.${octet}.10`,
    dhcpEnd: `10.213.${octet}.250`,
  };
  const images = { kernel: guestImage('kernel'), initrd: guestImage('initrd'), root: guestImage('root') };
  const servers: GuestServer[] = [];
  const volumes: string[] = [];
  let next = 0;

  const harness: QemuHarness = {
    runId,
    hypervisor,
    compute,
    storage,
    network,
    images,
    newServer() {
      const n = next++;
      const serverId = `${runId}${n.toString(16).padStart(2, '0')}-0000-4000-8000-000000000000`;
      const mac = `52:54:00:${runId.slice(0, 2)}:${runId.slice(2, 4)}:${n.toString(16).padStart(2, '0')}`;
      const server: GuestServer = {
        serverId,
        domainName: `stratus-${serverId}`,
        port: { portId: `port-${serverId}`, mac, ip: `10.213.${octet}.${50 + n}`, network },
        volumes: [],
      };
      servers.push(server);
      return server;
    },
    async createVolume(sizeGb = 1) {
      const volumeId = `${runId}${randomBytes(13).toString('hex')}`;
      const poolVolume = poolVolumeFor(volumeId);
      volumes.push(poolVolume);
      await storage.createVolume({ volumeId, poolVolume, sizeGb });
      return { volumeId, poolVolume, serial: serialFor(volumeId), target: 'vdb' };
    },
    bootRequest(server, extra = {}) {
      return {
        serverId: server.serverId,
        domainName: server.domainName,
        vcpus: 1,
        ramMb: 128,
        rootDiskGb: 1,
        image: images.root,
        kernel: images.kernel,
        initrd: images.initrd,
        ports: [server.port],
        volumes: server.volumes,
        ...extra,
      };
    },
    async boot(server, extra) {
      server.result = await compute.bootServer(harness.bootRequest(server, extra));
      return server.result;
    },
    async destroy(server) {
      await compute.destroyServer({ serverId: server.serverId, domainName: server.domainName, ports: [server.port] });
    },
    console: (domainName) => compute.readConsole({ domainName, maxBytes: 1024 * 1024 }),
    async waitForConsole(domainName, pattern, timeoutMs = 60_000) {
      const deadline = Date.now() + timeoutMs;
      const found = (text: string): boolean => (typeof pattern === 'string' ? text.includes(pattern) : pattern.test(text));
      for (;;) {
        const text = await harness.console(domainName);
        if (found(text)) return { seenAt: performance.now(), text };
        if (Date.now() > deadline) {
          throw new Error(`${domainName}: '${String(pattern)}' not on the console within ${timeoutMs / 1000} s; console ends with:\n${text.slice(-2000)}`);
        }
        await new Promise((r) => setTimeout(r, 25));
      }
    },
    async close() {
      const errors: unknown[] = [];
      const attempt = async (fn: () => Promise<unknown>) => {
        try {
          await fn();
        } catch (err) {
          errors.push(err);
        }
      };
      for (const s of servers.splice(0)) await attempt(() => harness.destroy(s));
      for (const v of volumes.splice(0)) await attempt(() => hypervisor.deleteVolume(TEST_POOL, v));
      // the network goes with its last server; this is the safety net after a failed test
      await attempt(() => createNetworkHost({ hypervisor, log }).removeNetworkIfUnused(network));
      await attempt(() => hypervisor.close());
      fs.rmSync(tmp, { recursive: true, force: true });
      if (errors.length > 0) throw errors[0];
    },
  };
  return harness;
}

/** Names this run left on the host (domains, pool volumes, networks), for "nothing leaked" checks. */
export async function leftovers(h: QemuHarness): Promise<string[]> {
  const mine = (name: string) => name.includes(h.runId);
  const [domains, vols, nets] = await Promise.all([h.hypervisor.listDomains(), h.hypervisor.listVolumes(TEST_POOL), h.hypervisor.listNetworks()]);
  return [...domains.filter(mine).map((d) => `domain ${d}`), ...vols.map((v) => v.name).filter(mine).map((v) => `volume ${v}`), ...nets.filter(mine).map((n) => `network ${n}`)];
}

/** Whether a Linux network device (e.g. a bridge) exists on this host. */
export function linkExists(name: string): boolean {
  return fs.existsSync(path.join('/sys/class/net', name));
}

/** One ICMP echo (`ping -c1 -W1`); resolves the round trip in ms, or undefined when there was no answer. */
export async function pingOnce(ip: string): Promise<number | undefined> {
  try {
    const { stdout } = await run('ping', ['-c1', '-W1', '-n', ip]);
    const m = /time=([\d.]+) ms/.exec(stdout);
    return m ? Number(m[1]) : 0;
  } catch {
    return undefined;
  }
}

/** The root overlay of a server, by the compute activities' naming. */
export const rootVolumeOf = (server: GuestServer): string => rootVolumeFor(server.serverId);

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? (s[mid] as number) : ((s[mid - 1] as number) + (s[mid] as number)) / 2;
}
