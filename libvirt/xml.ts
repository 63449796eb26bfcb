/**
 * Pure XML for libvirt: builders for domain, disk, network, DHCP host, volume and pool XML from
 * Stratus-level specs, a tiny parser/serializer for the (well-formed, entity-free) XML libvirt returns,
 * and the few readers and editors the driver needs. No I/O, no libvirt calls.
 *
 * All values go through `el()`/`serializeXml()`, which escape text and attribute values, so a name
 * or path containing `<`, `&`, `'` or `"` cannot break out of the document.
 */
import { InvalidInput } from '../core/errors';
import type {
  DhcpHost,
  DiskSpec,
  DomainDisk,
  DomainSpec,
  NetworkSpec,
  OverlayVolumeSpec,
  VolumeInfo,
  VolumeSpec,
} from './hypervisor';

// ------------------------------------------------------------------ tiny DOM

export interface XmlElement {
  name: string;
  attrs: Record<string, string>;
  children: XmlNode[];
}
export type XmlNode = XmlElement | string;

const ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&apos;' };

/** Escape a value for use in XML text or in a (single- or double-quoted) attribute. */
export function escapeXml(value: string): string {
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u0008\u000b\u000c\u000e-\u001f]/.test(value)) {
    throw new InvalidInput('XML value contains control characters');
  }
  return value.replace(/[&<>"']/g, (c) => ESCAPES[c] ?? c);
}

/** Build an element; `undefined` attributes and children are dropped, numbers are stringified. */
export function el(
  name: string,
  attrs: Record<string, string | number | boolean | undefined> = {},
  children: Array<XmlNode | number | undefined | false> = [],
): XmlElement {
  const a: Record<string, string> = {};
  for (const [k, v] of Object.entries(attrs)) if (v !== undefined) a[k] = String(v);
  const c: XmlNode[] = [];
  for (const ch of children) {
    if (ch === undefined || ch === false) continue;
    c.push(typeof ch === 'number' ? String(ch) : ch);
  }
  return { name, attrs: a, children: c };
}

/** Serialize an element. `indent` pretty-prints elements that have only element children. */
export function serializeXml(node: XmlElement, indent = '  ', depth = 0): string {
  const pad = indent ? indent.repeat(depth) : '';
  const attrs = Object.entries(node.attrs)
    .map(([k, v]) => ` ${k}='${escapeXml(v)}'`)
    .join('');
  if (node.children.length === 0) return `${pad}<${node.name}${attrs}/>`;
  const onlyElements = node.children.every((c) => typeof c !== 'string' || c.trim() === '');
  if (indent && onlyElements) {
    const inner = node.children
      .filter((c): c is XmlElement => typeof c !== 'string')
      .map((c) => serializeXml(c, indent, depth + 1))
      .join('\n');
    return `${pad}<${node.name}${attrs}>\n${inner}\n${pad}</${node.name}>`;
  }
  const inner = node.children.map((c) => (typeof c === 'string' ? escapeXml(c) : serializeXml(c, '', 0))).join('');
  return `${pad}<${node.name}${attrs}>${inner}</${node.name}>`;
}

const ENTITY: Record<string, string> = { lt: '<', gt: '>', amp: '&', quot: '"', apos: "'" };
function unescape(s: string): string {
  return s.replace(/&(#x[0-9a-fA-F]+|#[0-9]+|[a-z]+);/g, (m, e: string) => {
    if (e.startsWith('#x')) return String.fromCodePoint(parseInt(e.slice(2), 16));
    if (e.startsWith('#')) return String.fromCodePoint(parseInt(e.slice(1), 10));
    return ENTITY[e] ?? m;
  });
}

/**
 * Parse a well-formed XML document into elements and text (XML declaration, comments, processing
 * instructions and DOCTYPE are skipped; CDATA becomes text). Throws on malformed input.
 */
export function parseXml(xml: string): XmlElement {
  let i = 0;
  const stack: XmlElement[] = [];
  let root: XmlElement | undefined;
  const fail = (msg: string): never => {
    throw new Error(`malformed XML at offset ${i}: ${msg}`);
  };
  while (i < xml.length) {
    const lt = xml.indexOf('<', i);
    const textEnd = lt === -1 ? xml.length : lt;
    if (textEnd > i) {
      const text = xml.slice(i, textEnd);
      const top = stack[stack.length - 1];
      if (top) top.children.push(unescape(text));
      else if (text.trim()) fail('text outside the root element');
      i = textEnd;
      continue;
    }
    if (xml.startsWith('<!--', i)) {
      const end = xml.indexOf('-->', i + 4);
      if (end === -1) fail('unterminated comment');
      i = end + 3;
    } else if (xml.startsWith('<![CDATA[', i)) {
      const end = xml.indexOf(']]>', i + 9);
      if (end === -1) fail('unterminated CDATA');
      stack[stack.length - 1]?.children.push(xml.slice(i + 9, end));
      i = end + 3;
    } else if (xml.startsWith('<?', i) || xml.startsWith('<!', i)) {
      const end = xml.indexOf('>', i);
      if (end === -1) fail('unterminated declaration');
      i = end + 1;
    } else if (xml.startsWith('</', i)) {
      const end = xml.indexOf('>', i);
      if (end === -1) fail('unterminated end tag');
      const name = xml.slice(i + 2, end).trim();
      const top = stack.pop();
      if (!top || top.name !== name) fail(`unexpected </${name}>`);
      i = end + 1;
    } else {
      const m = /^<([A-Za-z_][\w.:-]*)/.exec(xml.slice(i, i + 256));
      if (!m || !m[1]) return fail('bad start tag');
      const node: XmlElement = { name: m[1], attrs: {}, children: [] };
      i += m[0].length;
      const attrRe = /\s*([A-Za-z_][\w.:-]*)\s*=\s*("([^"]*)"|'([^']*)')|\s*(\/?>)/y;
      let selfClosing = false;
      for (;;) {
        attrRe.lastIndex = i;
        const a = attrRe.exec(xml);
        if (!a) return fail(`bad attribute in <${node.name}>`);
        i = attrRe.lastIndex;
        if (a[5]) {
          selfClosing = a[5] === '/>';
          break;
        }
        node.attrs[a[1] as string] = unescape(a[3] ?? a[4] ?? '');
      }
      const parent = stack[stack.length - 1];
      if (parent) parent.children.push(node);
      else if (root) fail('more than one root element');
      else root = node;
      if (!selfClosing) stack.push(node);
    }
  }
  if (stack.length) fail(`unclosed <${stack[stack.length - 1]?.name}>`);
  if (!root) return fail('no root element');
  return root;
}

export function childElements(node: XmlElement, name?: string): XmlElement[] {
  return node.children.filter((c): c is XmlElement => typeof c !== 'string' && (name === undefined || c.name === name));
}
export function firstChild(node: XmlElement | undefined, name: string): XmlElement | undefined {
  return node ? childElements(node, name)[0] : undefined;
}
export function textOf(node: XmlElement | undefined): string | undefined {
  if (!node) return undefined;
  return node.children.filter((c): c is string => typeof c === 'string').join('').trim();
}
/** Follow a path of child names, e.g. path(domain, 'devices') */
export function path(node: XmlElement | undefined, ...names: string[]): XmlElement | undefined {
  let cur = node;
  for (const n of names) cur = firstChild(cur, n);
  return cur;
}

// ------------------------------------------------------------------ validation

const NAME_RE = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$/;
const MAC_RE = /^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$/;
const IPV4_RE = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;
const SERIAL_RE = /^[A-Za-z0-9_.+-]{1,20}$/;
const TARGET_RE = /^(vd|sd|hd|xvd)[a-z]{1,3}$/;
const BRIDGE_RE = /^[A-Za-z0-9_.-]{1,15}$/;

function check(ok: boolean, field: string, message: string): void {
  if (!ok) throw new InvalidInput(`${field}: ${message}`, [{ field, message }]);
}
export function checkName(name: string, field = 'name'): void {
  check(NAME_RE.test(name), field, `'${name}' must be 1-64 characters of [A-Za-z0-9_.-], not starting with '.' or '-'`);
}
export function checkMac(mac: string, field = 'mac'): void {
  check(MAC_RE.test(mac), field, `'${mac}' is not a MAC address like 52:54:00:12:34:56`);
  check((parseInt(mac.slice(0, 2), 16) & 1) === 0, field, `'${mac}' is a multicast MAC address`);
}
export function checkIpv4(ip: string, field = 'ip'): void {
  check(IPV4_RE.test(ip), field, `'${ip}' is not an IPv4 address`);
}
export function checkSerial(serial: string, field = 'serial'): void {
  check(SERIAL_RE.test(serial), field, `'${serial}' must be 1-20 characters of [A-Za-z0-9_.+-] (virtio-blk shows guests 20 bytes)`);
}
function checkAbsolutePath(p: string, field: string): void {
  check(p.startsWith('/') && !p.includes('\0'), field, `'${p}' must be an absolute path`);
}
function checkPositiveInt(n: number, field: string): void {
  check(Number.isSafeInteger(n) && n > 0, field, `${n} must be a positive integer`);
}
function checkDisk(d: DiskSpec, field: string): void {
  checkAbsolutePath(d.path, `${field}.path`);
  check(d.format === 'raw' || d.format === 'qcow2', `${field}.format`, `'${String(d.format)}' must be raw or qcow2`);
  check(TARGET_RE.test(d.target), `${field}.target`, `'${d.target}' must be a device name like vda`);
  checkSerial(d.serial, `${field}.serial`);
}

// ------------------------------------------------------------------ builders

/** `<disk>` element for a file-backed disk identified by serial. */
export function diskElement(d: DiskSpec): XmlElement {
  checkDisk(d, 'disk');
  return el('disk', { type: 'file', device: 'disk' }, [
    el('driver', { name: 'qemu', type: d.format, discard: 'unmap' }),
    el('source', { file: d.path }),
    el('target', { dev: d.target, bus: d.bus ?? 'virtio' }),
    el('serial', {}, [d.serial]),
    d.readonly ? el('readonly') : undefined,
  ]);
}

export function buildDiskXml(d: DiskSpec): string {
  return serializeXml(diskElement(d));
}

/**
 * Domain XML from a spec. `uuid` is internal to the driver (used to redefine an existing domain
 * without changing its identity); it never comes from callers.
 */
export function buildDomainXml(spec: DomainSpec, opts: { uuid?: string } = {}): string {
  checkName(spec.name);
  checkPositiveInt(spec.vcpus, 'vcpus');
  checkPositiveInt(spec.memoryMb, 'memoryMb');
  check(['qemu', 'kvm', 'test'].includes(spec.domainType), 'domainType', `'${spec.domainType}' must be qemu, kvm or test`);
  const serials = new Set<string>();
  const targets = new Set<string>();
  spec.disks.forEach((d, i) => {
    checkDisk(d, `disks[${i}]`);
    check(!serials.has(d.serial), `disks[${i}].serial`, `'${d.serial}' is used twice`);
    check(!targets.has(d.target), `disks[${i}].target`, `'${d.target}' is used twice`);
    serials.add(d.serial);
    targets.add(d.target);
  });
  spec.interfaces.forEach((n, i) => {
    checkName(n.network, `interfaces[${i}].network`);
    checkMac(n.mac, `interfaces[${i}].mac`);
  });
  if (spec.kernel) checkAbsolutePath(spec.kernel, 'kernel');
  if (spec.initrd) checkAbsolutePath(spec.initrd, 'initrd');
  check(!(spec.initrd || spec.cmdline) || !!spec.kernel, 'kernel', 'initrd and cmdline need a kernel');
  if (spec.serialLogPath) checkAbsolutePath(spec.serialLogPath, 'serialLogPath');

  const isVm = spec.domainType !== 'test';
  const memoryKiB = spec.memoryMb * 1024;
  const os = el('os', {}, [
    el('type', { arch: spec.arch }, ['hvm']),
    spec.kernel ? el('kernel', {}, [spec.kernel]) : undefined,
    spec.initrd ? el('initrd', {}, [spec.initrd]) : undefined,
    spec.cmdline ? el('cmdline', {}, [spec.cmdline]) : undefined,
    spec.kernel ? undefined : el('boot', { dev: 'hd' }),
  ]);
  const devices = el('devices', {}, [
    ...spec.disks.map(diskElement),
    ...spec.interfaces.map((n) =>
      el('interface', { type: 'network' }, [
        el('mac', { address: n.mac.toLowerCase() }),
        el('source', { network: n.network }),
        el('model', { type: n.model ?? 'virtio' }),
      ]),
    ),
    spec.serialLogPath
      ? el('serial', { type: 'file' }, [el('source', { path: spec.serialLogPath, append: isVm ? 'on' : undefined }), el('target', { port: 0 })])
      : undefined,
    spec.serialLogPath
      ? el('console', { type: 'file' }, [el('source', { path: spec.serialLogPath, append: isVm ? 'on' : undefined }), el('target', { type: 'serial', port: 0 })])
      : undefined,
    isVm ? el('memballoon', { model: 'none' }) : undefined,
  ]);
  const domain = el('domain', { type: spec.domainType }, [
    el('name', {}, [spec.name]),
    opts.uuid ? el('uuid', {}, [opts.uuid]) : undefined,
    el('memory', { unit: 'KiB' }, [memoryKiB]),
    el('currentMemory', { unit: 'KiB' }, [memoryKiB]),
    el('vcpu', { placement: 'static' }, [spec.vcpus]),
    os,
    isVm ? el('features', {}, [el('acpi'), el('apic')]) : undefined,
    el('clock', { offset: 'utc' }),
    el('on_poweroff', {}, ['destroy']),
    el('on_reboot', {}, ['restart']),
    el('on_crash', {}, ['destroy']),
    devices,
  ]);
  return serializeXml(domain);
}

export function dhcpHostElement(h: DhcpHost): XmlElement {
  checkMac(h.mac);
  checkIpv4(h.ip);
  if (h.name !== undefined) check(/^[A-Za-z0-9][A-Za-z0-9.-]{0,62}$/.test(h.name), 'name', `'${h.name}' is not a hostname`);
  return el('host', { mac: h.mac.toLowerCase(), name: h.name, ip: h.ip });
}

/** `<host mac ip name/>` as used by virNetworkUpdate (section ip-dhcp-host). */
export function buildDhcpHostXml(h: DhcpHost): string {
  return serializeXml(dhcpHostElement(h));
}

export function buildNetworkXml(spec: NetworkSpec, opts: { uuid?: string } = {}): string {
  checkName(spec.name);
  check(BRIDGE_RE.test(spec.bridge), 'bridge', `'${spec.bridge}' must be 1-15 characters of [A-Za-z0-9_.-]`);
  checkIpv4(spec.ipv4.address, 'ipv4.address');
  check(Number.isInteger(spec.ipv4.prefix) && spec.ipv4.prefix >= 1 && spec.ipv4.prefix <= 30, 'ipv4.prefix', `${spec.ipv4.prefix} must be 1..30`);
  const dhcp = spec.ipv4.dhcp;
  if (dhcp) {
    checkIpv4(dhcp.rangeStart, 'ipv4.dhcp.rangeStart');
    checkIpv4(dhcp.rangeEnd, 'ipv4.dhcp.rangeEnd');
  }
  if (spec.mtu !== undefined) checkPositiveInt(spec.mtu, 'mtu');
  const net = el('network', {}, [
    el('name', {}, [spec.name]),
    opts.uuid ? el('uuid', {}, [opts.uuid]) : undefined,
    (spec.forward ?? 'nat') === 'nat' ? el('forward', { mode: 'nat' }) : undefined,
    el('bridge', { name: spec.bridge, stp: 'on', delay: 0 }),
    spec.mtu ? el('mtu', { size: spec.mtu }) : undefined,
    el('ip', { address: spec.ipv4.address, prefix: spec.ipv4.prefix }, [
      dhcp
        ? el('dhcp', {}, [el('range', { start: dhcp.rangeStart, end: dhcp.rangeEnd }), ...(dhcp.hosts ?? []).map(dhcpHostElement)])
        : undefined,
    ]),
  ]);
  return serializeXml(net);
}

export function buildVolumeXml(spec: VolumeSpec): string {
  checkName(spec.name);
  checkPositiveInt(spec.capacityBytes, 'capacityBytes');
  check(spec.format === 'raw' || spec.format === 'qcow2', 'format', `'${String(spec.format)}' must be raw or qcow2`);
  return serializeXml(
    el('volume', {}, [
      el('name', {}, [spec.name]),
      el('capacity', { unit: 'bytes' }, [spec.capacityBytes]),
      el('allocation', { unit: 'bytes' }, [0]),
      el('target', {}, [el('format', { type: spec.format })]),
    ]),
  );
}

/** A qcow2 volume with `<backingStore>`: copy-on-write over `backingPath`. */
export function buildOverlayVolumeXml(spec: OverlayVolumeSpec): string {
  checkName(spec.name);
  checkPositiveInt(spec.capacityBytes, 'capacityBytes');
  checkAbsolutePath(spec.backingPath, 'backingPath');
  check(spec.backingFormat === 'raw' || spec.backingFormat === 'qcow2', 'backingFormat', `'${String(spec.backingFormat)}' must be raw or qcow2`);
  return serializeXml(
    el('volume', {}, [
      el('name', {}, [spec.name]),
      el('capacity', { unit: 'bytes' }, [spec.capacityBytes]),
      el('allocation', { unit: 'bytes' }, [0]),
      el('target', {}, [el('format', { type: 'qcow2' })]),
      el('backingStore', {}, [el('path', {}, [spec.backingPath]), el('format', { type: spec.backingFormat })]),
    ]),
  );
}

/** A directory storage pool. */
export function buildDirPoolXml(name: string, targetPath: string): string {
  checkName(name);
  checkAbsolutePath(targetPath, 'targetPath');
  return serializeXml(el('pool', { type: 'dir' }, [el('name', {}, [name]), el('target', {}, [el('path', {}, [targetPath])])]));
}

// ------------------------------------------------------------------ readers

const UNIT_FACTORS: Record<string, number> = {
  b: 1, bytes: 1,
  k: 1024, kib: 1024, kb: 1000,
  m: 1024 ** 2, mib: 1024 ** 2, mb: 1000 ** 2,
  g: 1024 ** 3, gib: 1024 ** 3, gb: 1000 ** 3,
  t: 1024 ** 4, tib: 1024 ** 4, tb: 1000 ** 4,
};
function bytesOf(node: XmlElement | undefined): number {
  const n = Number(textOf(node) ?? 0);
  const unit = (node?.attrs.unit ?? 'bytes').toLowerCase();
  return n * (UNIT_FACTORS[unit] ?? 1);
}

/** Disks (`<disk device='disk'>`, also cdroms) of a domain XML. */
export function parseDomainDisks(xml: string): DomainDisk[] {
  const devices = path(parseXml(xml), 'devices');
  if (!devices) return [];
  return childElements(devices, 'disk').map((d) => {
    const source = firstChild(d, 'source');
    const disk: DomainDisk = {
      target: firstChild(d, 'target')?.attrs.dev ?? '',
      device: d.attrs.device ?? 'disk',
    };
    const p = source?.attrs.file ?? source?.attrs.dev ?? source?.attrs.name;
    if (p !== undefined) disk.path = p;
    const format = firstChild(d, 'driver')?.attrs.type;
    if (format !== undefined) disk.format = format;
    const serial = textOf(firstChild(d, 'serial'));
    if (serial !== undefined) disk.serial = serial;
    const bus = firstChild(d, 'target')?.attrs.bus;
    if (bus !== undefined) disk.bus = bus;
    return disk;
  });
}

/** The `<uuid>` of a domain/network XML (driver-internal). */
export function parseUuid(xml: string): string | undefined {
  return textOf(firstChild(parseXml(xml), 'uuid'));
}

export function parseVolume(xml: string): VolumeInfo {
  const v = parseXml(xml);
  const info: VolumeInfo = {
    name: textOf(firstChild(v, 'name')) ?? '',
    path: textOf(path(v, 'target', 'path')) ?? '',
    capacityBytes: bytesOf(firstChild(v, 'capacity')),
    format: path(v, 'target', 'format')?.attrs.type ?? 'raw',
  };
  const backing = firstChild(v, 'backingStore');
  const backingPath = textOf(firstChild(backing, 'path'));
  if (backingPath) {
    info.backingPath = backingPath;
    const bf = firstChild(backing, 'format')?.attrs.type;
    if (bf) info.backingFormat = bf;
  }
  return info;
}

/** Target path of a pool XML. */
export function parsePoolPath(xml: string): string {
  const p = parseXml(xml);
  return textOf(path(p, 'target', 'path')) ?? textOf(firstChild(p, 'name')) ?? '';
}

/** DHCP reservations of a network XML (all `<ip>` elements). */
export function parseNetworkDhcpHosts(xml: string): DhcpHost[] {
  const hosts: DhcpHost[] = [];
  for (const ip of childElements(parseXml(xml), 'ip')) {
    for (const h of childElements(firstChild(ip, 'dhcp') ?? el('dhcp'), 'host')) {
      const host: DhcpHost = { mac: (h.attrs.mac ?? '').toLowerCase(), ip: h.attrs.ip ?? '' };
      if (h.attrs.name) host.name = h.attrs.name;
      hosts.push(host);
    }
  }
  return hosts;
}

// ------------------------------------------------------------------ editors (persistent-definition paths)

/** The domain XML with a disk appended to `<devices>`. */
export function addDiskToDomainXml(domainXml: string, disk: DiskSpec): string {
  const dom = parseXml(domainXml);
  const devices = firstChild(dom, 'devices');
  if (!devices) throw new Error('domain XML has no <devices>');
  // insert after the last existing <disk> (libvirt orders devices by kind), else first
  const idx = devices.children.reduce((last, c, i) => (typeof c !== 'string' && c.name === 'disk' ? i : last), -1);
  devices.children.splice(idx + 1, 0, diskElement(disk));
  return serializeXml(dom, '');
}

/** The domain XML without the disk(s) whose `<serial>` is `serial`. */
export function removeDiskFromDomainXml(domainXml: string, serial: string): string {
  const dom = parseXml(domainXml);
  const devices = firstChild(dom, 'devices');
  if (devices) {
    devices.children = devices.children.filter(
      (c) => typeof c === 'string' || c.name !== 'disk' || textOf(firstChild(c, 'serial')) !== serial,
    );
  }
  return serializeXml(dom, '');
}

/** The serialized `<disk>` element with this serial in a domain XML (for a live detach), if any. */
export function findDiskXml(domainXml: string, serial: string): string | undefined {
  const devices = path(parseXml(domainXml), 'devices');
  const disk = devices && childElements(devices, 'disk').find((d) => textOf(firstChild(d, 'serial')) === serial);
  return disk ? serializeXml(disk, '') : undefined;
}

/** The network XML with the reservation for `host.mac` set to `host` (replacing one with the same MAC). */
export function setDhcpHostInNetworkXml(networkXml: string, host: DhcpHost): string {
  const net = parseXml(networkXml);
  const dhcp = childElements(net, 'ip')
    .map((ip) => firstChild(ip, 'dhcp'))
    .find((d): d is XmlElement => d !== undefined);
  if (!dhcp) throw new Error('network has no <dhcp> section');
  const mac = host.mac.toLowerCase();
  dhcp.children = dhcp.children.filter((c) => typeof c === 'string' || c.name !== 'host' || (c.attrs.mac ?? '').toLowerCase() !== mac);
  dhcp.children.push(dhcpHostElement(host));
  return serializeXml(net, '');
}

/** The network XML without the reservation for `mac`. */
export function removeDhcpHostFromNetworkXml(networkXml: string, mac: string): string {
  const net = parseXml(networkXml);
  const m = mac.toLowerCase();
  for (const ip of childElements(net, 'ip')) {
    const dhcp = firstChild(ip, 'dhcp');
    if (dhcp) dhcp.children = dhcp.children.filter((c) => typeof c === 'string' || c.name !== 'host' || (c.attrs.mac ?? '').toLowerCase() !== m);
  }
  return serializeXml(net, '');
}
