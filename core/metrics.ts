/**
 * Prometheus metrics (prom-client). One registry per process: `stratus up` runs the api, the
 * conductor and an agent in one process, so the API's GET /metrics shows all of them; separate
 * processes (`stratus conductor`, `stratus agent`) serve their own on STRATUS_METRICS_PORT
 * (workers/metrics-server.ts). Every metric is named `stratus_*`; README "Metrics" says what each means.
 *
 * Metrics are created once per registry and looked up by name, so several parts of one process (and
 * tests that start several clouds) share them instead of failing on a duplicate registration.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

const DURATION_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120];

export interface StratusMetrics {
  registry: Registry;
  httpRequests: Counter<'method' | 'route' | 'status'>;
  httpDuration: Histogram<'method' | 'route' | 'status'>;
  operations: Counter<'kind' | 'outcome'>;
  operationDuration: Histogram<'kind' | 'outcome'>;
  stepDuration: Histogram<'workflow' | 'step' | 'outcome' | 'task_queue'>;
  hostCapacity: Gauge<'host' | 'resource'>;
  hostUsage: Gauge<'host' | 'resource'>;
  meterSamples: Counter<'status'>;
  hostStatsCalls: Counter<'host'>;
  hostStatsDuration: Histogram<'host'>;
  responseCache: Counter<'result'>;
}

let shared: StratusMetrics | undefined;

/** The process's metrics (created on first use, with Node's default process metrics). */
export function metrics(): StratusMetrics {
  shared ??= createMetrics(new Registry(), { defaultMetrics: true });
  return shared;
}

export function createMetrics(registry: Registry, opts: { defaultMetrics?: boolean } = {}): StratusMetrics {
  if (opts.defaultMetrics) collectDefaultMetrics({ register: registry, prefix: 'stratus_process_' });
  return {
    registry,
    httpRequests: new Counter({
      name: 'stratus_http_requests_total',
      help: 'API requests answered, by method, route template and status code',
      labelNames: ['method', 'route', 'status'],
      registers: [registry],
    }),
    httpDuration: new Histogram({
      name: 'stratus_http_request_duration_seconds',
      help: 'API request latency from arrival to the last byte of the response',
      labelNames: ['method', 'route', 'status'],
      buckets: DURATION_BUCKETS,
      registers: [registry],
    }),
    operations: new Counter({
      name: 'stratus_operations_total',
      help: 'Operations (workflows tracked in the operations table) finished, by kind and outcome',
      labelNames: ['kind', 'outcome'],
      registers: [registry],
    }),
    operationDuration: new Histogram({
      name: 'stratus_operation_duration_seconds',
      help: 'Operation duration from its creation to its end, by kind and outcome',
      labelNames: ['kind', 'outcome'],
      buckets: DURATION_BUCKETS,
      registers: [registry],
    }),
    stepDuration: new Histogram({
      name: 'stratus_workflow_step_duration_seconds',
      help: 'Duration of workflow steps as executed by this process: one activity each (step = activity name), by workflow type, outcome and task queue',
      labelNames: ['workflow', 'step', 'outcome', 'task_queue'],
      buckets: DURATION_BUCKETS,
      registers: [registry],
    }),
    hostCapacity: new Gauge({
      name: 'stratus_host_capacity',
      help: 'Capacity of each registered host (vcpus, ram_mb, disk_gb) as its agent last reported it, read from the database at scrape time',
      labelNames: ['host', 'resource'],
      registers: [registry],
    }),
    hostUsage: new Gauge({
      name: 'stratus_host_usage',
      help: 'Resources claimed on each host by servers (vcpus, ram_mb, disk_gb), read from the database at scrape time',
      labelNames: ['host', 'resource'],
      registers: [registry],
    }),
    meterSamples: new Counter({
      name: 'stratus_meter_samples_total',
      help: "Metering samples written, by status: ok (a reading), missed (a gap: the host did not answer in time), final",
      labelNames: ['status'],
      registers: [registry],
    }),
    hostStatsCalls: new Counter({
      name: 'stratus_host_domain_stats_calls_total',
      help: 'Bulk libvirt domain-stats calls a host agent made (one serves every meter sampling that host at once)',
      labelNames: ['host'],
      registers: [registry],
    }),
    hostStatsDuration: new Histogram({
      name: 'stratus_host_domain_stats_duration_seconds',
      help: 'Duration of one bulk libvirt domain-stats call on a host',
      labelNames: ['host'],
      buckets: DURATION_BUCKETS,
      registers: [registry],
    }),
    responseCache: new Counter({
      name: 'stratus_api_response_cache_total',
      help: 'Server list and show responses by result: hit (sent as rendered before: nothing it shows changed since), miss (rendered now, kept), uncached (no change feed: rendered, not kept)',
      labelNames: ['result'],
      registers: [registry],
    }),
  };
}
