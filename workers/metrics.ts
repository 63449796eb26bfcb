/**
 * Where the process's metrics (core/metrics.ts) are fed and served from:
 * - `activityMetricsInterceptor`: every activity this process runs (conductor steps, host steps) is
 *   timed as a workflow step, labelled by workflow type, activity name, outcome and task queue.
 * - `collectFromDatabase(db)`: host capacity and usage gauges are read from the database at scrape
 *   time (the api and the conductor have it; agents have none).
 * - `serveMetrics(host, port)`: a bare /metrics endpoint for processes without the API
 *   (STRATUS_METRICS_PORT).
 */
import http from 'node:http';
import type { ActivityInterceptorsFactory } from '@temporalio/worker';
import type { Knex } from 'knex';
import { metrics } from '../core/metrics';
import * as claims from '../db/repositories/claims';
import * as hosts from '../db/repositories/hosts';

export function activityMetricsInterceptor(taskQueue: string): ActivityInterceptorsFactory {
  return (ctx) => ({
    inbound: {
      async execute(input, next) {
        const { activityType, workflowType } = ctx.info;
        const end = metrics().stepDuration.startTimer({ workflow: workflowType, step: activityType, task_queue: taskQueue });
        try {
          const result = await next(input);
          end({ outcome: 'completed' });
          return result;
        } catch (err) {
          end({ outcome: 'failed' });
          throw err;
        }
      },
    },
  });
}

const RESOURCES = [
  ['vcpus', 'vcpus'],
  ['ram_mb', 'ramMb'],
  ['disk_gb', 'diskGb'],
] as const;

let collectDb: Knex | undefined;

/**
 * Host gauges are filled from `db` whenever the registry is scraped (the last database given wins:
 * one per process in production; tests start clouds one after another).
 */
export function collectFromDatabase(db: Knex): void {
  const m = metrics();
  if (!collectDb) {
    const previous = m.registry.metrics.bind(m.registry);
    m.registry.metrics = async () => {
      await refreshHostGauges().catch(() => undefined); // a scrape still answers when the database does not
      return previous();
    };
  }
  collectDb = db;
}

async function refreshHostGauges(): Promise<void> {
  const db = collectDb;
  if (!db) return;
  const m = metrics();
  const [{ items }, usage] = await Promise.all([hosts.list(db, { limit: 1000 }), claims.usageByHost(db)]);
  m.hostCapacity.reset();
  m.hostUsage.reset();
  for (const h of items) {
    for (const [label, key] of RESOURCES) {
      m.hostCapacity.set({ host: h.name, resource: label }, h[key]);
      m.hostUsage.set({ host: h.name, resource: label }, usage[h.name]?.[key] ?? 0);
    }
  }
}

/** Serves GET /metrics on its own port; resolves with the server once listening. */
export function serveMetrics(host: string, port: number): Promise<http.Server> {
  const server = http.createServer((req, res) => {
    if (req.method !== 'GET' || req.url?.split('?')[0] !== '/metrics') {
      res.writeHead(404).end();
      return;
    }
    const registry = metrics().registry;
    registry.metrics().then(
      (body) => res.writeHead(200, { 'content-type': registry.contentType }).end(body),
      (err: Error) => res.writeHead(500, { 'content-type': 'text/plain' }).end(err.message),
    );
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve(server));
  });
}
