/**
 * GET /metrics (Prometheus text format) and the request metrics behind it: every API request is
 * counted and timed by method, route template (`/v1/servers/:id`, never the raw path: ids would make
 * one series per resource) and status. Unmatched paths are counted as route "unmatched".
 * Unauthenticated, like /healthz: scrape it from inside the network (README "Metrics").
 */
import { Router, type RequestHandler } from 'express';
import type { Knex } from 'knex';
import { metrics } from '../../core/metrics';
import { collectHostGauges } from '../../services/hosts';

export function requestMetrics(): RequestHandler {
  return (req, res, next) => {
    const end = metrics().httpDuration.startTimer();
    res.on('finish', () => {
      const route = req.route ? `${req.baseUrl}${String(req.route.path)}` : 'unmatched';
      const labels = { method: req.method, route, status: String(res.statusCode) };
      end(labels);
      metrics().httpRequests.inc(labels);
    });
    next();
  };
}

export function metricsRouter({ db }: { db: Knex }): Router {
  collectHostGauges(db);
  const router = Router();
  router.get('/metrics', async (_req, res) => {
    const registry = metrics().registry;
    res.type(registry.contentType).send(await registry.metrics());
  });
  return router;
}
