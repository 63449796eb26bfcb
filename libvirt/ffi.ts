/**
 * Raw koffi binding over libvirt.so.0 (the C API, libvirt >= 7.2; measured on 9.0).
 *
 * - Every libvirt call that can touch a hypervisor or a daemon runs through koffi's `.async`, i.e. on
 *   the libuv thread pool, so the event loop is never blocked. Only reference-count drops
 *   (`vir*Free`) and reading constant strings run synchronously: they do no I/O.
 * - Handles are koffi 3 pointers (BigInt). They are typed below as branded bigints and never leave
 *   the `libvirt/` layer.
 * - Errors: libvirt keeps the last error per thread (useless here: async calls run on pool threads,
 *   `virGetLastError()` on the main thread after a failed async call returns NULL — measured) and
 *   copies it into the connection object (`virConnCopyLastError`). The per-connection copy is exact
 *   only if no other call on that connection fails in between — measured on one connection with 8
 *   failing calls in flight, ~60% of errors were read back from the wrong call. Callers of this module
 *   must therefore use a connection for one call at a time (libvirt-hypervisor.ts keeps a pool of
 *   connections, one call in flight per connection). Errors raised without a connection (a failed
 *   `virConnectOpen`) reach a process-wide error callback, see `openConnection`.
 * - Strings libvirt returns to the caller (`char *`) are freed with libc `free` right after decoding.
 */
import koffi, { type LibraryHandle, type TypeObject } from 'koffi';
import { MissingDependency } from '../core/errors';

/** Opaque libvirt handles (koffi 3 represents pointers as BigInt). */
export type ConnectPtr = bigint & { readonly __brand: 'virConnectPtr' };
export type DomainPtr = bigint & { readonly __brand: 'virDomainPtr' };
export type NetworkPtr = bigint & { readonly __brand: 'virNetworkPtr' };
export type StoragePoolPtr = bigint & { readonly __brand: 'virStoragePoolPtr' };
export type StorageVolPtr = bigint & { readonly __brand: 'virStorageVolPtr' };

/** virErrorNumber values this layer cares about (libvirt/virterror.h). */
export const VirErr = {
  INTERNAL_ERROR: 1,
  NO_SUPPORT: 3,
  NO_CONNECT: 5,
  INVALID_CONN: 6,
  INVALID_ARG: 8,
  OPERATION_FAILED: 9,
  XML_ERROR: 27,
  DOM_EXIST: 28,
  XML_DETAIL: 35,
  NETWORK_EXIST: 37,
  SYSTEM_ERROR: 38,
  RPC: 39,
  NO_DOMAIN: 42,
  NO_NETWORK: 43,
  INVALID_MAC: 44,
  NO_STORAGE_POOL: 49,
  NO_STORAGE_VOL: 50,
  OPERATION_INVALID: 55,
  CONFIG_UNSUPPORTED: 67,
  OPERATION_TIMEOUT: 68,
  ARGUMENT_UNSUPPORTED: 74,
  STORAGE_POOL_BUILT: 76,
  OPERATION_UNSUPPORTED: 84,
  RESOURCE_BUSY: 87,
  ACCESS_DENIED: 88,
  STORAGE_VOL_EXIST: 90,
  XML_INVALID_SCHEMA: 92,
  DEVICE_MISSING: 99,
} as const;

const codeNames = new Map<number, string>(Object.entries(VirErr).map(([k, v]) => [v, `VIR_ERR_${k}`]));

/** A failed libvirt call: `code` is libvirt's virErrorNumber, `message` libvirt's own text. */
export class LibvirtError extends Error {
  /** virErrorNumber, e.g. 42 (VIR_ERR_NO_DOMAIN). */
  readonly code: number;
  /** Symbolic name of `code` when known (`VIR_ERR_NO_DOMAIN`), else `VIR_ERR_<n>`. */
  readonly codeName: string;
  /** virErrorDomain: which part of libvirt raised it (e.g. 12 = test driver, 10 = QEMU). */
  readonly errorDomain: number;
  /** The libvirt C function that failed, e.g. `virDomainCreate`. */
  readonly operation: string;

  constructor(code: number, message: string, operation: string, errorDomain = 0) {
    super(message);
    this.name = 'LibvirtError';
    this.code = code;
    this.codeName = codeNames.get(code) ?? `VIR_ERR_${code}`;
    this.errorDomain = errorDomain;
    this.operation = operation;
  }

  /** True for the "no such domain/network/pool/volume" family of codes. */
  get isNotFound(): boolean {
    return (
      this.code === VirErr.NO_DOMAIN ||
      this.code === VirErr.NO_NETWORK ||
      this.code === VirErr.NO_STORAGE_POOL ||
      this.code === VirErr.NO_STORAGE_VOL
    );
  }
}

export const LIBVIRT_SONAME = 'libvirt.so.0';

// ---- C flag values (libvirt-domain.h, libvirt-network.h, libvirt-storage.h) ----
export const DomainXmlFlags = { SECURE: 1, INACTIVE: 2 } as const;
export const DomainAffect = { CURRENT: 0, LIVE: 1, CONFIG: 2 } as const;
export const DomainUndefineFlags = { MANAGED_SAVE: 1, SNAPSHOTS_METADATA: 2, NVRAM: 4, CHECKPOINTS_METADATA: 16 } as const;
export const NetworkUpdateCommand = { MODIFY: 1, DELETE: 2, ADD_LAST: 3, ADD_FIRST: 4 } as const;
export const NetworkSection = { IP_DHCP_HOST: 4 } as const;
export const NetworkAffect = { CURRENT: 0, LIVE: 1, CONFIG: 2 } as const;
export const NetworkXmlFlags = { INACTIVE: 1 } as const;
/** virDomainState, index = C value. */
export const DOMAIN_STATES = ['nostate', 'running', 'blocked', 'paused', 'shutdown', 'shutoff', 'crashed', 'pmsuspended'] as const;

/** The raw error record (virError). Only code/domain/message are used. */
interface VirErrorRecord {
  code: number;
  domain: number;
  message: string | null;
}

export interface NodeInfo {
  model: string;
  /** KiB */
  memoryKiB: number;
  cpus: number;
  mhz: number;
}

/** virDomainGetInfo's record. */
export interface DomainInfo {
  /** virDomainState as a number (index into DOMAIN_STATES). */
  state: number;
  maxMemKiB: number;
  memoryKiB: number;
  vcpus: number;
  /** CPU time used, ns. On the test driver this is the host's wall clock (libvirt 9.0 test_driver.c). */
  cpuTimeNs: number;
}

/** One domain's record of virConnectGetAllDomainStats: its name and its typed parameters (numbers only). */
export interface DomainStatsRecord {
  name: string;
  params: Record<string, number>;
}

/** virDomainStatsTypes bits used by this layer. */
export const DomainStatsTypes = { STATE: 1, CPU_TOTAL: 2, BALLOON: 4, VCPU: 8, INTERFACE: 16, BLOCK: 32 } as const;

export interface PoolInfo {
  /** virStoragePoolState: 2 = running */
  state: number;
  capacityBytes: number;
  allocationBytes: number;
  availableBytes: number;
}

type Async<A extends unknown[], R> = (...args: A) => Promise<R>;

/** The typed surface of libvirt.so.0 used by this layer. Async members run on the libuv pool. */
export interface LibvirtApi {
  // connection
  connectOpen: Async<[uri: string], ConnectPtr | null>;
  connectClose: Async<[ConnectPtr], number>;
  /** Driver name, e.g. 'QEMU', 'TEST' (an RPC on remote connections the first time). */
  connectGetType: Async<[ConnectPtr], string | null>;
  connectGetHostname: Async<[ConnectPtr], string | null>;
  connectGetUri: Async<[ConnectPtr], string | null>;
  connectGetLibVersion: Async<[ConnectPtr], number | null>;
  nodeGetInfo: Async<[ConnectPtr], NodeInfo | null>;
  /** The error of the last failed call on `conn` (exact only if the connection runs one call at a time). */
  connLastError(conn: ConnectPtr, operation: string): LibvirtError;
  // domains
  domainDefineXml: Async<[ConnectPtr, string], DomainPtr | null>;
  domainLookupByName: Async<[ConnectPtr, string], DomainPtr | null>;
  domainCreate: Async<[DomainPtr], number>;
  domainShutdown: Async<[DomainPtr], number>;
  domainReboot: Async<[DomainPtr, number], number>;
  domainDestroy: Async<[DomainPtr], number>;
  domainUndefineFlags: Async<[DomainPtr, number], number>;
  domainGetState: Async<[DomainPtr], number | null>;
  domainGetXmlDesc: Async<[DomainPtr, number], string | null>;
  domainGetUuidString: Async<[DomainPtr], string | null>;
  domainAttachDeviceFlags: Async<[DomainPtr, string, number], number>;
  domainDetachDeviceFlags: Async<[DomainPtr, string, number], number>;
  domainIsActive: Async<[DomainPtr], number>;
  domainGetInfo: Async<[DomainPtr], DomainInfo | null>;
  /**
   * virConnectGetAllDomainStats: one call for every domain of the connection (`stats` = a mask of
   * DomainStatsTypes; groups the driver lacks are left out, not an error). Null on failure.
   */
  connectGetAllDomainStats: Async<[ConnectPtr, number], DomainStatsRecord[] | null>;
  /** Names of all domains (active and inactive), or null on failure. */
  listAllDomainNames: Async<[ConnectPtr], string[] | null>;
  domainFree(dom: DomainPtr): void;
  // storage
  storagePoolLookupByName: Async<[ConnectPtr, string], StoragePoolPtr | null>;
  storagePoolDefineXml: Async<[ConnectPtr, string, number], StoragePoolPtr | null>;
  storagePoolBuild: Async<[StoragePoolPtr, number], number>;
  storagePoolCreate: Async<[StoragePoolPtr, number], number>;
  storagePoolSetAutostart: Async<[StoragePoolPtr, number], number>;
  storagePoolIsActive: Async<[StoragePoolPtr], number>;
  storagePoolRefresh: Async<[StoragePoolPtr, number], number>;
  storagePoolGetInfo: Async<[StoragePoolPtr], PoolInfo | null>;
  storagePoolGetXmlDesc: Async<[StoragePoolPtr, number], string | null>;
  storagePoolFree(pool: StoragePoolPtr): void;
  storageVolCreateXml: Async<[StoragePoolPtr, string, number], StorageVolPtr | null>;
  storageVolLookupByName: Async<[StoragePoolPtr, string], StorageVolPtr | null>;
  storageVolDelete: Async<[StorageVolPtr, number], number>;
  storageVolGetPath: Async<[StorageVolPtr], string | null>;
  storageVolGetXmlDesc: Async<[StorageVolPtr, number], string | null>;
  /** Names of all volumes of a pool, or null on failure. */
  listAllVolumeNames: Async<[StoragePoolPtr], string[] | null>;
  storageVolFree(vol: StorageVolPtr): void;
  // networks
  networkDefineXml: Async<[ConnectPtr, string], NetworkPtr | null>;
  networkLookupByName: Async<[ConnectPtr, string], NetworkPtr | null>;
  networkCreate: Async<[NetworkPtr], number>;
  networkDestroy: Async<[NetworkPtr], number>;
  networkUndefine: Async<[NetworkPtr], number>;
  networkIsActive: Async<[NetworkPtr], number>;
  networkSetAutostart: Async<[NetworkPtr, number], number>;
  networkGetXmlDesc: Async<[NetworkPtr, number], string | null>;
  networkGetUuidString: Async<[NetworkPtr], string | null>;
  networkUpdate: Async<[NetworkPtr, number, number, number, string, number], number>;
  /** Names of all networks (active and inactive), or null on failure. */
  listAllNetworkNames: Async<[ConnectPtr], string[] | null>;
  networkFree(net: NetworkPtr): void;
  /** Error raised outside any connection (e.g. by a failed virConnectOpen) since the last call of this. */
  takeGlobalError(): VirErrorRecord | undefined;
}

type KoffiFn = ReturnType<LibraryHandle['func']>;
type TypeSpec = string | TypeObject | ReturnType<typeof koffi.out>;

/** Promisify a koffi function's `.async` (callback last) without util.promisify's typing gaps. */
function promisified<R>(fn: KoffiFn): (...args: unknown[]) => Promise<R> {
  return (...args: unknown[]) =>
    new Promise<R>((resolve, reject) => {
      fn.async(...args, (err: unknown, res: R) => (err ? reject(err as Error) : resolve(res)));
    });
}

let cached: LibvirtApi | undefined;

/**
 * Load libvirt.so.0 and declare the functions. Idempotent. Throws `MissingDependency` (one line, with
 * the install command) when the shared library cannot be loaded. `soname` is for tests only.
 */
export function loadLibvirt(soname: string = LIBVIRT_SONAME): LibvirtApi {
  if (soname === LIBVIRT_SONAME && cached) return cached;
  raiseAsyncStack();
  let lib: LibraryHandle;
  try {
    lib = koffi.load(soname);
  } catch {
    throw new MissingDependency(
      `${soname} not found: install it with \`apt-get install libvirt0\` (Debian/Ubuntu)`,
    );
  }
  const api = bind(lib);
  if (soname === LIBVIRT_SONAME) cached = api;
  return api;
}

/**
 * koffi runs async calls on its own stacks, 128 KiB by default, guarded: an overflow kills the
 * process. libvirt's client code (XML parsing, RPC marshalling) was not written for small stacks, so
 * give each async call 1 MiB (virtual; only touched pages cost memory). koffi accepts this only before
 * the first library is loaded in the process; if another module loaded one first, keep its settings.
 */
function raiseAsyncStack(): void {
  const want = 1024 * 1024;
  try {
    if ((koffi.config().async_stack_size ?? 0) < want) koffi.config({ ...koffi.config(), async_stack_size: want });
  } catch {
    // too late for this process: defaults stay
  }
}

function bind(lib: LibraryHandle): LibvirtApi {
  // Types are anonymous objects (no koffi name registry), so binding twice in one process is safe.
  const ptr = 'void *';
  const str = 'const char *';
  // A `char *` the caller must free: decoded to a JS string, then freed with libc free().
  const heapStr = koffi.disposable('char *');
  const virError = koffi.struct({
    code: 'int',
    domain: 'int',
    message: 'char *',
    level: 'int',
    conn: 'void *',
    dom: 'void *',
    str1: 'char *',
    str2: 'char *',
    str3: 'char *',
    int1: 'int',
    int2: 'int',
    net: 'void *',
  });
  const virNodeInfo = koffi.struct({
    model: koffi.array('char', 32, 'String'),
    memory: 'unsigned long',
    cpus: 'unsigned int',
    mhz: 'unsigned int',
    nodes: 'unsigned int',
    sockets: 'unsigned int',
    cores: 'unsigned int',
    threads: 'unsigned int',
  });
  const virStoragePoolInfo = koffi.struct({
    state: 'int',
    capacity: 'unsigned long long',
    allocation: 'unsigned long long',
    available: 'unsigned long long',
  });
  const virDomainInfo = koffi.struct({
    state: 'unsigned char',
    maxMem: 'unsigned long',
    memory: 'unsigned long',
    nrVirtCpu: 'unsigned short',
    cpuTime: 'unsigned long long',
  });
  // virTypedParameter: char field[80]; int type; union (8 bytes) value. The union is read as raw
  // bytes and interpreted by `type` below (koffi unions would decode every member).
  const virTypedParameter = koffi.struct({
    field: koffi.array('char', 80, 'String'),
    type: 'int',
    pad: 'int', // the union is 8-byte aligned (offset 88); a byte array alone would sit at 84
    value: koffi.array('uint8', 8, 'Typed'),
  });
  const virDomainStatsRecord = koffi.struct({ dom: ptr, params: ptr, nparams: 'int' });
  const errorFuncProto = koffi.proto('void', [ptr, koffi.pointer(virError)]);

  const f = (name: string, ret: TypeSpec, args: TypeSpec[]): KoffiFn => lib.func(name, ret, args);
  const a = <R>(name: string, ret: TypeSpec, args: TypeSpec[]) => promisified<R>(f(name, ret, args));

  // --- errors ---
  const virSetErrorFunc = f('virSetErrorFunc', 'void', [ptr, koffi.pointer(errorFuncProto)]);
  const virConnSetErrorFunc = f('virConnSetErrorFunc', 'void', [ptr, ptr, koffi.pointer(errorFuncProto)]);
  const virConnCopyLastError = f('virConnCopyLastError', 'int', [ptr, ptr]);
  const virResetError = f('virResetError', 'void', [ptr]);

  // One process-wide error callback (libvirt calls it on the failing thread; koffi runs it on the main
  // thread while that thread waits). It replaces libvirt's default handler, which prints every error
  // to stderr, and it is the only way to see errors raised without a connection (virConnectOpen).
  // userData = NULL for the global handler, non-NULL for per-connection ones (ignored: those errors
  // are read back exactly with virConnCopyLastError).
  let globalError: VirErrorRecord | undefined;
  const onError = (userData: unknown, err: unknown): void => {
    if (userData) return;
    try {
      const e = koffi.decode(err, virError) as VirErrorRecord;
      globalError = { code: e.code, domain: e.domain, message: e.message };
    } catch {
      // never throw into C
    }
  };
  const errorCallback = koffi.register(onError, koffi.pointer(errorFuncProto));
  virSetErrorFunc(null, errorCallback);

  const connLastError = (conn: ConnectPtr, operation: string): LibvirtError => {
    const buf = koffi.alloc(virError, 1) as unknown;
    try {
      const rc = virConnCopyLastError(conn, buf) as number;
      const e = koffi.decode(buf, virError) as VirErrorRecord;
      virResetError(buf);
      if (rc <= 0 || e.code === 0) return new LibvirtError(VirErr.INTERNAL_ERROR, `${operation} failed (libvirt reported no error)`, operation);
      return new LibvirtError(e.code, e.message ?? `${operation} failed`, operation, e.domain);
    } finally {
      koffi.free(buf);
    }
  };

  // --- connection ---
  const virConnectOpenAsync = a<ConnectPtr | null>('virConnectOpen', ptr, [str]);
  const connectOpen = async (uri: string): Promise<ConnectPtr | null> => {
    const conn = await virConnectOpenAsync(uri);
    if (conn) virConnSetErrorFunc(conn, 1n, errorCallback);
    return conn;
  };
  const virConnectGetType = a<string | null>('virConnectGetType', str, [ptr]);
  const virConnectGetLibVersion = a<number>('virConnectGetLibVersion', 'int', [ptr, koffi.out(koffi.pointer('unsigned long'))]);
  const virNodeGetInfo = a<number>('virNodeGetInfo', 'int', [ptr, koffi.out(koffi.pointer(virNodeInfo))]);
  const virDomainGetState = a<number>('virDomainGetState', 'int', [ptr, koffi.out(koffi.pointer('int')), koffi.out(koffi.pointer('int')), 'unsigned int']);
  const virDomainGetInfo = a<number>('virDomainGetInfo', 'int', [ptr, koffi.out(koffi.pointer(virDomainInfo))]);
  const virConnectGetAllDomainStats = a<number>('virConnectGetAllDomainStats', 'int', [ptr, 'unsigned int', koffi.out(koffi.pointer(ptr)), 'unsigned int']);
  const virDomainStatsRecordListFree = f('virDomainStatsRecordListFree', 'void', [ptr]);
  const virDomainGetNameSync = f('virDomainGetName', str, [ptr]);
  const virStoragePoolGetInfo = a<number>('virStoragePoolGetInfo', 'int', [ptr, koffi.out(koffi.pointer(virStoragePoolInfo))]);
  const virDomainGetUUIDString = a<number>('virDomainGetUUIDString', 'int', [ptr, ptr]);
  const virNetworkGetUUIDString = a<number>('virNetworkGetUUIDString', 'int', [ptr, ptr]);

  // --- list-all helpers: C returns an array of handles the caller frees, then frees the array ---
  const libcFree = (p: unknown): void => koffi.free(p);
  const listNames = (listFn: string, nameFn: string, freeFn: string) => {
    const list = a<number>(listFn, 'int', [ptr, koffi.out(koffi.pointer(ptr)), 'unsigned int']);
    const getName = f(nameFn, str, [ptr]);
    const free = f(freeFn, 'int', [ptr]);
    return async (parent: bigint): Promise<string[] | null> => {
      const out: [bigint | null] = [null];
      const n = await list(parent, out, 0);
      if (n < 0) return null;
      const arr = out[0];
      if (!arr) return [];
      try {
        const handles = koffi.decode(arr, ptr, n) as bigint[];
        const names: string[] = [];
        for (const h of handles) {
          names.push(getName(h) as string);
          free(h);
        }
        return names.sort();
      } finally {
        libcFree(arr);
      }
    };
  };

  const uuidString = (fn: (...args: unknown[]) => Promise<number>) => async (h: bigint): Promise<string | null> => {
    const buf = Buffer.alloc(37 + 3);
    if ((await fn(h, buf)) < 0) return null;
    return buf.toString('latin1', 0, buf.indexOf(0));
  };

  const syncFree = (name: string) => {
    const fn = f(name, 'int', [ptr]);
    return (h: bigint): void => {
      fn(h);
    };
  };

  return {
    connectOpen,
    connectClose: a('virConnectClose', 'int', [ptr]),
    connectGetType: virConnectGetType,
    connectGetHostname: a('virConnectGetHostname', heapStr, [ptr]),
    connectGetUri: a('virConnectGetURI', heapStr, [ptr]),
    connectGetLibVersion: async (conn) => {
      const out: [number] = [0];
      return (await virConnectGetLibVersion(conn, out)) < 0 ? null : Number(out[0]);
    },
    nodeGetInfo: async (conn) => {
      const out: Record<string, unknown> = {};
      if ((await virNodeGetInfo(conn, out)) < 0) return null;
      return {
        model: String(out.model ?? ''),
        memoryKiB: Number(out.memory),
        cpus: Number(out.cpus),
        mhz: Number(out.mhz),
      };
    },
    connLastError,

    domainDefineXml: a('virDomainDefineXML', ptr, [ptr, str]),
    domainLookupByName: a('virDomainLookupByName', ptr, [ptr, str]),
    domainCreate: a('virDomainCreate', 'int', [ptr]),
    domainShutdown: a('virDomainShutdown', 'int', [ptr]),
    domainReboot: a('virDomainReboot', 'int', [ptr, 'unsigned int']),
    domainDestroy: a('virDomainDestroy', 'int', [ptr]),
    domainUndefineFlags: a('virDomainUndefineFlags', 'int', [ptr, 'unsigned int']),
    domainGetState: async (dom) => {
      const state: [number] = [0];
      const reason: [number] = [0];
      return (await virDomainGetState(dom, state, reason, 0)) < 0 ? null : state[0];
    },
    domainGetXmlDesc: a('virDomainGetXMLDesc', heapStr, [ptr, 'unsigned int']),
    domainGetUuidString: uuidString(virDomainGetUUIDString),
    domainAttachDeviceFlags: a('virDomainAttachDeviceFlags', 'int', [ptr, str, 'unsigned int']),
    domainDetachDeviceFlags: a('virDomainDetachDeviceFlags', 'int', [ptr, str, 'unsigned int']),
    domainIsActive: a('virDomainIsActive', 'int', [ptr]),
    domainGetInfo: async (dom) => {
      const out: Record<string, unknown> = {};
      if ((await virDomainGetInfo(dom, out)) < 0) return null;
      return {
        state: Number(out.state),
        maxMemKiB: Number(out.maxMem),
        memoryKiB: Number(out.memory),
        vcpus: Number(out.nrVirtCpu),
        cpuTimeNs: Number(out.cpuTime),
      };
    },
    connectGetAllDomainStats: async (conn, stats) => {
      const out: [bigint | null] = [null];
      const n = await virConnectGetAllDomainStats(conn, stats, out, 0);
      if (n < 0) return null;
      const list = out[0];
      if (!list) return [];
      try {
        const recordPtrs = koffi.decode(list, ptr, n) as bigint[];
        return recordPtrs.map((rp) => {
          const rec = koffi.decode(rp, virDomainStatsRecord) as { dom: bigint; params: bigint | null; nparams: number };
          const params: Record<string, number> = {};
          const raw = rec.params && rec.nparams > 0 ? (koffi.decode(rec.params, virTypedParameter, rec.nparams) as Array<{ field: string; type: number; value: Uint8Array }>) : [];
          for (const p of raw) {
            const v = typedParamNumber(p.type, p.value);
            if (v !== undefined) params[p.field] = v;
          }
          return { name: virDomainGetNameSync(rec.dom) as string, params };
        });
      } finally {
        virDomainStatsRecordListFree(list); // frees the records, their params and their domain refs
      }
    },
    listAllDomainNames: listNames('virConnectListAllDomains', 'virDomainGetName', 'virDomainFree'),
    domainFree: syncFree('virDomainFree'),

    storagePoolLookupByName: a('virStoragePoolLookupByName', ptr, [ptr, str]),
    storagePoolDefineXml: a('virStoragePoolDefineXML', ptr, [ptr, str, 'unsigned int']),
    storagePoolBuild: a('virStoragePoolBuild', 'int', [ptr, 'unsigned int']),
    storagePoolCreate: a('virStoragePoolCreate', 'int', [ptr, 'unsigned int']),
    storagePoolSetAutostart: a('virStoragePoolSetAutostart', 'int', [ptr, 'int']),
    storagePoolIsActive: a('virStoragePoolIsActive', 'int', [ptr]),
    storagePoolRefresh: a('virStoragePoolRefresh', 'int', [ptr, 'unsigned int']),
    storagePoolGetInfo: async (pool) => {
      const out: Record<string, unknown> = {};
      if ((await virStoragePoolGetInfo(pool, out)) < 0) return null;
      return {
        state: Number(out.state),
        capacityBytes: Number(out.capacity),
        allocationBytes: Number(out.allocation),
        availableBytes: Number(out.available),
      };
    },
    storagePoolGetXmlDesc: a('virStoragePoolGetXMLDesc', heapStr, [ptr, 'unsigned int']),
    storagePoolFree: syncFree('virStoragePoolFree'),
    storageVolCreateXml: a('virStorageVolCreateXML', ptr, [ptr, str, 'unsigned int']),
    storageVolLookupByName: a('virStorageVolLookupByName', ptr, [ptr, str]),
    storageVolDelete: a('virStorageVolDelete', 'int', [ptr, 'unsigned int']),
    storageVolGetPath: a('virStorageVolGetPath', heapStr, [ptr]),
    storageVolGetXmlDesc: a('virStorageVolGetXMLDesc', heapStr, [ptr, 'unsigned int']),
    listAllVolumeNames: listNames('virStoragePoolListAllVolumes', 'virStorageVolGetName', 'virStorageVolFree'),
    storageVolFree: syncFree('virStorageVolFree'),

    networkDefineXml: a('virNetworkDefineXML', ptr, [ptr, str]),
    networkLookupByName: a('virNetworkLookupByName', ptr, [ptr, str]),
    networkCreate: a('virNetworkCreate', 'int', [ptr]),
    networkDestroy: a('virNetworkDestroy', 'int', [ptr]),
    networkUndefine: a('virNetworkUndefine', 'int', [ptr]),
    networkIsActive: a('virNetworkIsActive', 'int', [ptr]),
    networkSetAutostart: a('virNetworkSetAutostart', 'int', [ptr, 'int']),
    networkGetXmlDesc: a('virNetworkGetXMLDesc', heapStr, [ptr, 'unsigned int']),
    networkGetUuidString: uuidString(virNetworkGetUUIDString),
    networkUpdate: a('virNetworkUpdate', 'int', [ptr, 'unsigned int', 'unsigned int', 'int', str, 'unsigned int']),
    listAllNetworkNames: listNames('virConnectListAllNetworks', 'virNetworkGetName', 'virNetworkFree'),
    networkFree: syncFree('virNetworkFree'),

    takeGlobalError: () => {
      const e = globalError;
      globalError = undefined;
      return e;
    },
  };
}

/**
 * The number in a virTypedParameter's 8-byte union, by its type (1 INT, 2 UINT, 3 LLONG, 4 ULLONG,
 * 5 DOUBLE, 6 BOOLEAN); undefined for strings (7). 64-bit counters above 2^53 lose precision (a
 * byte counter reaches that after 9 PB).
 */
function typedParamNumber(type: number, bytes: Uint8Array): number | undefined {
  const view = new DataView(bytes.buffer, bytes.byteOffset, 8);
  switch (type) {
    case 1:
      return view.getInt32(0, true);
    case 2:
      return view.getUint32(0, true);
    case 3:
      return Number(view.getBigInt64(0, true));
    case 4:
      return Number(view.getBigUint64(0, true));
    case 5:
      return view.getFloat64(0, true);
    case 6:
      return view.getInt8(0);
    default:
      return undefined;
  }
}
