/**
 * The one place Stratus reads its environment. Every variable is parsed by a schema at start-up;
 * a bad value stops the process with a message naming the variable (see ConfigError).
 */
import os from 'node:os';
import path from 'node:path';
import { z } from 'zod';
import { CONDUCTOR_TASK_QUEUE } from '../temporal/constants';

const port = z.coerce.number().int().min(1).max(65535);
const positiveInt = z.coerce.number().int().positive();
const optionalText = z.string().trim().min(1).optional();
/** Per-project limits when neither the environment nor PUT /v1/projects/{id}/quota says otherwise. */
export const DEFAULT_QUOTAS = { servers: 20, vcpus: 40, ram_mb: 102400, volumes: 20, volume_gb: 1000, ports: 100 } as const;

/** A quota limit: a count, or -1 for unlimited. */
const quotaLimit = z.coerce.number().int().min(-1);

/** Variable name → schema. Empty strings count as unset. */
const schema = z.object({
  STRATUS_DATA_DIR: z.string().default('./.stratus'),
  STRATUS_API_HOST: z.string().default('127.0.0.1'),
  STRATUS_API_PORT: port.default(8080),
  STRATUS_PUBLIC_URL: z.url().optional(),
  STRATUS_REGION: z.string().regex(/^[\w.-]{1,64}$/, 'letters, digits, . _ - (at most 64)').default('RegionOne'),
  DATABASE_URL: z
    .string()
    .regex(/^postgres(ql)?:\/\//, 'must be a postgres:// or postgresql:// URL')
    .optional(),
  TEMPORAL_ADDRESS: z
    .string()
    .regex(/^[^\s/:]+:\d+$/, 'must be host:port')
    .optional(),
  TEMPORAL_NAMESPACE: z.string().regex(/^[A-Za-z0-9._-]+$/).default('stratus'),
  TEMPORAL_PORT: port.default(7233),
  TEMPORAL_UI_PORT: port.default(8233),
  TEMPORAL_UI_URL: z.url().optional(),
  TEMPORAL_CLI_PATH: optionalText,
  STRATUS_CONDUCTOR_TASK_QUEUE: z
    .string()
    .regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$/, 'must be a task queue name (letters, digits, . _ -; at most 200)')
    .refine((q) => !q.startsWith('host.'), 'must not start with "host." (the host agents\' queues)')
    .default(CONDUCTOR_TASK_QUEUE),
  STRATUS_WORKFLOW_CACHE: z.coerce.number().int().min(0).max(100000).default(100),
  STRATUS_LIBVIRT_URI: z.string().min(1).default('test:///default'),
  STRATUS_DOMAIN_TYPE: z.enum(['qemu', 'kvm']).optional(),
  STRATUS_HOST_NAME: z
    .string()
    .regex(/^[A-Za-z0-9][A-Za-z0-9.-]{0,62}$/, 'must be a host name (letters, digits, dots, dashes)')
    .default(() => os.hostname().split('.')[0] ?? 'localhost'),
  STRATUS_HOST_VCPUS: positiveInt.optional(),
  STRATUS_HOST_RAM_MB: positiveInt.optional(),
  STRATUS_HOST_DISK_GB: positiveInt.optional(),
  STRATUS_CPU_ALLOCATION_RATIO: z.coerce.number().positive().max(64).default(4),
  STRATUS_RAM_ALLOCATION_RATIO: z.coerce.number().positive().max(64).default(1),
  STRATUS_DISK_ALLOCATION_RATIO: z.coerce.number().positive().max(64).default(1),
  STRATUS_SCHEDULER_RAM_WEIGHER: z.enum(['spread', 'pack']).default('spread'),
  STRATUS_QUOTA_SERVERS: quotaLimit.default(DEFAULT_QUOTAS.servers),
  STRATUS_QUOTA_VCPUS: quotaLimit.default(DEFAULT_QUOTAS.vcpus),
  STRATUS_QUOTA_RAM_MB: quotaLimit.default(DEFAULT_QUOTAS.ram_mb),
  STRATUS_QUOTA_VOLUMES: quotaLimit.default(DEFAULT_QUOTAS.volumes),
  STRATUS_QUOTA_VOLUME_GB: quotaLimit.default(DEFAULT_QUOTAS.volume_gb),
  STRATUS_QUOTA_PORTS: quotaLimit.default(DEFAULT_QUOTAS.ports),
  STRATUS_HOST_HEARTBEAT_SECONDS: positiveInt.default(10),
  STRATUS_STORAGE_POOL: z.string().regex(/^[A-Za-z0-9_.-]+$/).default('stratus'),
  STRATUS_STORAGE_POOL_DIR: z.string().optional(),
  STRATUS_ADMIN_PASSWORD: z.string().min(8, 'must be at least 8 characters').optional(),
  STRATUS_TOKEN_TTL_SECONDS: positiveInt.default(3600),
  STRATUS_SECRET_KEY: z.string().min(32, 'must be at least 32 characters (e.g. `openssl rand -hex 32`)').optional(),
  STRATUS_IMAGE_DIR: z.string().optional(),
  STRATUS_IMAGE_CACHE_DIR: z.string().optional(),
  STRATUS_IMAGE_URL_TTL_SECONDS: positiveInt.default(3600),
  // Convergence (issue 7): how many host activities one agent runs at once; the reconciler's rhythm.
  STRATUS_HOST_MAX_CONCURRENT_ACTIVITIES: positiveInt.default(8),
  STRATUS_RECONCILE_SECONDS: positiveInt.default(15),
  STRATUS_RECONCILE_GRACE_SECONDS: positiveInt.default(30),
  STRATUS_METER_INTERVAL: z.coerce.number().min(0.1).max(86400).default(60),
  STRATUS_CONSOLE_IDLE_SECONDS: positiveInt.max(86400).default(120),
  STRATUS_METRICS_PORT: port.optional(),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
});

export type RawConfig = z.infer<typeof schema>;

/** Never echoed in error messages. */
const SECRET_VARIABLES: ReadonlySet<string> = new Set(['STRATUS_SECRET_KEY', 'STRATUS_ADMIN_PASSWORD']);

export interface Config {
  dataDir: string;
  /** `region`: the region of the OpenStack service catalog (clients match it against their `region_name`). */
  api: { host: string; port: number; publicUrl: string; region: string };
  database: { kind: 'postgres'; url: string } | { kind: 'pglite'; dir: string };
  temporal: {
    /** host:port of an existing server; undefined means "start the embedded dev server". */
    address: string | undefined;
    namespace: string;
    port: number;
    uiPort: number;
    uiUrl: string;
    cliPath: string | undefined;
    /**
     * The conductor's task queue (STRATUS_CONDUCTOR_TASK_QUEUE): every workflow and every conductor
     * activity runs there. Every process of one cloud (api, conductor, agents) must name the same one;
     * two clouds sharing a Temporal namespace need different ones, or each steals the other's tasks.
     */
    conductorTaskQueue: string;
    /** Workflow executions a conductor keeps in memory (Temporal's sticky cache); 0 disables the cache. */
    workflowCacheSize: number;
  };
  host: {
    name: string;
    libvirtUri: string;
    /**
     * libvirt domain type of servers on a QEMU host: 'qemu' (TCG emulation, the default: works
     * everywhere) or 'kvm' (needs a usable /dev/kvm). libvirt's test driver always uses 'test'.
     */
    domainType: 'qemu' | 'kvm' | undefined;
    /** Capacity overrides; unset fields are read from libvirt. */
    vcpus: number | undefined;
    ramMb: number | undefined;
    diskGb: number | undefined;
    heartbeatSeconds: number;
    /** The libvirt storage pool for disks and volumes (a directory pool, created if absent). */
    storagePool: string;
    storagePoolDir: string;
    /** The agent's image cache: one file per image, named by its sha256. */
    imageCacheDir: string;
  };
  images: {
    /** Where the filesystem image store keeps image bytes (shared by every api process). */
    storeDir: string;
    /** HMAC key of signed image download URLs; unset → `stratus up` generates one (images/signed-url.ts). */
    secretKey: string | undefined;
    /** Lifetime of the signed download URLs the conductor hands to host agents. */
    urlTtlSeconds: number;
  };
  identity: { adminPassword: string | undefined; tokenTtlSeconds: number };
  /** Placement defaults (a host's own ratios, set by PATCH /v1/hosts/{name}, win). */
  scheduler: {
    /** Nova's cpu/ram/disk_allocation_ratio: what may be claimed per unit of reported capacity. */
    ratios: { cpu: number; ram: number; disk: number };
    /** spread: most free RAM first; pack: least free RAM first. */
    ramWeigher: 'spread' | 'pack';
  };
  /** Default per-project limits (-1: unlimited); PUT /v1/projects/{id}/quota overrides them per project. */
  quotas: Record<keyof typeof DEFAULT_QUOTAS, number>;
  /** Host agent: activities one agent runs at once (a burst queues instead of drowning the host). */
  agent: { maxConcurrentActivities: number };
  /** The reconciler: seconds between rounds; a running operation younger than graceSeconds is left alone. */
  reconcile: { intervalSeconds: number; graceSeconds: number };
  metering: {
    /** Seconds between two samples of a server (STRATUS_METER_INTERVAL, default 60; fractions allowed for tests). */
    intervalSeconds: number;
  };
  /** A server's console session ends this long after its last read (STRATUS_CONSOLE_IDLE_SECONDS, default 120). */
  console: { idleSeconds: number };
  /**
   * Port of a separate Prometheus /metrics endpoint (STRATUS_METRICS_PORT). Unset: `stratus up` and
   * `stratus api` serve metrics on the API's /metrics; a conductor or agent alone serves none.
   */
  metricsPort: number | undefined;
  logLevel: RawConfig['LOG_LEVEL'];
}

/** A bad or missing configuration value; `message` names the variable and is fit to print alone. */
export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const cleaned = Object.fromEntries(
    Object.keys(schema.shape).map((key) => [key, env[key] === '' ? undefined : env[key]]),
  );
  const parsed = schema.safeParse(cleaned);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((issue) => {
      const name = String(issue.path[0] ?? '?');
      const shown = SECRET_VARIABLES.has(name) ? '(hidden)' : JSON.stringify(env[name] ?? '');
      return `${name}=${shown}: ${issue.message}`;
    });
    throw new ConfigError(`invalid configuration: ${problems.join('; ')}`);
  }
  const e = parsed.data;
  const dataDir = path.resolve(e.STRATUS_DATA_DIR);
  return {
    dataDir,
    api: {
      host: e.STRATUS_API_HOST,
      port: e.STRATUS_API_PORT,
      publicUrl: (e.STRATUS_PUBLIC_URL ?? `http://localhost:${e.STRATUS_API_PORT}`).replace(/\/$/, ''),
      region: e.STRATUS_REGION,
    },
    database: e.DATABASE_URL
      ? { kind: 'postgres', url: e.DATABASE_URL }
      : { kind: 'pglite', dir: path.join(dataDir, 'db') },
    temporal: {
      address: e.TEMPORAL_ADDRESS,
      namespace: e.TEMPORAL_NAMESPACE,
      port: e.TEMPORAL_PORT,
      uiPort: e.TEMPORAL_UI_PORT,
      uiUrl: (e.TEMPORAL_UI_URL ?? `http://localhost:${e.TEMPORAL_UI_PORT}`).replace(/\/$/, ''),
      cliPath: e.TEMPORAL_CLI_PATH,
      conductorTaskQueue: e.STRATUS_CONDUCTOR_TASK_QUEUE,
      workflowCacheSize: e.STRATUS_WORKFLOW_CACHE,
    },
    host: {
      name: e.STRATUS_HOST_NAME,
      libvirtUri: e.STRATUS_LIBVIRT_URI,
      domainType: e.STRATUS_DOMAIN_TYPE,
      vcpus: e.STRATUS_HOST_VCPUS,
      ramMb: e.STRATUS_HOST_RAM_MB,
      diskGb: e.STRATUS_HOST_DISK_GB,
      heartbeatSeconds: e.STRATUS_HOST_HEARTBEAT_SECONDS,
      storagePool: e.STRATUS_STORAGE_POOL,
      storagePoolDir: path.resolve(e.STRATUS_STORAGE_POOL_DIR ?? path.join(dataDir, 'pool')),
      imageCacheDir: path.resolve(e.STRATUS_IMAGE_CACHE_DIR ?? path.join(dataDir, 'hosts', e.STRATUS_HOST_NAME, 'images')),
    },
    images: {
      storeDir: path.resolve(e.STRATUS_IMAGE_DIR ?? path.join(dataDir, 'images')),
      secretKey: e.STRATUS_SECRET_KEY,
      urlTtlSeconds: e.STRATUS_IMAGE_URL_TTL_SECONDS,
    },
    identity: { adminPassword: e.STRATUS_ADMIN_PASSWORD, tokenTtlSeconds: e.STRATUS_TOKEN_TTL_SECONDS },
    scheduler: {
      ratios: { cpu: e.STRATUS_CPU_ALLOCATION_RATIO, ram: e.STRATUS_RAM_ALLOCATION_RATIO, disk: e.STRATUS_DISK_ALLOCATION_RATIO },
      ramWeigher: e.STRATUS_SCHEDULER_RAM_WEIGHER,
    },
    quotas: {
      servers: e.STRATUS_QUOTA_SERVERS,
      vcpus: e.STRATUS_QUOTA_VCPUS,
      ram_mb: e.STRATUS_QUOTA_RAM_MB,
      volumes: e.STRATUS_QUOTA_VOLUMES,
      volume_gb: e.STRATUS_QUOTA_VOLUME_GB,
      ports: e.STRATUS_QUOTA_PORTS,
    },
    agent: { maxConcurrentActivities: e.STRATUS_HOST_MAX_CONCURRENT_ACTIVITIES },
    reconcile: { intervalSeconds: e.STRATUS_RECONCILE_SECONDS, graceSeconds: e.STRATUS_RECONCILE_GRACE_SECONDS },
    metering: { intervalSeconds: e.STRATUS_METER_INTERVAL },
    console: { idleSeconds: e.STRATUS_CONSOLE_IDLE_SECONDS },
    metricsPort: e.STRATUS_METRICS_PORT,
    logLevel: e.LOG_LEVEL,
  };
}
