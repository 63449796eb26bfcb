/**
 * The host agent's activities (compute, network, storage) called directly against libvirt's test
 * driver (test:///default: no daemon, no Temporal needed). `ensureImageCached` is a stub that writes a
 * small file into a temp dir, as the image cache would.
 *
 * test:///default keeps ONE state per process, shared with other test files in this jest worker:
 * every name carries a random suffix, and "nothing leaked" compares censuses taken before and after.
 */
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ApplicationFailure } from '@temporalio/common';
import { createComputeHostActivities, domainTypeFor, rootVolumeFor } from '../../activities/compute/host';
import type { BootRequest, ImageForHost, PortOnHost } from '../../activities/compute/types';
import { FaultPlan, InjectedTransientFault, toActivityFailure } from '../../activities/fault-injection';
import { createNetworkHost, createNetworkHostActivities, domainNetworks } from '../../activities/network/host';
import type { HostNetwork } from '../../activities/network/types';
import { createStorageHostActivities, imageVirtualSizeBytes } from '../../activities/storage/host';
import { poolVolumeFor, serialFor } from '../../activities/storage/types';
import { InvalidInput } from '../../core/errors';
import { silentLogger } from '../../core/log';
import { LibvirtError, openHypervisor, VirErr, type Hypervisor } from '../../libvirt';
import { faultPoint, withFaults } from '../../libvirt/faulty-hypervisor';
import { census } from '../support/libvirt-census';

const POOL = 'default-pool'; // predefined by the test driver
const GiB = 1024 ** 3;
const run = randomBytes(3).toString('hex');

let h: Hypervisor;
let tmp: string;
let consoleDir: string;
const pulls: string[] = [];

/** The stub image cache: `<tmp>/cache/<sha256>`, raw bytes or a qcow2 header declaring `virtualBytes`. */
async function ensureImageCached(image: ImageForHost): Promise<{ path: string }> {
  pulls.push(image.id);
  const file = path.join(tmp, 'cache', image.checksum);
  if (!fs.existsSync(file)) {
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.writeFileSync(file, contentOf(image));
  }
  return { path: file };
}

const virtualSizes = new Map<string, number>();
function contentOf(image: ImageForHost): Buffer {
  if (image.diskFormat === 'raw') return Buffer.alloc(image.sizeBytes, 0x5a);
  const header = Buffer.alloc(image.sizeBytes);
  header.writeUInt32BE(0x514649fb, 0); // QFI\xfb
  header.writeUInt32BE(3, 4); // version
  header.writeBigUInt64BE(BigInt(virtualSizes.get(image.id) ?? GiB), 24);
  return header;
}

function makeImage(format: 'raw' | 'qcow2' = 'raw', virtualBytes?: number): ImageForHost {
  const id = randomUUID();
  if (virtualBytes !== undefined) virtualSizes.set(id, virtualBytes);
  return {
    id,
    checksum: createHash('sha256').update(id).digest('hex'),
    sizeBytes: format === 'raw' ? 64 * 1024 : 4096,
    diskFormat: format,
    downloadUrl: `http://127.0.0.1:1/v1/images/${id}/file?sig=x`,
  };
}

let netCounter = 0;
function makeNetwork(): HostNetwork {
  const hex = randomBytes(4).toString('hex');
  const octet = 100 + (netCounter++ % 100);
  return {
    networkId: `${hex}-0000-4000-8000-000000000000`,
    libvirtName: `stratus-${hex}`,
    bridge: `stb-${hex}`,
    cidr: `10.${octet}.0.0/24`,
    gatewayIp: `10.${octet}.0.1`,
    prefix: 24,
    dhcpStart: `10.${octet}.0.10`,
    dhcpEnd: `10.${octet}.0.250`,
  };
}

function mac(): string {
  const b = randomBytes(3).toString('hex').match(/../g) ?? [];
  return `52:54:00:${b.join(':')}`;
}

let ipCounter = 10;
function port(network: HostNetwork): PortOnHost {
  const ip = network.gatewayIp.replace(/\.1$/, `.${ipCounter++}`);
  return { portId: randomUUID(), mac: mac(), ip, network };
}

function bootRequest(extra: Partial<BootRequest> = {}): BootRequest {
  const serverId = randomUUID();
  return {
    serverId,
    domainName: `stratus-${serverId}`,
    vcpus: 1,
    ramMb: 128,
    rootDiskGb: 1,
    image: makeImage(),
    ports: [port(makeNetwork())],
    volumes: [],
    ...extra,
  };
}

function computeOn(hypervisor: Hypervisor, extra: { bootTimeoutMs?: number; stopTimeoutMs?: number } = {}) {
  return createComputeHostActivities({
    hostName: `it-${run}`,
    storagePool: POOL,
    hypervisor,
    overrides: {},
    ensureImageCached,
    consoleDir,
    domainType: domainTypeFor(hypervisor),
    log: silentLogger,
    ...extra,
  });
}
const storageOn = (hypervisor: Hypervisor) => createStorageHostActivities({ hypervisor, storagePool: POOL, ensureImageCached, log: silentLogger });

async function failure(p: Promise<unknown>): Promise<unknown> {
  try {
    await p;
  } catch (e) {
    return e;
  }
  throw new Error('expected a rejection');
}

let compute: ReturnType<typeof computeOn>;
let storage: ReturnType<typeof storageOn>;

beforeAll(async () => {
  h = await openHypervisor('test:///default');
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'stratus-host-it-'));
  consoleDir = path.join(tmp, 'console');
  compute = computeOn(h);
  storage = storageOn(h);
});

afterAll(async () => {
  await h?.close();
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

describe('bootServer / destroyServer', () => {
  it('boots: domain running on a qcow2 overlay of the cached image, NIC on its network, DHCP reserved, volume by serial', async () => {
    const before = await census(h, POOL);
    const volumeId = randomUUID();
    await storage.createVolume({ volumeId, poolVolume: poolVolumeFor(volumeId), sizeGb: 1 });
    const req = bootRequest({ volumes: [{ volumeId, poolVolume: poolVolumeFor(volumeId), serial: serialFor(volumeId), target: 'vdb' }] });
    const [p] = req.ports as [PortOnHost];

    const result = await compute.bootServer(req);

    const cached = path.join(tmp, 'cache', req.image.checksum);
    expect(result).toEqual({
      domainName: req.domainName,
      rootVolume: `root-${req.serverId}`,
      rootDiskPath: `/${POOL}/root-${req.serverId}`,
      backingPath: cached,
      consoleLogPath: path.join(consoleDir, `${req.domainName}.log`),
    });
    expect(await h.domainState(req.domainName)).toBe('running');

    // root disk: qcow2 overlay backed by the cached file, 1 GiB (rootDiskGb > the 64 KiB image)
    const root = (await h.listVolumes(POOL)).find((v) => v.name === rootVolumeFor(req.serverId));
    expect(root).toEqual({
      name: rootVolumeFor(req.serverId),
      path: result.rootDiskPath,
      capacityBytes: GiB,
      format: 'qcow2',
      backingPath: cached,
      backingFormat: 'raw',
    });

    // disks by serial: root on vda, the volume on vdb
    const disks = await h.domainDisks(req.domainName, { inactive: true });
    expect(disks.map((d) => [d.serial, d.target, d.path, d.format])).toEqual([
      ['root', 'vda', result.rootDiskPath, 'qcow2'],
      [serialFor(volumeId), 'vdb', `/${POOL}/${poolVolumeFor(volumeId)}`, 'raw'],
    ]);
    expect((await h.domainDisks(req.domainName)).map((d) => d.serial)).toEqual(['root', serialFor(volumeId)]); // live too: defined with it

    // NIC with the port's MAC on the port's libvirt network; the network exists, with the reservation
    const xml = await h.domainXml(req.domainName, { inactive: true });
    expect(domainNetworks(xml)).toEqual([p.network.libvirtName]);
    expect(xml).toContain(`<mac address='${p.mac}'/>`);
    expect(await h.listNetworks()).toContain(p.network.libvirtName);
    expect(await h.networkDhcpHosts(p.network.libvirtName)).toEqual([{ mac: p.mac, ip: p.ip, name: req.domainName }]);

    // the whole difference to before: one domain, two volumes, one network, one reservation
    const after = await census(h, POOL);
    expect(after.domains.filter((d) => !before.domains.includes(d))).toEqual([req.domainName]);
    expect(after.volumes.filter((v) => !before.volumes.includes(v)).sort()).toEqual([poolVolumeFor(volumeId), rootVolumeFor(req.serverId)].sort());
    expect(after.networks.filter((n) => !before.networks.includes(n))).toEqual([p.network.libvirtName]);
    expect(after.dhcpHosts.filter((x) => !before.dhcpHosts.includes(x))).toEqual([`${p.network.libvirtName} ${p.mac} ${p.ip}`]);

    // boot again (a retried or re-run activity): same single domain, disks and reservation
    expect(await compute.bootServer(req)).toEqual(result);
    expect(await census(h, POOL)).toEqual(after);
    expect(await h.domainState(req.domainName)).toBe('running');

    // destroy: domain, root disk, reservation and the now unused network gone; the volume stays
    await compute.destroyServer({ serverId: req.serverId, domainName: req.domainName, ports: req.ports });
    await compute.destroyServer({ serverId: req.serverId, domainName: req.domainName, ports: req.ports }); // twice: fine
    const destroyed = await census(h, POOL);
    expect(destroyed).toEqual({ ...before, volumes: [...before.volumes, poolVolumeFor(volumeId)].sort() });
    await storage.deleteVolume({ poolVolume: poolVolumeFor(volumeId) });
    expect(await census(h, POOL)).toEqual(before);
  });

  it('destroyServer of a server that never existed is a no-op', async () => {
    const before = await census(h, POOL);
    const req = bootRequest();
    await compute.destroyServer({ serverId: req.serverId, domainName: req.domainName, ports: req.ports });
    expect(await census(h, POOL)).toEqual(before);
  });

  it('root disk capacity is the qcow2 image virtual size when larger than rootDiskGb; backing format follows the image', async () => {
    const image = makeImage('qcow2', 5 * GiB);
    const req = bootRequest({ image, rootDiskGb: 2 });
    const result = await compute.bootServer(req);
    expect(await imageVirtualSizeBytes(result.backingPath, 'qcow2')).toBe(5 * GiB);
    expect(await h.volumeInfo(POOL, result.rootVolume)).toMatchObject({ capacityBytes: 5 * GiB, format: 'qcow2', backingFormat: 'qcow2', backingPath: result.backingPath });
    await compute.destroyServer(req);
  });

  it('a server without ports boots and is destroyed', async () => {
    const before = await census(h, POOL);
    const req = bootRequest({ ports: [] });
    await compute.bootServer(req);
    expect(domainNetworks(await h.domainXml(req.domainName))).toEqual([]);
    await compute.destroyServer(req);
    expect(await census(h, POOL)).toEqual(before);
  });

  it('two ports on one network: both reserved (the hostname with the first only); a shared network outlives its first server', async () => {
    const before = await census(h, POOL);
    const net = makeNetwork();
    const a = bootRequest({ ports: [port(net), port(net)] });
    const b = bootRequest({ ports: [port(net)] });
    await compute.bootServer(a);
    await compute.bootServer(b);
    const [a1, a2] = a.ports as [PortOnHost, PortOnHost];
    const [b1] = b.ports as [PortOnHost];
    expect(await h.networkDhcpHosts(net.libvirtName)).toEqual([
      { mac: a1.mac, ip: a1.ip, name: a.domainName },
      { mac: a2.mac, ip: a2.ip },
      { mac: b1.mac, ip: b1.ip, name: b.domainName },
    ]);

    await compute.destroyServer(a);
    expect(await h.listNetworks()).toContain(net.libvirtName); // b still on it
    expect(await h.networkDhcpHosts(net.libvirtName)).toEqual([{ mac: b1.mac, ip: b1.ip, name: b.domainName }]);
    await compute.destroyServer(b);
    expect(await census(h, POOL)).toEqual(before);
  });

  it('boot and destroy of the same server run one at a time (a late boot attempt cannot outlive the destroy)', async () => {
    const before = await census(h, POOL);
    const req = bootRequest();
    const booting = compute.bootServer(req);
    const destroying = compute.destroyServer(req); // queued behind the boot
    await booting;
    await destroying;
    expect(await census(h, POOL)).toEqual(before);
  });

  it('concurrent boots and destroys of many servers on one network leave nothing behind', async () => {
    const before = await census(h, POOL);
    const net = makeNetwork();
    const reqs = Array.from({ length: 12 }, () => bootRequest({ ports: [port(net)] }));
    await Promise.all(reqs.map((r) => compute.bootServer(r)));
    expect((await h.networkDhcpHosts(net.libvirtName)).length).toBe(12);
    // destroys interleaved with new boots on the same network
    const more = Array.from({ length: 4 }, () => bootRequest({ ports: [port(net)] }));
    await Promise.all([...reqs.map((r) => compute.destroyServer(r)), ...more.map((r) => compute.bootServer(r))]);
    expect((await h.networkDhcpHosts(net.libvirtName)).length).toBe(4);
    for (const r of more) expect(await h.domainState(r.domainName)).toBe('running');
    await Promise.all(more.map((r) => compute.destroyServer(r)));
    expect(await census(h, POOL)).toEqual(before);
  });

  it('a stale reservation of the same IP for another MAC is replaced', async () => {
    const net = makeNetwork();
    const req = bootRequest({ ports: [port(net)] });
    const [p] = req.ports as [PortOnHost];
    const networks = createNetworkHost({ hypervisor: h, log: silentLogger });
    await networks.ensureNetwork(net);
    await networks.addDhcpHost(net, { mac: mac(), ip: p.ip, name: 'left-over' });
    await compute.bootServer(req);
    expect(await h.networkDhcpHosts(net.libvirtName)).toEqual([{ mac: p.mac, ip: p.ip, name: req.domainName }]);
    await compute.destroyServer(req);
    expect(await h.listNetworks()).not.toContain(net.libvirtName);
  });

  it('a reservation with nothing in its way is added without reading the network (a boot stays O(1) in reservations)', async () => {
    const net = makeNetwork();
    let reads = 0;
    // The real hypervisor, counting the reads of every reservation (the network's whole XML).
    const counting = new Proxy(h, {
      get: (target, prop, receiver) => {
        if (prop === 'networkDhcpHosts') reads++;
        const value = Reflect.get(target, prop, receiver) as unknown;
        return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
      },
    });
    const networks = createNetworkHost({ hypervisor: counting, log: silentLogger });
    await networks.ensureNetwork(net);
    const ip = (last: number) => net.gatewayIp.replace(/\.1$/, `.${last}`);
    const first = { mac: mac(), ip: ip(50), name: 'first' };
    await networks.addDhcpHost(net, first);
    await networks.addDhcpHost(net, { mac: mac(), ip: ip(51), name: 'second' });
    await networks.addDhcpHost(net, first); // already so: a no-op
    expect(reads).toBe(0);
    const stale = { mac: mac(), ip: ip(50), name: 'first-again' };
    await networks.addDhcpHost(net, stale); // the IP is held by another MAC: read, remove it, add
    expect(reads).toBe(1);
    expect((await h.networkDhcpHosts(net.libvirtName)).map((r) => r.ip).sort()).toEqual([ip(50), ip(51)]);
    expect((await h.networkDhcpHosts(net.libvirtName)).find((r) => r.ip === ip(50))?.mac).toBe(stale.mac);
    await networks.removeDhcpHost(net, stale.mac);
    await networks.removeDhcpHost(net, (await h.networkDhcpHosts(net.libvirtName))[0]!.mac);
    expect(await networks.removeNetworkIfUnused(net)).toBe(true);
  });

  it('an invalid spec is a non-retryable HypervisorRejected failure', async () => {
    const req = bootRequest();
    (req.ports[0] as PortOnHost).mac = '01:00:5e:00:00:01'; // multicast: the driver refuses it before libvirt
    const err = await failure(compute.bootServer(req));
    expect(err).toBeInstanceOf(ApplicationFailure);
    expect(err).toMatchObject({ type: 'HypervisorRejected', nonRetryable: true });
    await compute.destroyServer(req);
  });

  it('a missing volume is a non-retryable VolumeNotFound failure', async () => {
    const before = await census(h, POOL);
    const volumeId = randomUUID();
    const req = bootRequest({ volumes: [{ volumeId, poolVolume: poolVolumeFor(volumeId), serial: serialFor(volumeId), target: 'vdb' }] });
    const err = await failure(compute.bootServer(req));
    expect(err).toMatchObject({ type: 'VolumeNotFound', nonRetryable: true });
    await compute.destroyServer(req);
    expect(await census(h, POOL)).toEqual(before);
  });
});

describe('fault injection', () => {
  it('a fatal fault at hypervisor.startDomain fails boot after the domain and disks exist; destroyServer leaves a clean census', async () => {
    const plan = new FaultPlan().failAt('hypervisor.startDomain', 'fatal');
    const faulty = computeOn(withFaults(h, plan));
    const before = await census(h, POOL);
    const req = bootRequest();

    const err = await failure(faulty.bootServer(req));
    expect(err).toBeInstanceOf(ApplicationFailure);
    expect(err).toMatchObject({ type: 'InjectedFault', nonRetryable: true, message: 'injected fatal fault at hypervisor.startDomain' });
    expect(plan.fired('hypervisor.startDomain')).toBe(1);
    // the half-success the saga must undo
    expect(await h.domainState(req.domainName)).toBe('shutoff');
    expect((await h.listVolumes(POOL)).map((v) => v.name)).toContain(rootVolumeFor(req.serverId));
    expect((await census(h, POOL)).dhcpHosts.length).toBe(before.dhcpHosts.length + 1);

    await faulty.destroyServer(req); // the plan is still armed: destroy does not start anything
    expect(await census(h, POOL)).toEqual(before);
  });

  it('a retryable fault fails one attempt with a plain error; the rerun completes the boot without duplicates', async () => {
    const plan = new FaultPlan().failAt('hypervisor.startDomain', 'retryable', 1);
    const faulty = computeOn(withFaults(h, plan));
    const before = await census(h, POOL);
    const req = bootRequest();

    const err = await failure(faulty.bootServer(req));
    expect(err).toBeInstanceOf(InjectedTransientFault);
    expect(err).not.toBeInstanceOf(ApplicationFailure);
    expect(plan.armedPoints()).toEqual([]);

    await faulty.bootServer(req);
    expect(await h.domainState(req.domainName)).toBe('running');
    const after = await census(h, POOL);
    expect(after.domains.length).toBe(before.domains.length + 1);
    expect(after.volumes.length).toBe(before.volumes.length + 1);
    expect(after.dhcpHosts.length).toBe(before.dhcpHosts.length + 1);
    await faulty.destroyServer(req);
    expect(await census(h, POOL)).toEqual(before);
  });

  it('faults at every step of boot: each partial run is undone by destroyServer, or finished by a rerun', async () => {
    const points = ['createOverlayVolume', 'defineNetwork', 'startNetwork', 'volumeInfo', 'defineDomain', 'startDomain', 'domainState'] as const;
    for (const point of points) {
      for (const ending of ['destroy', 'rerun'] as const) {
        const plan = new FaultPlan();
        const faulty = computeOn(withFaults(h, plan));
        const before = await census(h, POOL);
        const volumeId = randomUUID();
        await storage.createVolume({ volumeId, poolVolume: poolVolumeFor(volumeId), sizeGb: 1 });
        const req = bootRequest({ volumes: [{ volumeId, poolVolume: poolVolumeFor(volumeId), serial: serialFor(volumeId), target: 'vdb' }] });
        plan.failAt(faultPoint(point), 'retryable', 1);
        await expect(faulty.bootServer(req)).rejects.toBeInstanceOf(InjectedTransientFault);
        if (ending === 'rerun') {
          await faulty.bootServer(req);
          expect(await h.domainState(req.domainName)).toBe('running');
          expect((await h.domainDisks(req.domainName)).map((d) => d.serial)).toEqual(['root', serialFor(volumeId)]);
        }
        await faulty.destroyServer(req);
        await storage.deleteVolume({ poolVolume: poolVolumeFor(volumeId) });
        expect({ point, ending, census: await census(h, POOL) }).toEqual({ point, ending, census: before });
      }
    }
  });

  it('withFaults checks hypervisor.<method> before every method and delegates otherwise', async () => {
    const plan = new FaultPlan();
    const faulty = withFaults(h, plan);
    expect(faulty.capabilities).toEqual(h.capabilities);
    expect(await faulty.listDomains()).toEqual(await h.listDomains());
    expect(plan.checked('hypervisor.listDomains')).toBe(1);
    plan.failAt('hypervisor.listNetworks', 'retryable', 2);
    await expect(faulty.listNetworks()).rejects.toThrow('injected retryable fault at hypervisor.listNetworks');
    await expect(faulty.listNetworks()).rejects.toBeInstanceOf(InjectedTransientFault);
    expect(await faulty.listNetworks()).toEqual(await h.listNetworks());
    expect(plan.fired('hypervisor.listNetworks')).toBe(2);
    plan.failAt('hypervisor.close', 'fatal');
    await expect(faulty.close()).rejects.toMatchObject({ type: 'InjectedFault', nonRetryable: true });
    plan.clear();
    expect(plan.armedPoints()).toEqual([]);
    expect(plan.checked('hypervisor.listDomains')).toBe(0);
  });
});

describe('error classification', () => {
  it('permanent hypervisor errors become non-retryable HypervisorRejected; transient ones stay as they are', () => {
    const rejected = toActivityFailure(new LibvirtError(VirErr.CONFIG_UNSUPPORTED, 'Unknown architecture nonsense', 'virDomainDefineXML'));
    expect(rejected).toBeInstanceOf(ApplicationFailure);
    expect(rejected).toMatchObject({
      type: 'HypervisorRejected',
      nonRetryable: true,
      message: 'Unknown architecture nonsense',
      details: [{ code: VirErr.CONFIG_UNSUPPORTED, codeName: 'VIR_ERR_CONFIG_UNSUPPORTED', operation: 'virDomainDefineXML' }],
    });
    expect(toActivityFailure(new InvalidInput('mac: bad'))).toMatchObject({ type: 'HypervisorRejected', nonRetryable: true });
    expect(toActivityFailure(new LibvirtError(VirErr.OPERATION_INVALID, 'target in use', 'attachDisk'))).toMatchObject({ type: 'HypervisorRejected' });

    const transient = new LibvirtError(VirErr.INTERNAL_ERROR, 'Unable to connect', 'virDomainCreate');
    expect(toActivityFailure(transient)).toBe(transient);
    const notFound = new LibvirtError(VirErr.NO_DOMAIN, 'not found', 'virDomainLookupByName');
    expect(toActivityFailure(notFound)).toBe(notFound);
    const plain = new Error('socket hang up');
    expect(toActivityFailure(plain)).toBe(plain);
    const app = ApplicationFailure.nonRetryable('x', 'QuotaExceeded');
    expect(toActivityFailure(app)).toBe(app);
  });
});

describe('powerAction / readConsole', () => {
  it('stop, start, reboot; an absent domain is a non-retryable NotFound', async () => {
    const req = bootRequest();
    await compute.bootServer(req);
    const act = (action: 'start' | 'stop' | 'reboot') => compute.powerAction({ domainName: req.domainName, action });
    await act('stop');
    expect(await h.domainState(req.domainName)).toBe('shutoff');
    await act('stop'); // already off
    await act('start');
    expect(await h.domainState(req.domainName)).toBe('running');
    await act('start'); // already running
    await act('reboot');
    expect(await h.domainState(req.domainName)).toBe('running');
    await act('stop');
    await act('reboot'); // off: started
    expect(await h.domainState(req.domainName)).toBe('running');
    await compute.destroyServer(req);
    const err = await failure(act('start'));
    expect(err).toMatchObject({ type: 'NotFound', nonRetryable: true });
  });

  it('readConsole: "" without a log (the test driver writes none); else the tail, not starting inside a UTF-8 character', async () => {
    const req = bootRequest();
    await compute.bootServer(req);
    expect(await compute.readConsole({ domainName: req.domainName })).toBe('');
    expect(await compute.readConsole({ domainName: `stratus-${randomUUID()}` })).toBe('');
    fs.writeFileSync(path.join(consoleDir, `${req.domainName}.log`), 'boot line 1\nStratus marker é\nlogin: ');
    expect(await compute.readConsole({ domainName: req.domainName })).toBe('boot line 1\nStratus marker é\nlogin: ');
    expect(await compute.readConsole({ domainName: req.domainName, maxBytes: 7 })).toBe('login: ');
    expect(await compute.readConsole({ domainName: req.domainName, maxBytes: 10 })).toBe('é\nlogin: ');
    expect(await compute.readConsole({ domainName: req.domainName, maxBytes: 9 })).toBe('\nlogin: '); // half of 'é': skipped
    await expect(compute.readConsole({ domainName: '../etc/passwd' })).rejects.toMatchObject({ nonRetryable: true });
    await compute.destroyServer(req);
    expect(fs.existsSync(path.join(consoleDir, `${req.domainName}.log`))).toBe(false);
  });

  it('readConsoleChunk: what is new since an earlier end; never a character cut in two; the tail when too far behind', async () => {
    const domainName = `stratus-${randomUUID()}`;
    const log = path.join(consoleDir, `${domainName}.log`);
    expect(await compute.readConsoleChunk({ domainName })).toEqual({ output: '', end: 0 });
    fs.writeFileSync(log, 'boot\n');
    const first = await compute.readConsoleChunk({ domainName, maxBytes: 1024 });
    expect(first).toEqual({ output: 'boot\n', end: 5 });
    expect(await compute.readConsoleChunk({ domainName, maxBytes: 1024, since: first.end })).toEqual({ output: '', end: 5 });
    // The guest has written the first byte of 'é' (0xc3 0xa9) only: it waits for the next read.
    fs.appendFileSync(log, Buffer.from([0x61, 0xc3]));
    expect(await compute.readConsoleChunk({ domainName, maxBytes: 1024, since: 5 })).toEqual({ output: 'a', end: 6 });
    fs.appendFileSync(log, Buffer.from([0xa9, 0x0a]));
    expect(await compute.readConsoleChunk({ domainName, maxBytes: 1024, since: 6 })).toEqual({ output: 'é\n', end: 9 });
    // Further behind than maxBytes: the tail, from a character boundary; a since past the end (a new log): the tail.
    expect(await compute.readConsoleChunk({ domainName, maxBytes: 3, since: 0 })).toEqual({ output: 'é\n', end: 9 });
    expect(await compute.readConsoleChunk({ domainName, maxBytes: 2, since: 0 })).toEqual({ output: '\n', end: 9 });
    expect(await compute.readConsoleChunk({ domainName, maxBytes: 1024, since: 100 })).toEqual({ output: 'boot\naé\n', end: 9 });
    await expect(compute.readConsoleChunk({ domainName: '../etc/passwd' })).rejects.toMatchObject({ nonRetryable: true });
    fs.rmSync(log);
  });
});

describe('storage host activities', () => {
  it('create (raw) / attach / detach / delete, each idempotent', async () => {
    const before = await census(h, POOL);
    const server = bootRequest();
    await compute.bootServer(server);
    const volumeId = randomUUID();
    const poolVolume = poolVolumeFor(volumeId);
    const serial = serialFor(volumeId);

    const created = await storage.createVolume({ volumeId, poolVolume, sizeGb: 2 });
    expect(created).toEqual({ path: `/${POOL}/${poolVolume}` });
    expect(await storage.createVolume({ volumeId, poolVolume, sizeGb: 2 })).toEqual(created);
    expect(await h.volumeInfo(POOL, poolVolume)).toEqual({ name: poolVolume, path: created.path, capacityBytes: 2 * GiB, format: 'raw' });

    const attach = { domainName: server.domainName, poolVolume, serial, target: 'vdc' };
    await storage.attachVolume(attach);
    await storage.attachVolume(attach); // already attached
    const disks = await h.domainDisks(server.domainName, { inactive: true }); // test driver: persistent definition
    expect(disks.find((d) => d.serial === serial)).toMatchObject({ path: created.path, target: 'vdc', format: 'raw' });
    expect(disks.filter((d) => d.serial === serial)).toHaveLength(1);
    // the same serial for another volume, or a target in use: refused for good
    const other = randomUUID();
    await storage.createVolume({ volumeId: other, poolVolume: poolVolumeFor(other), sizeGb: 1 });
    expect(await failure(storage.attachVolume({ ...attach, poolVolume: poolVolumeFor(other) }))).toMatchObject({ type: 'HypervisorRejected', nonRetryable: true });
    expect(await failure(storage.attachVolume({ ...attach, poolVolume: poolVolumeFor(other), serial: serialFor(other) }))).toMatchObject({
      type: 'HypervisorRejected',
    });

    await storage.detachVolume({ domainName: server.domainName, serial });
    await storage.detachVolume({ domainName: server.domainName, serial }); // not attached
    await storage.detachVolume({ domainName: `stratus-${randomUUID()}`, serial }); // no such domain
    expect((await h.domainDisks(server.domainName, { inactive: true })).map((d) => d.serial)).toEqual(['root']);

    expect(await failure(storage.attachVolume({ ...attach, domainName: `stratus-${randomUUID()}` }))).toMatchObject({ type: 'NotFound', nonRetryable: true });
    expect(await failure(storage.attachVolume({ ...attach, poolVolume: 'volume-absent' }))).toMatchObject({ type: 'NotFound', nonRetryable: true });

    await storage.deleteVolume({ poolVolume });
    await storage.deleteVolume({ poolVolume }); // absent
    await storage.deleteVolume({ poolVolume: poolVolumeFor(other) });
    await compute.destroyServer(server);
    expect(await census(h, POOL)).toEqual(before);
  });

  it('create from an image: a qcow2 overlay on the cached image, capacity max(sizeGb, image); a rerun pulls nothing', async () => {
    const image = makeImage('qcow2', 3 * GiB);
    const volumeId = randomUUID();
    const poolVolume = poolVolumeFor(volumeId);
    const { path: p } = await storage.createVolume({ volumeId, poolVolume, sizeGb: 1, image });
    const cached = path.join(tmp, 'cache', image.checksum);
    expect(await h.volumeInfo(POOL, poolVolume)).toEqual({
      name: poolVolume,
      path: p,
      capacityBytes: 3 * GiB,
      format: 'qcow2',
      backingPath: cached,
      backingFormat: 'qcow2',
    });
    const pullsBefore = pulls.length;
    expect(await storage.createVolume({ volumeId, poolVolume, sizeGb: 1, image })).toEqual({ path: p });
    expect(pulls.length).toBe(pullsBefore);

    const bigger = poolVolumeFor(randomUUID());
    await storage.createVolume({ volumeId, poolVolume: bigger, sizeGb: 4, image: makeImage('raw') });
    expect(await h.volumeInfo(POOL, bigger)).toMatchObject({ capacityBytes: 4 * GiB, format: 'qcow2', backingFormat: 'raw' });

    // a raw volume of that name exists: the request does not fit it, and cannot be made to
    const clash = await failure(storage.createVolume({ volumeId, poolVolume: bigger, sizeGb: 8 }));
    expect(clash).toMatchObject({ type: 'HypervisorRejected', nonRetryable: true });

    await storage.deleteVolume({ poolVolume });
    await storage.deleteVolume({ poolVolume: bigger });
  });
});

describe('network host activities', () => {
  it('ensureNetwork is idempotent and keeps reservations; removeNetworkIfUnused keeps a network a domain is on', async () => {
    const acts = createNetworkHostActivities({ hypervisor: h, log: silentLogger });
    const net = makeNetwork();
    await acts.ensureNetwork(net);
    const m = mac();
    const ip = net.gatewayIp.replace(/\.1$/, '.3');
    await acts.addDhcpHost(net, { mac: m, ip, name: 'vm-a' });
    await acts.ensureNetwork(net);
    expect(await h.networkDhcpHosts(net.libvirtName)).toEqual([{ mac: m, ip, name: 'vm-a' }]);
    expect(await acts.removeNetworkIfUnused(net)).toBe(false); // a reservation remains
    await acts.removeDhcpHost(net, m);
    await acts.removeDhcpHost(net, m);

    // no reservation, but a domain with an interface on it
    const dom = `it-${run}-netuser`;
    await h.defineDomain({ name: dom, vcpus: 1, memoryMb: 64, domainType: 'test', disks: [], interfaces: [{ network: net.libvirtName, mac: mac() }] });
    expect(await acts.removeNetworkIfUnused(net)).toBe(false);
    await h.undefineDomain(dom);
    expect(await acts.removeNetworkIfUnused(net)).toBe(true);
    expect(await acts.removeNetworkIfUnused(net)).toBe(false); // absent
    await acts.removeDhcpHost(net, m); // absent network: fine
    expect(await h.listNetworks()).not.toContain(net.libvirtName);
    expect(await failure(acts.addDhcpHost(net, { mac: m, ip }))).toMatchObject({ code: VirErr.NO_NETWORK });
  });
});

describe('census', () => {
  it('lists domains, volumes, networks and DHCP hosts sorted; `only` filters by name', async () => {
    const req = bootRequest();
    await compute.bootServer(req);
    const [p] = req.ports as [PortOnHost];
    const mine = await census(h, POOL, { only: (n) => n.includes(req.serverId) || n === p.network.libvirtName });
    expect(mine).toEqual({
      domains: [req.domainName],
      volumes: [rootVolumeFor(req.serverId)],
      networks: [p.network.libvirtName],
      dhcpHosts: [`${p.network.libvirtName} ${p.mac} ${p.ip}`],
    });
    const all = await census(h, POOL);
    for (const list of Object.values(all)) expect(list).toEqual([...list].sort());
    await compute.destroyServer(req);
  });
});
