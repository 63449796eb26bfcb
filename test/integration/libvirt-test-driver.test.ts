/**
 * The libvirt layer against libvirt's test driver (test:///default, inside libvirt.so.0: no daemon).
 * test:///default keeps ONE state per process, shared with any other test file that runs in this
 * jest worker, so every name here carries a random suffix and no test assumes an empty hypervisor.
 */
import { randomBytes } from 'node:crypto';
import { MissingDependency } from '../../core/errors';
import { LibvirtError, VirErr, openHypervisor, type DomainSpec, type Hypervisor } from '../../libvirt';
import { loadLibvirt } from '../../libvirt/ffi';
import { parseXml, path as xpath, textOf } from '../../libvirt/xml';
import { withEventLoopLag } from '../support/event-loop-lag';

const POOL = 'default-pool'; // predefined by the test driver, at /default-pool
const run = randomBytes(3).toString('hex');
const nm = (base: string): string => `it-${run}-${base}`;

function domainSpec(name: string, extra: Partial<DomainSpec> = {}): DomainSpec {
  return {
    name,
    vcpus: 1,
    memoryMb: 128,
    domainType: 'test',
    disks: [{ path: `/${POOL}/${name}-root.qcow2`, format: 'qcow2', target: 'vda', serial: 'root' }],
    interfaces: [{ network: 'default', mac: '52:54:00:12:34:56' }],
    ...extra,
  };
}

async function rejection(p: Promise<unknown>): Promise<LibvirtError> {
  try {
    await p;
  } catch (e) {
    expect(e).toBeInstanceOf(LibvirtError);
    return e as LibvirtError;
  }
  throw new Error('expected a rejection');
}

let h: Hypervisor;

beforeAll(async () => {
  h = await openHypervisor('test:///default');
});

afterAll(async () => {
  await h?.close();
});

describe('connection', () => {
  it('reports capabilities decided from the driver type', () => {
    expect(h.capabilities).toEqual({ driver: 'TEST', hotplugDisks: false, liveDhcpHostUpdate: true, maxConcurrentCalls: 8 });
  });

  it('hostInfo returns sane numbers', async () => {
    const info = await h.hostInfo(POOL);
    expect(info.hostname.length).toBeGreaterThan(0);
    expect(info.vcpus).toBeGreaterThan(0);
    expect(info.ramMb).toBeGreaterThan(0);
    expect(info.diskGb).toBe(100); // the test driver's default-pool: 100 GiB
    expect(info.libvirtVersion).toMatch(/^\d+\.\d+\.\d+$/);
    expect(info.uri).toBe('test:///default');
  });

  it('opening a bogus URI throws a clear LibvirtError', async () => {
    const err = await rejection(openHypervisor('bogus:///x'));
    expect(err.code).toBeGreaterThan(0);
    expect(err.message).toMatch(/^cannot open hypervisor connection 'bogus:\/\/\/x': /);
    expect(err.operation).toBe('virConnectOpen');
  });

  it('a missing libvirt.so.0 is a one-line MissingDependency', () => {
    let err: unknown;
    try {
      loadLibvirt('libvirt-not-here.so.0');
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(MissingDependency);
    expect((err as Error).message).toBe(
      'libvirt-not-here.so.0 not found: install it with `apt-get install libvirt0` (Debian/Ubuntu)',
    );
  });

  it('a closed hypervisor rejects calls; close is idempotent', async () => {
    const other = await openHypervisor('test:///default');
    await other.close();
    await other.close();
    await expect(other.listDomains()).rejects.toThrow(/closed/);
  });
});

describe('domains', () => {
  it('define / start / state / destroy / undefine', async () => {
    const name = nm('dom');
    expect(await h.domainState(name)).toBeUndefined();
    await h.defineDomain(domainSpec(name));
    expect(await h.listDomains()).toContain(name);
    expect(await h.domainState(name)).toBe('shutoff');
    await h.startDomain(name);
    await h.startDomain(name); // idempotent
    expect(await h.domainState(name)).toBe('running');
    await h.destroyDomain(name);
    expect(await h.domainState(name)).toBe('shutoff');
    await h.destroyDomain(name); // already off: no error
    await h.undefineDomain(name);
    expect(await h.domainState(name)).toBeUndefined();
    expect(await h.listDomains()).not.toContain(name);
  });

  it('redefining an existing domain replaces its definition (idempotent define)', async () => {
    const name = nm('redef');
    await h.defineDomain(domainSpec(name));
    await h.defineDomain(domainSpec(name, { vcpus: 3 }));
    const xml = parseXml(await h.domainXml(name, { inactive: true }));
    expect(textOf(xpath(xml, 'vcpu'))).toBe('3');
    await h.undefineDomain(name);
  });

  it('graceful stop, reboot, and undefine of a running domain leave nothing behind', async () => {
    const name = nm('stop');
    await h.defineDomain(domainSpec(name, { serialLogPath: '/tmp/stratus-it-console.log' }));
    expect(await h.stopDomain(name)).toBe(true); // already off
    await h.startDomain(name);
    await h.rebootDomain(name);
    expect(await h.stopDomain(name, { timeoutMs: 5000 })).toBe(true);
    expect(await h.domainState(name)).toBe('shutoff');
    await h.startDomain(name);
    await h.undefineDomain(name); // destroys first
    expect(await h.domainState(name)).toBeUndefined();
  });

  it('errors: starting an absent domain throws LibvirtError with code and message', async () => {
    const err = await rejection(h.startDomain(nm('absent')));
    expect(err.code).toBe(VirErr.NO_DOMAIN);
    expect(err.codeName).toBe('VIR_ERR_NO_DOMAIN');
    expect(err.isNotFound).toBe(true);
    expect(err.message).toMatch(/not found/i);
  });

  it('errors: undefine / destroy of an absent domain are no-ops', async () => {
    await expect(h.undefineDomain(nm('absent'))).resolves.toBeUndefined();
    await expect(h.destroyDomain(nm('absent'))).resolves.toBeUndefined();
  });

  it('errors: libvirt rejects what it cannot define, with its own code and message', async () => {
    const name = nm('badarch');
    const err = await rejection(h.defineDomain(domainSpec(name, { arch: 'nonsense' })));
    expect(err.code).toBe(VirErr.CONFIG_UNSUPPORTED);
    expect(err.message).toMatch(/Unknown architecture nonsense/);
    expect(err.operation).toBe('virDomainDefineXML');
    expect(await h.domainState(name)).toBeUndefined();
  });
});

describe('storage', () => {
  it('ensurePool finds the test driver pool', async () => {
    const pool = await h.ensurePool(POOL);
    expect(pool).toMatchObject({ name: POOL, path: `/${POOL}`, capacityBytes: 100 * 2 ** 30 });
    const err = await rejection(h.ensurePool(nm('nopool')));
    expect(err.code).toBe(VirErr.NO_STORAGE_POOL);
  });

  it('ensurePool defines, builds and starts a dir pool when given a path', async () => {
    const name = nm('pool');
    const pool = await h.ensurePool(name, `/tmp/${name}`);
    expect(pool.name).toBe(name);
    expect(pool.path).toBe(`/tmp/${name}`);
    expect(await h.ensurePool(name, `/tmp/${name}`)).toMatchObject({ name }); // idempotent
  });

  it('raw volume and qcow2 overlay with a backing store', async () => {
    const base = nm('base.raw');
    const overlay = nm('overlay.qcow2');
    const created = await h.createVolume(POOL, { name: base, capacityBytes: 2 ** 20, format: 'raw' });
    expect(created).toEqual({ name: base, path: `/${POOL}/${base}`, capacityBytes: 2 ** 20, format: 'raw' });
    // idempotent, and a conflicting spec is refused
    expect(await h.createVolume(POOL, { name: base, capacityBytes: 2 ** 20, format: 'raw' })).toEqual(created);
    const conflict = await rejection(h.createVolume(POOL, { name: base, capacityBytes: 2 ** 20, format: 'qcow2' }));
    expect(conflict.code).toBe(VirErr.STORAGE_VOL_EXIST);

    const basePath = await h.volumePath(POOL, base);
    const ov = await h.createOverlayVolume(POOL, { name: overlay, backingPath: basePath, backingFormat: 'raw', capacityBytes: 2 ** 21 });
    expect(ov).toEqual({
      name: overlay,
      path: `/${POOL}/${overlay}`,
      capacityBytes: 2 ** 21,
      format: 'qcow2',
      backingPath: basePath,
      backingFormat: 'raw',
    });
    expect(await h.volumeInfo(POOL, overlay)).toEqual(ov);
    const listed = await h.listVolumes(POOL);
    expect(listed).toEqual(expect.arrayContaining([created, ov]));

    await h.deleteVolume(POOL, overlay);
    await h.deleteVolume(POOL, overlay); // absent: no-op
    await h.deleteVolume(POOL, base);
    expect((await h.listVolumes(POOL)).map((v) => v.name)).not.toContain(base);
    const gone = await rejection(h.volumePath(POOL, base));
    expect(gone.code).toBe(VirErr.NO_STORAGE_VOL);
  });
});

describe('networks', () => {
  it('define / start / DHCP reservations / destroy / undefine', async () => {
    const name = nm('net');
    await h.defineNetwork({
      name,
      bridge: `st${run}`,
      ipv4: {
        address: '10.77.0.1',
        prefix: 24,
        dhcp: { rangeStart: '10.77.0.10', rangeEnd: '10.77.0.200', hosts: [{ mac: '52:54:00:77:00:01', ip: '10.77.0.11', name: 'vm-1' }] },
      },
    });
    await h.defineNetwork({ name, bridge: `st${run}`, ipv4: { address: '10.77.0.1', prefix: 24, dhcp: { rangeStart: '10.77.0.10', rangeEnd: '10.77.0.200', hosts: [{ mac: '52:54:00:77:00:01', ip: '10.77.0.11', name: 'vm-1' }] } } }); // idempotent
    expect(await h.listNetworks()).toContain(name);
    await h.startNetwork(name);
    await h.startNetwork(name); // idempotent

    await h.networkAddDhcpHost(name, { mac: '52:54:00:77:00:02', ip: '10.77.0.12' });
    await h.networkAddDhcpHost(name, { mac: '52:54:00:77:00:02', ip: '10.77.0.12' }); // no-op
    expect(await h.networkDhcpHosts(name)).toEqual([
      { mac: '52:54:00:77:00:01', ip: '10.77.0.11', name: 'vm-1' },
      { mac: '52:54:00:77:00:02', ip: '10.77.0.12' },
    ]);
    await h.networkAddDhcpHost(name, { mac: '52:54:00:77:00:02', ip: '10.77.0.22' }); // same MAC: replaced
    await h.networkRemoveDhcpHost(name, '52:54:00:77:00:01');
    await h.networkRemoveDhcpHost(name, '52:54:00:77:00:01'); // no-op
    expect(await h.networkDhcpHosts(name)).toEqual([{ mac: '52:54:00:77:00:02', ip: '10.77.0.22' }]);

    await h.destroyNetwork(name);
    await h.destroyNetwork(name); // inactive: no-op
    await h.undefineNetwork(name);
    await h.undefineNetwork(name); // absent: no-op
    expect(await h.listNetworks()).not.toContain(name);
    const err = await rejection(h.startNetwork(name));
    expect(err.code).toBe(VirErr.NO_NETWORK);
  });
});

describe('disks on the test driver (persistent-definition path)', () => {
  it('attachDisk / detachDisk edit the persistent definition; the domain XML shows the disk by serial', async () => {
    expect(h.capabilities.hotplugDisks).toBe(false);
    const name = nm('disks');
    await h.defineDomain(domainSpec(name));
    await h.startDomain(name);
    const disk = { path: `/${POOL}/${name}-vol.raw`, format: 'raw' as const, target: 'vdb', serial: 'vol-abc' };

    await h.attachDisk(name, disk);
    await h.attachDisk(name, disk); // idempotent
    expect((await h.domainDisks(name, { inactive: true })).map((d) => d.serial)).toEqual(['root', 'vol-abc']);
    expect(await h.domainXml(name, { inactive: true })).toContain('<serial>vol-abc</serial>');
    // no hotplug: the running domain sees it after its next start
    expect((await h.domainDisks(name)).map((d) => d.serial)).toEqual(['root']);
    await h.destroyDomain(name);
    await h.startDomain(name);
    expect((await h.domainDisks(name)).find((d) => d.serial === 'vol-abc')).toMatchObject({ path: disk.path, target: 'vdb', format: 'raw' });

    const clash = await rejection(h.attachDisk(name, { ...disk, path: '/elsewhere.raw' }));
    expect(clash.code).toBe(VirErr.OPERATION_INVALID);

    await h.detachDisk(name, 'vol-abc');
    await h.detachDisk(name, 'vol-abc'); // absent: no-op
    expect(await h.domainXml(name, { inactive: true })).not.toContain('vol-abc');
    expect((await h.domainDisks(name, { inactive: true })).map((d) => d.serial)).toEqual(['root']);
    await h.undefineDomain(name);
  });
});

describe('concurrency', () => {
  it('50 define+start+destroy+undefine cycles, 8 in flight, all succeed without blocking the event loop', async () => {
    let next = 0;
    const done: string[] = [];
    const { maxLagMs } = await withEventLoopLag(() =>
      Promise.all(
        Array.from({ length: 8 }, async () => {
          while (next < 50) {
            const name = nm(`cc-${next++}`);
            await h.defineDomain(domainSpec(name));
            await h.startDomain(name);
            expect(await h.domainState(name)).toBe('running');
            await h.destroyDomain(name);
            await h.undefineDomain(name);
            done.push(name);
          }
        }),
      ),
    );
    expect(done).toHaveLength(50);
    const left = (await h.listDomains()).filter((d) => d.startsWith(nm('cc-')));
    expect(left).toEqual([]);
    expect(maxLagMs).toBeLessThan(100);
  });

  it('concurrent failures each report their own error (one call per connection at a time)', async () => {
    const calls = Array.from({ length: 48 }, (_, i) => {
      switch (i % 3) {
        case 0:
          return rejection(h.startDomain(nm(`nodom-${i}`))).then((e) => [e.code, VirErr.NO_DOMAIN]);
        case 1:
          return rejection(h.startNetwork(nm(`nonet-${i}`))).then((e) => [e.code, VirErr.NO_NETWORK]);
        default:
          return rejection(h.volumePath(POOL, nm(`novol-${i}`))).then((e) => [e.code, VirErr.NO_STORAGE_VOL]);
      }
    });
    const results = await Promise.all(calls);
    for (const [got, want] of results) expect(got).toBe(want);
  });
});
