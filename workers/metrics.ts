/**
 * Where the process's metrics (core/metrics.ts) are fed and served from:
 * - `activityMetricsInterceptor`: every activity this process runs (conductor steps, host steps) is
 *   timed as a workflow step, labelled by workflow type, activity name, outcome and task queue.
 * - host capacity and usage gauges are read from the database at scrape time by
 *   `collectHostGauges(db)` (services/hosts.ts: the api and the conductor have a database; agents none).
 * - `serveMetrics(host, port)`: a bare /metrics endpoint for processes without the API
 *   (STRATUS_METRICS_PORT).
 */
import http from 'node:http';
import type { ActivityInterceptorsFactory } from '@temporalio/worker';
import { metrics } from '../core/metrics';

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
