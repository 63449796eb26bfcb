/**
 * `Hypervisor` on libvirt, through the koffi binding in ffi.ts.
 *
 * Connections: libvirt reports a failed call's error per thread and per connection, and async calls
 * run on pool threads, so the only exact way to know *which* error a failed call raised is to read
 * the connection's last error with no other call running on that connection (see ffi.ts: with 8
 * failing calls in flight on one connection ~60% of errors came back wrong). An instance therefore
 * holds a small pool of connections ("lanes", default 8, opened on demand) and runs each method on
 * one lane at a time; a method's libvirt calls on its lane are sequential. For `test:///<file>` URIs,
 * whose state is private to each connection, the pool has one lane (methods then run one at a time).
 * `test:///default` shares one state per process, and `qemu:///system` one state in libvirtd, so
 * several lanes see the same hypervisor.
 *
 * The async calls run on the libuv thread pool (UV_THREADPOOL_SIZE, default 4, shared with fs/dns/
 * crypto): a host agent that runs many slow calls at once (domain start ~300 ms on QEMU) should raise
 * it before start-up, e.g. UV_THREADPOOL_SIZE=16.
 */
import {
  DOMAIN_STATES,
  DomainStatsTypes,
  DomainAffect,
  DomainUndefineFlags,
  DomainXmlFlags,
  LibvirtError,
  NetworkAffect,
  NetworkSection,
  NetworkUpdateCommand,
  NetworkXmlFlags,
  VirErr,
  loadLibvirt,
  type ConnectPtr,
  type DomainPtr,
  type LibvirtApi,
  type NetworkPtr,
  type StoragePoolPtr,
  type StorageVolPtr,
} from './ffi';
import type {
  DhcpHost,
  DiskSpec,
  DomainDisk,
  DomainSpec,
  DomainState,
  DomainStats,
  HostInfo,
  Hypervisor,
  HypervisorCapabilities,
  NetworkSpec,
  OverlayVolumeSpec,
  PoolInfo,
  VolumeInfo,
  VolumeSpec,
} from './hypervisor';
import {
  addDiskToDomainXml,
  buildDhcpHostXml,
  buildDirPoolXml,
  buildDiskXml,
  buildDomainXml,
  buildNetworkXml,
  buildOverlayVolumeXml,
  buildVolumeXml,
  checkMac,
  checkName,
  checkSerial,
  findDiskXml,
  parseDomainDisks,
  parseNetworkDhcpHosts,
  parsePoolPath,
  parseVolume,
  removeDhcpHostFromNetworkXml,
  removeDiskFromDomainXml,
  setDhcpHostInNetworkXml,
} from './xml';

export interface OpenHypervisorOptions {
  /** Most libvirt calls this instance runs at once, one connection each. Default 8. */
  maxConcurrentCalls?: number;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

// Opens are serialized process-wide: a failed virConnectOpen has no connection to read its error
// from, so its error is taken from the process-wide error callback, which must not see two opens.
let openQueue: Promise<unknown> = Promise.resolve();

async function openConnection(api: LibvirtApi, uri: string): Promise<ConnectPtr> {
  const attempt = async (): Promise<ConnectPtr> => {
    api.takeGlobalError();
    const conn = await api.connectOpen(uri);
    if (conn) return conn;
    const e = api.takeGlobalError();
    // libvirt hands URIs no in-process driver claims to the remote driver, i.e. to libvirtd
    const hint = e?.message?.includes('libvirt-sock') ? ' (no in-process driver handles this URI and libvirtd is not reachable)' : '';
    throw new LibvirtError(
      e?.code ?? VirErr.NO_CONNECT,
      `cannot open hypervisor connection '${uri}': ${e?.message ?? 'unknown error'}${hint}`,
      'virConnectOpen',
      e?.domain ?? 0,
    );
  };
  const p = openQueue.then(attempt, attempt);
  openQueue = p.catch(() => undefined);
  return p;
}

/** A pool of connections, each running one call at a time. */
class Lanes {
  private readonly idle: ConnectPtr[] = [];
  private readonly all: ConnectPtr[] = [];
  private opening = 0;
  private readonly waiters: Array<{ resolve: (c: ConnectPtr) => void; reject: (e: Error) => void }> = [];
  private busy = 0;
  private closed = false;

  constructor(
    private readonly api: LibvirtApi,
    private readonly uri: string,
    private readonly max: number,
    first: ConnectPtr,
  ) {
    this.all.push(first);
    this.idle.push(first);
  }

  get first(): ConnectPtr {
    return this.all[0] as ConnectPtr;
  }

  async run<T>(fn: (conn: ConnectPtr) => Promise<T>): Promise<T> {
    const conn = await this.acquire();
    this.busy++;
    try {
      return await fn(conn);
    } finally {
      this.busy--;
      this.release(conn);
    }
  }

  private closedError(): Error {
    return new LibvirtError(VirErr.INVALID_CONN, `hypervisor connection '${this.uri}' is closed`, 'close');
  }

  private acquire(): Promise<ConnectPtr> {
    if (this.closed) return Promise.reject(this.closedError());
    const conn = this.idle.pop();
    if (conn) return Promise.resolve(conn);
    if (this.all.length + this.opening < this.max) {
      this.opening++;
      return openConnection(this.api, this.uri).then(
        (c) => {
          this.opening--;
          this.all.push(c);
          return c;
        },
        (e: unknown) => {
          this.opening--;
          throw e;
        },
      );
    }
    return new Promise((resolve, reject) => this.waiters.push({ resolve, reject }));
  }

  private release(conn: ConnectPtr): void {
    const next = this.waiters.shift();
    if (next) next.resolve(conn);
    else this.idle.push(conn);
  }

  /** Refuse new calls, let running ones finish, then close every connection. Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const w of this.waiters.splice(0)) w.reject(this.closedError());
    while (this.busy > 0 || this.opening > 0) await sleep(5);
    const conns = this.all.splice(0);
    this.idle.length = 0;
    await Promise.all(conns.map((c) => this.api.connectClose(c)));
  }
}

function notFound(code: number, what: string, operation: string): LibvirtError {
  return new LibvirtError(code, `${what} not found`, operation);
}

class LibvirtHypervisor implements Hypervisor {
  constructor(
    private readonly api: LibvirtApi,
    private readonly lanes: Lanes,
    readonly capabilities: HypervisorCapabilities,
    /** Driver quirks that are not part of the contract. */
    private readonly quirks: { networkXmlInactiveFlag: boolean },
  ) {}

  // ---------------------------------------------------------------- plumbing

  /** Await an int-returning call; <0 becomes the connection's LibvirtError. */
  private async ok(conn: ConnectPtr, op: string, p: Promise<number>): Promise<number> {
    const rc = await p;
    if (rc < 0) throw this.api.connLastError(conn, op);
    return rc;
  }

  /** Await a value-returning call; null becomes the connection's LibvirtError. */
  private async must<T>(conn: ConnectPtr, op: string, p: Promise<T | null>): Promise<T> {
    const v = await p;
    if (v === null) throw this.api.connLastError(conn, op);
    return v;
  }

  /** Run an int-returning call; on failure return the error instead of throwing. */
  private async attempt(conn: ConnectPtr, op: string, p: Promise<number>): Promise<LibvirtError | undefined> {
    const rc = await p;
    return rc < 0 ? this.api.connLastError(conn, op) : undefined;
  }

  /** Look up a handle by name; undefined if libvirt says it does not exist. */
  private async lookup<T>(conn: ConnectPtr, op: string, notFoundCode: number, p: Promise<T | null>): Promise<T | undefined> {
    const v = await p;
    if (v !== null) return v;
    const err = this.api.connLastError(conn, op);
    if (err.code === notFoundCode) return undefined;
    throw err;
  }

  private withDomain<T>(name: string, fn: (conn: ConnectPtr, dom: DomainPtr) => Promise<T>): Promise<T> {
    return this.lanes.run(async (conn) => {
      const dom = await this.must(conn, 'virDomainLookupByName', this.api.domainLookupByName(conn, name));
      try {
        return await fn(conn, dom);
      } finally {
        this.api.domainFree(dom);
      }
    });
  }

  /** Like withDomain, but resolves `absent` when there is no such domain. */
  private withDomainIfAny<T>(name: string, absent: T, fn: (conn: ConnectPtr, dom: DomainPtr) => Promise<T>): Promise<T> {
    return this.lanes.run(async (conn) => {
      const dom = await this.lookup(conn, 'virDomainLookupByName', VirErr.NO_DOMAIN, this.api.domainLookupByName(conn, name));
      if (dom === undefined) return absent;
      try {
        return await fn(conn, dom);
      } finally {
        this.api.domainFree(dom);
      }
    });
  }

  private async withPool<T>(conn: ConnectPtr, name: string, fn: (pool: StoragePoolPtr) => Promise<T>): Promise<T> {
    const pool = await this.must(conn, 'virStoragePoolLookupByName', this.api.storagePoolLookupByName(conn, name));
    try {
      return await fn(pool);
    } finally {
      this.api.storagePoolFree(pool);
    }
  }

  private withNetwork<T>(name: string, fn: (conn: ConnectPtr, net: NetworkPtr) => Promise<T>): Promise<T> {
    return this.lanes.run(async (conn) => {
      const net = await this.must(conn, 'virNetworkLookupByName', this.api.networkLookupByName(conn, name));
      try {
        return await fn(conn, net);
      } finally {
        this.api.networkFree(net);
      }
    });
  }

  private withNetworkIfAny(name: string, fn: (conn: ConnectPtr, net: NetworkPtr) => Promise<void>): Promise<void> {
    return this.lanes.run(async (conn) => {
      const net = await this.lookup(conn, 'virNetworkLookupByName', VirErr.NO_NETWORK, this.api.networkLookupByName(conn, name));
      if (net === undefined) return;
      try {
        await fn(conn, net);
      } finally {
        this.api.networkFree(net);
      }
    });
  }

  // ---------------------------------------------------------------- host

  async hostInfo(pool: string): Promise<HostInfo> {
    return this.lanes.run(async (conn) => {
      const hostname = await this.must(conn, 'virConnectGetHostname', this.api.connectGetHostname(conn));
      const uri = await this.must(conn, 'virConnectGetURI', this.api.connectGetUri(conn));
      const version = await this.must(conn, 'virConnectGetLibVersion', this.api.connectGetLibVersion(conn));
      const node = await this.must(conn, 'virNodeGetInfo', this.api.nodeGetInfo(conn));
      const info = await this.withPool(conn, pool, (p) => this.must(conn, 'virStoragePoolGetInfo', this.api.storagePoolGetInfo(p)));
      return {
        hostname,
        vcpus: node.cpus,
        ramMb: Math.floor(node.memoryKiB / 1024),
        diskGb: Math.floor(info.capacityBytes / 1024 ** 3),
        libvirtVersion: `${Math.floor(version / 1_000_000)}.${Math.floor(version / 1000) % 1000}.${version % 1000}`,
        uri,
      };
    });
  }

  // ---------------------------------------------------------------- domains

  async defineDomain(spec: DomainSpec): Promise<void> {
    const xml = buildDomainXml(spec); // validates before touching libvirt
    await this.lanes.run(async (conn) => {
      const dom = await this.api.domainDefineXml(conn, xml);
      if (dom !== null) return this.api.domainFree(dom);
      // Failed: usually "domain 'x' already exists with uuid ..." (libvirt needs the UUID to replace
      // a definition). If the name exists, redefine with its UUID; otherwise the error stands.
      const err = this.api.connLastError(conn, 'virDomainDefineXML');
      const existing = await this.lookup(conn, 'virDomainLookupByName', VirErr.NO_DOMAIN, this.api.domainLookupByName(conn, spec.name));
      if (existing === undefined) throw err;
      let uuid: string;
      try {
        uuid = await this.must(conn, 'virDomainGetUUIDString', this.api.domainGetUuidString(existing));
      } finally {
        this.api.domainFree(existing);
      }
      const redefined = await this.must(conn, 'virDomainDefineXML', this.api.domainDefineXml(conn, buildDomainXml(spec, { uuid })));
      this.api.domainFree(redefined);
    });
  }

  async startDomain(name: string): Promise<void> {
    await this.withDomain(name, async (conn, dom) => {
      const err = await this.attempt(conn, 'virDomainCreate', this.api.domainCreate(dom));
      if (!err) return;
      // already running: QEMU says OPERATION_INVALID, the test driver INTERNAL_ERROR; judge by state
      if ((await this.api.domainIsActive(dom)) === 1) return;
      throw err;
    });
  }

  async stopDomain(name: string, opts: { timeoutMs?: number } = {}): Promise<boolean> {
    const deadline = Date.now() + (opts.timeoutMs ?? 60_000);
    const requested = await this.withDomain(name, async (conn, dom) => {
      if ((await this.api.domainIsActive(dom)) === 0) return false;
      const err = await this.attempt(conn, 'virDomainShutdown', this.api.domainShutdown(dom));
      if (!err) return true;
      if ((await this.api.domainIsActive(dom)) === 0) return false;
      throw err;
    });
    if (!requested) return true;
    for (let wait = 25; ; wait = Math.min(wait * 2, 500)) {
      const state = await this.domainState(name);
      if (state === undefined || state === 'shutoff' || state === 'crashed') return true;
      if (Date.now() >= deadline) return false;
      await sleep(Math.min(wait, Math.max(0, deadline - Date.now())));
    }
  }

  async destroyDomain(name: string): Promise<void> {
    await this.withDomainIfAny(name, undefined, async (conn, dom) => {
      const err = await this.attempt(conn, 'virDomainDestroy', this.api.domainDestroy(dom));
      if (!err) return;
      if (err.code === VirErr.NO_DOMAIN) return; // a transient domain vanished meanwhile
      if ((await this.api.domainIsActive(dom)) === 0) return; // already off
      throw err;
    });
  }

  private get undefineFlags(): number {
    const base = DomainUndefineFlags.MANAGED_SAVE | DomainUndefineFlags.SNAPSHOTS_METADATA;
    return this.capabilities.driver === 'QEMU' ? base | DomainUndefineFlags.NVRAM | DomainUndefineFlags.CHECKPOINTS_METADATA : base;
  }

  async undefineDomain(name: string): Promise<void> {
    await this.withDomainIfAny(name, undefined, async (conn, dom) => {
      if ((await this.api.domainIsActive(dom)) === 1) {
        const err = await this.attempt(conn, 'virDomainDestroy', this.api.domainDestroy(dom));
        if (err && err.code !== VirErr.NO_DOMAIN && (await this.api.domainIsActive(dom)) === 1) throw err;
      }
      const err = await this.attempt(conn, 'virDomainUndefineFlags', this.api.domainUndefineFlags(dom, this.undefineFlags));
      // NO_DOMAIN: removed meanwhile (e.g. a transient domain vanishes when destroyed)
      if (err && err.code !== VirErr.NO_DOMAIN) throw err;
    });
  }

  async domainState(name: string): Promise<DomainState | undefined> {
    return this.withDomainIfAny<DomainState | undefined>(name, undefined, async (conn, dom) => {
      const s = await this.api.domainGetState(dom);
      if (s === null) {
        const err = this.api.connLastError(conn, 'virDomainGetState');
        if (err.code === VirErr.NO_DOMAIN) return undefined;
        throw err;
      }
      return DOMAIN_STATES[s] ?? 'nostate';
    });
  }

  async listDomains(): Promise<string[]> {
    return this.lanes.run((conn) => this.must(conn, 'virConnectListAllDomains', this.api.listAllDomainNames(conn)));
  }

  async domainStats(names?: readonly string[]): Promise<DomainStats[]> {
    const wanted = names ? new Set(names) : undefined;
    const records = await this.lanes.run((conn) =>
      this.must(
        conn,
        'virConnectGetAllDomainStats',
        this.api.connectGetAllDomainStats(conn, DomainStatsTypes.STATE | DomainStatsTypes.CPU_TOTAL | DomainStatsTypes.BALLOON | DomainStatsTypes.INTERFACE | DomainStatsTypes.BLOCK),
      ),
    );
    const sum = (p: Record<string, number>, group: 'block' | 'net', key: string): number | null => {
      const count = p[`${group}.count`];
      if (count === undefined) return null;
      let total = 0;
      for (let i = 0; i < count; i++) total += p[`${group}.${i}.${key}`] ?? 0;
      return total;
    };
    const out: DomainStats[] = [];
    for (const { name, params: p } of records) {
      if (wanted && !wanted.has(name)) continue;
      let cpuTimeNs = p['cpu.time'] ?? null;
      let memoryKiB = p['balloon.current'] ?? null;
      let state: DomainState = DOMAIN_STATES[p['state.state'] ?? 0] ?? 'nostate';
      if (cpuTimeNs === null || memoryKiB === null) {
        const info = await this.withDomainIfAny(name, null, async (_conn, dom) => this.api.domainGetInfo(dom));
        if (!info) continue; // gone since the bulk call
        cpuTimeNs ??= info.cpuTimeNs;
        memoryKiB ??= info.memoryKiB;
        state = DOMAIN_STATES[info.state] ?? state;
      }
      out.push({
        name,
        state,
        cpuTimeNs,
        memoryKiB,
        blockReadBytes: sum(p, 'block', 'rd.bytes'),
        blockWriteBytes: sum(p, 'block', 'wr.bytes'),
        netRxBytes: sum(p, 'net', 'rx.bytes'),
        netTxBytes: sum(p, 'net', 'tx.bytes'),
      });
    }
    return out;
  }

  async domainXml(name: string, opts: { inactive?: boolean } = {}): Promise<string> {
    return this.withDomain(name, (conn, dom) =>
      this.must(conn, 'virDomainGetXMLDesc', this.api.domainGetXmlDesc(dom, opts.inactive ? DomainXmlFlags.INACTIVE : 0)),
    );
  }

  async domainDisks(name: string, opts: { inactive?: boolean } = {}): Promise<DomainDisk[]> {
    return parseDomainDisks(await this.domainXml(name, opts));
  }

  async rebootDomain(name: string): Promise<void> {
    await this.withDomain(name, (conn, dom) => this.ok(conn, 'virDomainReboot', this.api.domainReboot(dom, 0)));
  }

  // ---------------------------------------------------------------- storage

  async ensurePool(name: string, targetPath?: string): Promise<PoolInfo> {
    checkName(name);
    const defineXml = targetPath !== undefined ? buildDirPoolXml(name, targetPath) : undefined;
    return this.lanes.run(async (conn) => {
      let pool = await this.lookup(conn, 'virStoragePoolLookupByName', VirErr.NO_STORAGE_POOL, this.api.storagePoolLookupByName(conn, name));
      if (pool === undefined) {
        if (defineXml === undefined) throw notFound(VirErr.NO_STORAGE_POOL, `storage pool '${name}' (and no targetPath to create it)`, 'ensurePool');
        const created = await this.api.storagePoolDefineXml(conn, defineXml, 0);
        if (created === null) {
          const err = this.api.connLastError(conn, 'virStoragePoolDefineXML');
          // lost a race with a concurrent ensurePool: use the pool the other call defined
          pool = await this.lookup(conn, 'virStoragePoolLookupByName', VirErr.NO_STORAGE_POOL, this.api.storagePoolLookupByName(conn, name));
          if (pool === undefined) throw err;
        } else {
          pool = created;
          try {
            await this.ok(conn, 'virStoragePoolBuild', this.api.storagePoolBuild(pool, 0));
            await this.ok(conn, 'virStoragePoolSetAutostart', this.api.storagePoolSetAutostart(pool, 1));
          } catch (e) {
            this.api.storagePoolFree(pool);
            throw e;
          }
        }
      }
      const p = pool;
      try {
        if ((await this.api.storagePoolIsActive(p)) !== 1) {
          // WITH_BUILD: an existing pool whose directory went away (a tmpfs, a wiped data dir) is rebuilt
          // (the test driver keeps no directories and refuses the flag)
          const flags = this.capabilities.driver.toLowerCase() === 'test' ? 0 : VIR_STORAGE_POOL_CREATE_WITH_BUILD;
          const err = await this.attempt(conn, 'virStoragePoolCreate', this.api.storagePoolCreate(p, flags));
          if (err && (await this.api.storagePoolIsActive(p)) !== 1) throw err;
        }
        // a refresh fails while volumes are being built by another call; the pool is usable anyway
        await this.api.storagePoolRefresh(p, 0);
        const info = await this.must(conn, 'virStoragePoolGetInfo', this.api.storagePoolGetInfo(p));
        const xml = await this.must(conn, 'virStoragePoolGetXMLDesc', this.api.storagePoolGetXmlDesc(p, 0));
        return {
          name,
          path: parsePoolPath(xml),
          capacityBytes: info.capacityBytes,
          allocationBytes: info.allocationBytes,
          availableBytes: info.availableBytes,
        };
      } finally {
        this.api.storagePoolFree(p);
      }
    });
  }

  private async volumeInfoOf(conn: ConnectPtr, vol: StorageVolPtr): Promise<VolumeInfo> {
    const xml = await this.must(conn, 'virStorageVolGetXMLDesc', this.api.storageVolGetXmlDesc(vol, 0));
    return parseVolume(xml);
  }

  /** Create a volume from XML unless one of that name exists and `same(existing)`. */
  private async createVolumeXml(poolName: string, volName: string, xml: string, same: (v: VolumeInfo) => boolean): Promise<VolumeInfo> {
    return this.lanes.run((conn) =>
      this.withPool(conn, poolName, async (pool) => {
        const existing = await this.lookup(conn, 'virStorageVolLookupByName', VirErr.NO_STORAGE_VOL, this.api.storageVolLookupByName(pool, volName));
        if (existing !== undefined) {
          try {
            const info = await this.volumeInfoOf(conn, existing);
            if (same(info)) return info;
            throw new LibvirtError(
              VirErr.STORAGE_VOL_EXIST,
              `storage volume '${volName}' already exists in pool '${poolName}' with another format, size or backing store`,
              'virStorageVolCreateXML',
            );
          } finally {
            this.api.storageVolFree(existing);
          }
        }
        const vol = await this.must(conn, 'virStorageVolCreateXML', this.api.storageVolCreateXml(pool, xml, 0));
        try {
          return await this.volumeInfoOf(conn, vol);
        } finally {
          this.api.storageVolFree(vol);
        }
      }),
    );
  }

  async createVolume(pool: string, spec: VolumeSpec): Promise<VolumeInfo> {
    const xml = buildVolumeXml(spec);
    return this.createVolumeXml(pool, spec.name, xml, (v) => v.format === spec.format && v.capacityBytes >= spec.capacityBytes && !v.backingPath);
  }

  async createOverlayVolume(pool: string, spec: OverlayVolumeSpec): Promise<VolumeInfo> {
    const xml = buildOverlayVolumeXml(spec);
    return this.createVolumeXml(
      pool,
      spec.name,
      xml,
      (v) => v.format === 'qcow2' && v.capacityBytes >= spec.capacityBytes && v.backingPath === spec.backingPath,
    );
  }

  async deleteVolume(pool: string, name: string): Promise<void> {
    await this.lanes.run((conn) =>
      this.withPool(conn, pool, async (p) => {
        const vol = await this.lookup(conn, 'virStorageVolLookupByName', VirErr.NO_STORAGE_VOL, this.api.storageVolLookupByName(p, name));
        if (vol === undefined) return;
        try {
          const err = await this.attempt(conn, 'virStorageVolDelete', this.api.storageVolDelete(vol, 0));
          if (err && err.code !== VirErr.NO_STORAGE_VOL) throw err;
        } finally {
          this.api.storageVolFree(vol);
        }
      }),
    );
  }

  async listVolumes(pool: string): Promise<VolumeInfo[]> {
    return this.lanes.run((conn) =>
      this.withPool(conn, pool, async (p) => {
        const names = await this.must(conn, 'virStoragePoolListAllVolumes', this.api.listAllVolumeNames(p));
        const out: VolumeInfo[] = [];
        for (const name of names) {
          const vol = await this.lookup(conn, 'virStorageVolLookupByName', VirErr.NO_STORAGE_VOL, this.api.storageVolLookupByName(p, name));
          if (vol === undefined) continue; // deleted meanwhile
          try {
            out.push(await this.volumeInfoOf(conn, vol));
          } finally {
            this.api.storageVolFree(vol);
          }
        }
        return out;
      }),
    );
  }

  private withVolume<T>(pool: string, name: string, fn: (conn: ConnectPtr, vol: StorageVolPtr) => Promise<T>): Promise<T> {
    return this.lanes.run((conn) =>
      this.withPool(conn, pool, async (p) => {
        const vol = await this.must(conn, 'virStorageVolLookupByName', this.api.storageVolLookupByName(p, name));
        try {
          return await fn(conn, vol);
        } finally {
          this.api.storageVolFree(vol);
        }
      }),
    );
  }

  async volumePath(pool: string, name: string): Promise<string> {
    return this.withVolume(pool, name, (conn, vol) => this.must(conn, 'virStorageVolGetPath', this.api.storageVolGetPath(vol)));
  }

  async volumeInfo(pool: string, name: string): Promise<VolumeInfo> {
    return this.withVolume(pool, name, (conn, vol) => this.volumeInfoOf(conn, vol));
  }

  // ---------------------------------------------------------------- networks

  async defineNetwork(spec: NetworkSpec): Promise<void> {
    const xml = buildNetworkXml(spec); // validates before touching libvirt
    await this.lanes.run(async (conn) => {
      let net = await this.api.networkDefineXml(conn, xml);
      if (net === null) {
        // as for domains: replacing a definition needs its UUID
        const err = this.api.connLastError(conn, 'virNetworkDefineXML');
        const existing = await this.lookup(conn, 'virNetworkLookupByName', VirErr.NO_NETWORK, this.api.networkLookupByName(conn, spec.name));
        if (existing === undefined) throw err;
        let uuid: string;
        try {
          uuid = await this.must(conn, 'virNetworkGetUUIDString', this.api.networkGetUuidString(existing));
        } finally {
          this.api.networkFree(existing);
        }
        net = await this.must(conn, 'virNetworkDefineXML', this.api.networkDefineXml(conn, buildNetworkXml(spec, { uuid })));
      }
      try {
        await this.ok(conn, 'virNetworkSetAutostart', this.api.networkSetAutostart(net, spec.autostart === false ? 0 : 1));
      } finally {
        this.api.networkFree(net);
      }
    });
  }

  async startNetwork(name: string): Promise<void> {
    await this.withNetwork(name, async (conn, net) => {
      const err = await this.attempt(conn, 'virNetworkCreate', this.api.networkCreate(net));
      if (err && (await this.api.networkIsActive(net)) !== 1) throw err;
    });
  }

  async destroyNetwork(name: string): Promise<void> {
    await this.withNetworkIfAny(name, async (conn, net) => {
      const err = await this.attempt(conn, 'virNetworkDestroy', this.api.networkDestroy(net));
      if (err && err.code !== VirErr.NO_NETWORK && (await this.api.networkIsActive(net)) === 1) throw err;
    });
  }

  async undefineNetwork(name: string): Promise<void> {
    await this.withNetworkIfAny(name, async (conn, net) => {
      if ((await this.api.networkIsActive(net)) === 1) {
        const err = await this.attempt(conn, 'virNetworkDestroy', this.api.networkDestroy(net));
        if (err && err.code !== VirErr.NO_NETWORK && (await this.api.networkIsActive(net)) === 1) throw err;
      }
      const err = await this.attempt(conn, 'virNetworkUndefine', this.api.networkUndefine(net));
      if (err && err.code !== VirErr.NO_NETWORK) throw err;
    });
  }

  async listNetworks(): Promise<string[]> {
    return this.lanes.run((conn) => this.must(conn, 'virConnectListAllNetworks', this.api.listAllNetworkNames(conn)));
  }

  /** The persistent definition (the test driver rejects VIR_NETWORK_XML_INACTIVE: there, the current one). */
  private persistentNetworkXml(conn: ConnectPtr, net: NetworkPtr): Promise<string> {
    const flags = this.quirks.networkXmlInactiveFlag ? NetworkXmlFlags.INACTIVE : 0;
    return this.must(conn, 'virNetworkGetXMLDesc', this.api.networkGetXmlDesc(net, flags));
  }

  async networkDhcpHosts(name: string): Promise<DhcpHost[]> {
    return this.withNetwork(name, async (conn, net) => parseNetworkDhcpHosts(await this.persistentNetworkXml(conn, net)));
  }

  private async networkUpdateFlags(net: NetworkPtr): Promise<number> {
    return NetworkAffect.CONFIG | ((await this.api.networkIsActive(net)) === 1 ? NetworkAffect.LIVE : 0);
  }

  async networkAddDhcpHost(network: string, host: DhcpHost): Promise<void> {
    const hostXml = buildDhcpHostXml(host); // validates
    const mac = host.mac.toLowerCase();
    await this.withNetwork(network, async (conn, net) => {
      // The common case first, without reading the network: its XML holds every reservation, so
      // reading and parsing it on each add made a network of n servers cost O(n) per boot. libvirt
      // refuses the add when the MAC, name or IP is already there; only then is the XML read.
      if (this.capabilities.liveDhcpHostUpdate) {
        const flags = await this.networkUpdateFlags(net);
        if ((await this.api.networkUpdate(net, NetworkUpdateCommand.ADD_LAST, NetworkSection.IP_DHCP_HOST, -1, hostXml, flags)) >= 0) return;
      }
      const xml = await this.persistentNetworkXml(conn, net);
      const current = parseNetworkDhcpHosts(xml).find((h) => h.mac === mac);
      if (current && current.ip === host.ip && current.name === host.name) return;
      if (this.capabilities.liveDhcpHostUpdate) {
        const command = current ? NetworkUpdateCommand.MODIFY : NetworkUpdateCommand.ADD_LAST;
        await this.ok(
          conn,
          'virNetworkUpdate',
          this.api.networkUpdate(net, command, NetworkSection.IP_DHCP_HOST, -1, hostXml, await this.networkUpdateFlags(net)),
        );
      } else {
        const redefined = await this.must(conn, 'virNetworkDefineXML', this.api.networkDefineXml(conn, setDhcpHostInNetworkXml(xml, host)));
        this.api.networkFree(redefined);
      }
    });
  }

  async networkRemoveDhcpHost(network: string, mac: string): Promise<void> {
    checkMac(mac);
    const m = mac.toLowerCase();
    await this.withNetwork(network, async (conn, net) => {
      const xml = await this.persistentNetworkXml(conn, net);
      const current = parseNetworkDhcpHosts(xml).find((h) => h.mac === m);
      if (!current) return;
      if (this.capabilities.liveDhcpHostUpdate) {
        await this.ok(
          conn,
          'virNetworkUpdate',
          this.api.networkUpdate(
            net,
            NetworkUpdateCommand.DELETE,
            NetworkSection.IP_DHCP_HOST,
            -1,
            buildDhcpHostXml(current),
            await this.networkUpdateFlags(net),
          ),
        );
      } else {
        const redefined = await this.must(conn, 'virNetworkDefineXML', this.api.networkDefineXml(conn, removeDhcpHostFromNetworkXml(xml, m)));
        this.api.networkFree(redefined);
      }
    });
  }

  // ---------------------------------------------------------------- disks

  async attachDisk(domain: string, disk: DiskSpec): Promise<void> {
    const diskXml = buildDiskXml(disk); // validates
    await this.withDomain(domain, async (conn, dom) => {
      const active = (await this.api.domainIsActive(dom)) === 1;
      const live = active && this.capabilities.hotplugDisks;
      const persistentXml = await this.must(
        conn,
        'virDomainGetXMLDesc',
        this.api.domainGetXmlDesc(dom, DomainXmlFlags.INACTIVE | DomainXmlFlags.SECURE),
      );
      const present = (disks: DomainDisk[], where: string): boolean => {
        const same = disks.find((d) => d.serial === disk.serial);
        if (same) {
          if (same.path === disk.path) return true;
          throw new LibvirtError(
            VirErr.OPERATION_INVALID,
            `domain '${domain}' (${where}) already has a disk with serial '${disk.serial}' for another path`,
            'attachDisk',
          );
        }
        if (disks.some((d) => d.target === disk.target)) {
          throw new LibvirtError(VirErr.OPERATION_INVALID, `domain '${domain}' (${where}) already uses target '${disk.target}'`, 'attachDisk');
        }
        return false;
      };
      const inConfig = present(parseDomainDisks(persistentXml), 'persistent');
      let inLive = !live;
      if (live) {
        const liveXml = await this.must(conn, 'virDomainGetXMLDesc', this.api.domainGetXmlDesc(dom, 0));
        inLive = present(parseDomainDisks(liveXml), 'live');
      }
      if (inConfig && inLive) return;
      if (this.capabilities.hotplugDisks) {
        const flags = (inConfig ? 0 : DomainAffect.CONFIG) | (inLive ? 0 : DomainAffect.LIVE);
        await this.ok(conn, 'virDomainAttachDeviceFlags', this.api.domainAttachDeviceFlags(dom, diskXml, flags));
      } else {
        const redefined = await this.must(conn, 'virDomainDefineXML', this.api.domainDefineXml(conn, addDiskToDomainXml(persistentXml, disk)));
        this.api.domainFree(redefined);
      }
    });
  }

  async detachDisk(domain: string, serial: string): Promise<void> {
    checkSerial(serial);
    await this.withDomain(domain, async (conn, dom) => {
      const persistentXml = await this.must(
        conn,
        'virDomainGetXMLDesc',
        this.api.domainGetXmlDesc(dom, DomainXmlFlags.INACTIVE | DomainXmlFlags.SECURE),
      );
      const inConfig = findDiskXml(persistentXml, serial);
      if (this.capabilities.hotplugDisks) {
        const active = (await this.api.domainIsActive(dom)) === 1;
        const inLive = active ? findDiskXml(await this.must(conn, 'virDomainGetXMLDesc', this.api.domainGetXmlDesc(dom, 0)), serial) : undefined;
        const flags = (inConfig ? DomainAffect.CONFIG : 0) | (inLive ? DomainAffect.LIVE : 0);
        const xml = inLive ?? inConfig;
        if (!xml) return;
        await this.ok(conn, 'virDomainDetachDeviceFlags', this.api.domainDetachDeviceFlags(dom, xml, flags));
      } else if (inConfig) {
        const redefined = await this.must(conn, 'virDomainDefineXML', this.api.domainDefineXml(conn, removeDiskFromDomainXml(persistentXml, serial)));
        this.api.domainFree(redefined);
      }
    });
  }

  async close(): Promise<void> {
    await this.lanes.close();
  }
}

/** URIs whose hypervisor state belongs to one connection (so the instance must use one). */
function hasPrivateState(uri: string): boolean {
  return /^test:\/\/\/./.test(uri) && uri !== 'test:///default';
}

/**
 * Open a hypervisor at a libvirt URI (`test:///default`, `qemu:///system`, ...). Rejects with
 * `MissingDependency` if libvirt.so.0 is not installed, and with `LibvirtError` (libvirt's code and
 * message, e.g. VIR_ERR_NO_CONNECT for an unknown scheme) if the URI cannot be opened.
 */
/** virStoragePoolCreateFlags: build the pool (its directory) if needed before starting it. */
const VIR_STORAGE_POOL_CREATE_WITH_BUILD = 1;

export async function openHypervisor(uri: string, opts: OpenHypervisorOptions = {}): Promise<Hypervisor> {
  const api = loadLibvirt();
  const first = await openConnection(api, uri);
  const driver = (await api.connectGetType(first)) ?? 'unknown';
  const isTest = driver.toLowerCase() === 'test';
  const max = hasPrivateState(uri) ? 1 : Math.max(1, Math.floor(opts.maxConcurrentCalls ?? 8));
  const capabilities: HypervisorCapabilities = Object.freeze({
    driver,
    hotplugDisks: !isTest,
    liveDhcpHostUpdate: true,
    maxConcurrentCalls: max,
  });
  return new LibvirtHypervisor(api, new Lanes(api, uri, max, first), capabilities, { networkXmlInactiveFlag: !isTest });
}
