import { InvalidInput } from '../../core/errors';
import type { DomainSpec, NetworkSpec } from '../../libvirt/hypervisor';
import {
  addDiskToDomainXml,
  buildDhcpHostXml,
  buildDirPoolXml,
  buildDiskXml,
  buildDomainXml,
  buildNetworkXml,
  buildOverlayVolumeXml,
  buildVolumeXml,
  escapeXml,
  findDiskXml,
  parseDomainDisks,
  parseNetworkDhcpHosts,
  parsePoolPath,
  parseUuid,
  parseVolume,
  parseXml,
  removeDhcpHostFromNetworkXml,
  removeDiskFromDomainXml,
  serializeXml,
  setDhcpHostInNetworkXml,
  textOf,
  path as xpath,
} from '../../libvirt/xml';

const domain: DomainSpec = {
  name: 'server-1',
  vcpus: 2,
  memoryMb: 512,
  domainType: 'qemu',
  disks: [{ path: '/var/lib/stratus/pool/server-1-root.qcow2', format: 'qcow2', target: 'vda', serial: 'root-server-1' }],
  interfaces: [{ network: 'net-a', mac: '52:54:00:AB:CD:EF' }],
  kernel: '/var/cache/stratus/vmlinuz',
  initrd: '/var/cache/stratus/initrd.img',
  cmdline: 'console=ttyS0 root=/dev/vda quiet',
  serialLogPath: '/var/log/stratus/server-1.console.log',
};

describe('escaping', () => {
  it('escapes the five XML specials in text and attributes', () => {
    expect(escapeXml(`a<b>&"c'`)).toBe('a&lt;b&gt;&amp;&quot;c&apos;');
  });

  it('cannot be broken out of through a path or a cmdline', () => {
    const evil = `/tmp/x'/><disk type='block'><source dev='/dev/sda`;
    const xml = buildDomainXml({
      ...domain,
      disks: [{ ...domain.disks[0]!, path: evil }],
      cmdline: `console=ttyS0 </cmdline><kernel>/evil</kernel> & more`,
    });
    const parsed = parseXml(xml);
    const disks = parseDomainDisks(xml);
    expect(disks).toHaveLength(1);
    expect(disks[0]!.path).toBe(evil);
    expect(textOf(xpath(parsed, 'os', 'cmdline'))).toBe('console=ttyS0 </cmdline><kernel>/evil</kernel> & more');
    expect(textOf(xpath(parsed, 'os', 'kernel'))).toBe('/var/cache/stratus/vmlinuz');
    expect(xml).not.toContain("<disk type='block'>");
  });

  it('rejects control characters', () => {
    expect(() => escapeXml('a\u0001b')).toThrow(InvalidInput);
  });
});

describe('parser and serializer', () => {
  it('round-trips libvirt-style XML, entities, comments and declarations', () => {
    const src = `<?xml version="1.0"?>\n<!-- hello --><domain type="test" id='1'>\n  <name>a &amp; b</name>\n  <description><![CDATA[x < y]]></description>\n  <devices><disk device="disk"/></devices>\n</domain>`;
    const root = parseXml(src);
    expect(root.name).toBe('domain');
    expect(root.attrs).toEqual({ type: 'test', id: '1' });
    expect(textOf(xpath(root, 'name'))).toBe('a & b');
    expect(textOf(xpath(root, 'description'))).toBe('x < y');
    const again = parseXml(serializeXml(root, ''));
    expect(again).toEqual(parseXml(serializeXml(again, '')));
    expect(textOf(xpath(again, 'name'))).toBe('a & b');
  });

  it('decodes numeric character references', () => {
    expect(textOf(parseXml('<a>&#60;&#x3e;</a>'))).toBe('<>');
  });

  it.each(['<a>', '<a></b>', '<a b=c/>', 'text', '<a/><b/>', ''])('rejects malformed %j', (bad) => {
    expect(() => parseXml(bad)).toThrow(/malformed XML/);
  });
});

describe('domain XML', () => {
  it('builds a Stratus-level spec into libvirt XML', () => {
    const root = parseXml(buildDomainXml(domain));
    expect(root.attrs.type).toBe('qemu');
    expect(textOf(xpath(root, 'name'))).toBe('server-1');
    expect(xpath(root, 'uuid')).toBeUndefined();
    expect(textOf(xpath(root, 'memory'))).toBe(String(512 * 1024));
    expect(xpath(root, 'memory')!.attrs.unit).toBe('KiB');
    expect(textOf(xpath(root, 'vcpu'))).toBe('2');
    expect(textOf(xpath(root, 'os', 'initrd'))).toBe('/var/cache/stratus/initrd.img');
    expect(xpath(root, 'os', 'boot')).toBeUndefined(); // direct kernel boot
    expect(xpath(root, 'features', 'acpi')).toBeDefined(); // graceful shutdown needs ACPI
    const iface = xpath(root, 'devices', 'interface')!;
    expect(iface.attrs.type).toBe('network');
    expect(xpath(iface, 'mac')!.attrs.address).toBe('52:54:00:ab:cd:ef');
    expect(xpath(iface, 'source')!.attrs.network).toBe('net-a');
    const serial = xpath(root, 'devices', 'serial')!;
    expect(serial.attrs.type).toBe('file');
    expect(xpath(serial, 'source')!.attrs.path).toBe('/var/log/stratus/server-1.console.log');
    expect(xpath(root, 'devices', 'console', 'target')!.attrs.type).toBe('serial');
  });

  it('boots from disk without a kernel, and the test type has no ACPI/balloon devices', () => {
    const root = parseXml(
      buildDomainXml({ name: 't', vcpus: 1, memoryMb: 64, domainType: 'test', disks: [], interfaces: [] }),
    );
    expect(root.attrs.type).toBe('test');
    expect(xpath(root, 'os', 'boot')!.attrs.dev).toBe('hd');
    expect(xpath(root, 'features')).toBeUndefined();
    expect(xpath(root, 'devices', 'serial')).toBeUndefined();
  });

  it('carries a UUID only when the driver passes one', () => {
    const xml = buildDomainXml(domain, { uuid: '6695eb01-f6a4-8304-79aa-97f2502e193f' });
    expect(parseUuid(xml)).toBe('6695eb01-f6a4-8304-79aa-97f2502e193f');
  });

  it('reads disks back, with serial, format and target', () => {
    expect(parseDomainDisks(buildDomainXml(domain))).toEqual([
      {
        target: 'vda',
        device: 'disk',
        path: '/var/lib/stratus/pool/server-1-root.qcow2',
        format: 'qcow2',
        serial: 'root-server-1',
        bus: 'virtio',
      },
    ]);
  });

  it.each<[string, Partial<DomainSpec>]>([
    ['name with a slash', { name: 'a/b' }],
    ['zero vcpus', { vcpus: 0 }],
    ['fractional memory', { memoryMb: 1.5 }],
    ['bad domain type', { domainType: 'xen' as never }],
    ['multicast MAC', { interfaces: [{ network: 'n', mac: '01:00:5e:00:00:01' }] }],
    ['bad MAC', { interfaces: [{ network: 'n', mac: '52:54:00:zz:00:01' }] }],
    ['relative disk path', { disks: [{ path: 'disk.img', format: 'raw', target: 'vda', serial: 's' }] }],
    ['long serial', { disks: [{ path: '/d', format: 'raw', target: 'vda', serial: 'x'.repeat(21) }] }],
    ['serial with a space', { disks: [{ path: '/d', format: 'raw', target: 'vda', serial: 'a b' }] }],
    [
      'duplicate serial',
      {
        disks: [
          { path: '/a', format: 'raw', target: 'vda', serial: 's' },
          { path: '/b', format: 'raw', target: 'vdb', serial: 's' },
        ],
      },
    ],
    ['bad target', { disks: [{ path: '/d', format: 'raw', target: 'disk0', serial: 's' }] }],
    ['initrd without kernel', { kernel: undefined, cmdline: undefined }],
  ])('rejects %s with InvalidInput', (_label, change) => {
    expect(() => buildDomainXml({ ...domain, ...change })).toThrow(InvalidInput);
  });
});

describe('disk XML', () => {
  it('identifies the disk by serial', () => {
    const disk = parseXml(buildDiskXml({ path: '/p/vol-1.raw', format: 'raw', target: 'vdb', serial: 'vol-1', readonly: true }));
    expect(disk.attrs).toEqual({ type: 'file', device: 'disk' });
    expect(textOf(xpath(disk, 'serial'))).toBe('vol-1');
    expect(xpath(disk, 'driver')!.attrs.type).toBe('raw');
    expect(xpath(disk, 'target')!.attrs).toEqual({ dev: 'vdb', bus: 'virtio' });
    expect(xpath(disk, 'readonly')).toBeDefined();
  });

  it('adds and removes a disk in a libvirt-written domain XML, keeping everything else', () => {
    const libvirtXml = `<domain type='test'>\n  <name>d</name>\n  <uuid>u-1</uuid>\n  <devices>\n    <disk type='file' device='disk'>\n      <source file='/a'/>\n      <target dev='vda' bus='virtio'/>\n      <serial>root</serial>\n    </disk>\n    <interface type='network'><source network='default'/></interface>\n  </devices>\n</domain>\n`;
    const added = addDiskToDomainXml(libvirtXml, { path: '/b', format: 'qcow2', target: 'vdb', serial: 'vol-1' });
    expect(parseDomainDisks(added).map((d) => d.serial)).toEqual(['root', 'vol-1']);
    expect(parseUuid(added)).toBe('u-1');
    expect(xpath(parseXml(added), 'devices', 'interface')).toBeDefined();
    expect(findDiskXml(added, 'vol-1')).toContain('<serial>vol-1</serial>');
    expect(findDiskXml(added, 'nope')).toBeUndefined();
    const removed = removeDiskFromDomainXml(added, 'vol-1');
    expect(parseDomainDisks(removed).map((d) => d.serial)).toEqual(['root']);
    expect(removeDiskFromDomainXml(removed, 'vol-1')).toBe(removed);
  });
});

describe('network XML', () => {
  const net: NetworkSpec = {
    name: 'net-a',
    bridge: 'stbr-a',
    ipv4: {
      address: '10.10.0.1',
      prefix: 24,
      dhcp: {
        rangeStart: '10.10.0.10',
        rangeEnd: '10.10.0.250',
        hosts: [
          { mac: '52:54:00:00:00:01', ip: '10.10.0.11', name: 'vm-1' },
          { mac: '52:54:00:00:00:02', ip: '10.10.0.12' },
        ],
      },
    },
  };

  it('builds a NAT network with bridge, address, range and reservations', () => {
    const root = parseXml(buildNetworkXml(net));
    expect(xpath(root, 'forward')!.attrs.mode).toBe('nat');
    expect(xpath(root, 'bridge')!.attrs.name).toBe('stbr-a');
    expect(xpath(root, 'ip')!.attrs).toEqual({ address: '10.10.0.1', prefix: '24' });
    expect(xpath(root, 'ip', 'dhcp', 'range')!.attrs).toEqual({ start: '10.10.0.10', end: '10.10.0.250' });
    expect(parseNetworkDhcpHosts(buildNetworkXml(net))).toEqual(net.ipv4.dhcp!.hosts);
  });

  it('isolated networks have no <forward>', () => {
    expect(xpath(parseXml(buildNetworkXml({ ...net, forward: 'isolated' })), 'forward')).toBeUndefined();
  });

  it('DHCP host entries for virNetworkUpdate', () => {
    expect(buildDhcpHostXml({ mac: '52:54:00:AA:00:01', ip: '10.0.0.5', name: 'web' })).toBe(
      "<host mac='52:54:00:aa:00:01' name='web' ip='10.0.0.5'/>",
    );
    expect(buildDhcpHostXml({ mac: '52:54:00:aa:00:01', ip: '10.0.0.5' })).toBe("<host mac='52:54:00:aa:00:01' ip='10.0.0.5'/>");
    expect(() => buildDhcpHostXml({ mac: '52:54:00:aa:00:01', ip: '10.0.0.256' })).toThrow(InvalidInput);
    expect(() => buildDhcpHostXml({ mac: '52:54:00:aa:00:01', ip: '10.0.0.5', name: "x' y" })).toThrow(InvalidInput);
  });

  it('edits reservations in a network definition (the redefine path)', () => {
    const xml = buildNetworkXml(net);
    const replaced = setDhcpHostInNetworkXml(xml, { mac: '52:54:00:00:00:02', ip: '10.10.0.22' });
    expect(parseNetworkDhcpHosts(replaced)).toEqual([
      { mac: '52:54:00:00:00:01', ip: '10.10.0.11', name: 'vm-1' },
      { mac: '52:54:00:00:00:02', ip: '10.10.0.22' },
    ]);
    const removed = removeDhcpHostFromNetworkXml(replaced, '52:54:00:00:00:01');
    expect(parseNetworkDhcpHosts(removed)).toEqual([{ mac: '52:54:00:00:00:02', ip: '10.10.0.22' }]);
  });

  it.each<[string, Partial<NetworkSpec>]>([
    ['bridge name over 15 characters', { bridge: 'a-very-long-bridge' }],
    ['bad address', { ipv4: { address: '10.0.0', prefix: 24 } }],
    ['prefix 31', { ipv4: { address: '10.0.0.1', prefix: 31 } }],
  ])('rejects %s', (_label, change) => {
    expect(() => buildNetworkXml({ ...net, ...change })).toThrow(InvalidInput);
  });
});

describe('volume and pool XML', () => {
  it('builds an empty volume', () => {
    const root = parseXml(buildVolumeXml({ name: 'v.raw', capacityBytes: 10 * 2 ** 30, format: 'raw' }));
    expect(textOf(xpath(root, 'capacity'))).toBe(String(10 * 2 ** 30));
    expect(xpath(root, 'capacity')!.attrs.unit).toBe('bytes');
    expect(xpath(root, 'target', 'format')!.attrs.type).toBe('raw');
    expect(xpath(root, 'backingStore')).toBeUndefined();
  });

  it('builds a qcow2 overlay with a backing store', () => {
    const xml = buildOverlayVolumeXml({
      name: 'server-1-root.qcow2',
      backingPath: '/var/cache/stratus/images/sha256-abc.raw',
      backingFormat: 'raw',
      capacityBytes: 2 ** 30,
    });
    const root = parseXml(xml);
    expect(xpath(root, 'target', 'format')!.attrs.type).toBe('qcow2');
    expect(textOf(xpath(root, 'backingStore', 'path'))).toBe('/var/cache/stratus/images/sha256-abc.raw');
    expect(xpath(root, 'backingStore', 'format')!.attrs.type).toBe('raw');
  });

  it('reads a volume libvirt wrote back (units, format, backing store)', () => {
    const xml = `<volume type='file'>\n  <name>ov.qcow2</name>\n  <key>/p/ov.qcow2</key>\n  <capacity unit='bytes'>1048576</capacity>\n  <allocation unit='KiB'>4</allocation>\n  <target>\n    <path>/p/ov.qcow2</path>\n    <format type='qcow2'/>\n  </target>\n  <backingStore>\n    <path>/p/base.img</path>\n    <format type='raw'/>\n  </backingStore>\n</volume>`;
    expect(parseVolume(xml)).toEqual({
      name: 'ov.qcow2',
      path: '/p/ov.qcow2',
      capacityBytes: 1048576,
      format: 'qcow2',
      backingPath: '/p/base.img',
      backingFormat: 'raw',
    });
    expect(parseVolume(`<volume><name>a</name><capacity unit='GiB'>2</capacity><target><path>/a</path></target></volume>`)).toEqual({
      name: 'a',
      path: '/a',
      capacityBytes: 2 * 2 ** 30,
      format: 'raw',
    });
  });

  it('builds a dir pool and reads its path back', () => {
    const xml = buildDirPoolXml('stratus', '/var/lib/stratus/pool');
    expect(parseXml(xml).attrs.type).toBe('dir');
    expect(parsePoolPath(xml)).toBe('/var/lib/stratus/pool');
    expect(() => buildDirPoolXml('stratus', 'relative')).toThrow(InvalidInput);
  });

  it('rejects a zero-sized volume', () => {
    expect(() => buildVolumeXml({ name: 'v', capacityBytes: 0, format: 'raw' })).toThrow(InvalidInput);
  });
});
