/**
 * The API (nova-api + keystone + glance front door): an Express app built from explicit
 * dependencies. It authenticates, validates every request against openapi/stratus.yaml, reads the
 * database for lists and shows, and starts/queries Temporal workflows. It never calls libvirt.
 */
import type { Client } from '@temporalio/client';
import express, { type Express } from 'express';
import * as OpenApiValidator from 'express-openapi-validator';
import type { Knex } from 'knex';
import { DEFAULT_QUOTAS, type Config } from '../core/config';
import type { Logger } from '../core/log';
import { createHostService } from '../services/hosts';
import type { IdentityService } from '../services/identity';
import { authenticateFirst } from './auth';
import { rejectNulCharacters } from './body';
import { OPENSTACK_PATHS, openstackRouter } from './openstack';
import { docsRouter, OPENAPI_PATH } from './docs';
import { idempotency } from './idempotency';
import { routeByPrefix } from './prefix-router';
import { notFoundHandler, problemMiddleware } from './problem';
import { requestContext } from './request-context';
import { rememberValidatorRoutes } from './validator-routes';
import { healthRouter, type ReadinessProbes } from './routes/health';
import { metricsRouter, requestMetrics } from './routes/metrics';
import { hostsRouter } from './routes/hosts';
import { flavorsRouter } from './routes/flavors';
import { identityRouter } from './routes/identity';
import { networksRouter } from './routes/networks';
import { imagesRouter, type ImageRoutesDeps } from './routes/images';
import { batchesRouter } from './routes/batches';
import { leftoversRouter } from './routes/leftovers';
import { serversRouter } from './routes/servers';
import { usageRouter } from './routes/usage';
import { volumesRouter } from './routes/volumes';
import { quotasRouter } from './routes/quotas';
import { serverGroupsRouter } from './routes/server-groups';
import { DEFAULT_RATIOS } from '../services/scheduler';
import type { ChangeFeed } from '../services/compute';

export interface ApiDeps {
  config: Pick<Config, 'api' | 'temporal' | 'console'> & { host: Pick<Config['host'], 'heartbeatSeconds'> } & Partial<Pick<Config, 'scheduler' | 'quotas'>>;
  db: Knex;
  temporal: Client;
  identity: IdentityService;
  log: Logger;
  /** Image data: where bytes live and how download URLs are signed. */
  images: Pick<ImageRoutesDeps, 'store' | 'signer'>;
  /** Validate responses against the spec too (on in tests: a response that breaks the contract is a 500). */
  validateResponses?: boolean;
  /** Committed changes to what server views show: server lists and shows are then kept and sent again while unchanged. */
  changes?: ChangeFeed;
}

export function createApp({ config, db, temporal, identity, log, images, validateResponses = false, changes }: ApiDeps): Express {
  const app = express();
  app.disable('x-powered-by');
  app.set('query parser', 'extended');
  app.use(requestContext(log.child({ component: 'api' })));
  app.use(requestMetrics());
  const quotaDefaults = config.quotas ?? DEFAULT_QUOTAS;
  // The OpenStack-compatible surface (Keystone, Nova, Glance, Neutron, Cinder): its own body parsing,
  // tokens and error shapes, over the same services as /v1.
  // Entered only under its own prefixes: a /v1 request does not walk its routers (api/prefix-router.ts says why).
  const openstack = openstackRouter({ config, db, temporal, identity, quotaDefaults, images });
  app.use((req, res, next) => (OPENSTACK_PATHS.test(req.path) ? openstack(req, res, next) : next()));
  app.use(express.json({ limit: '1mb' }));
  app.use(rejectNulCharacters);
  app.use(docsRouter());

  const heartbeatSeconds = config.host.heartbeatSeconds;
  const probes: ReadinessProbes = {
    database: async () => {
      await db.raw('select 1');
    },
    temporal: async () => {
      await temporal.workflowService.describeNamespace({ namespace: config.temporal.namespace });
    },
    hosts: () => createHostService(db, heartbeatSeconds).assertSomeAlive(),
  };
  app.use(healthRouter(probes));
  app.use(metricsRouter({ db }));

  app.use(authenticateFirst(identity));
  rememberValidatorRoutes();
  app.use(
    OpenApiValidator.middleware({
      apiSpec: OPENAPI_PATH,
      validateRequests: { allowUnknownQueryParameters: false, removeAdditional: false },
      validateResponses: validateResponses ? { onError: (err) => { throw err; } } : false,
      validateSecurity: false, // authentication is api/auth.ts, so 401s look like every other error
      ignorePaths: /^\/(docs|openapi\.yaml)/,
    }),
  );
  app.use(idempotency({ db, identity }));
  app.use(
    routeByPrefix([
      identityRouter({ db, identity, config }),
      hostsRouter({ db, identity, heartbeatSeconds, ratios: config.scheduler?.ratios ?? DEFAULT_RATIOS }),
      serverGroupsRouter({ db, identity }),
      quotasRouter({ db, identity, defaults: quotaDefaults }),
      flavorsRouter({ db, identity }),
      networksRouter({ db, identity, quotaDefaults }),
      imagesRouter({ db, identity, ...images }),
      serversRouter({ db, temporal, config, identity, quotaDefaults, ...(changes ? { changes } : {}) }),
      volumesRouter({ db, temporal, config, identity, quotaDefaults }),
      batchesRouter({ db, temporal, config, identity }),
      leftoversRouter({ db, identity }),
      usageRouter({ db, identity }),
    ]),
  );
  app.use(notFoundHandler);
  app.use(problemMiddleware);
  return app;
}
