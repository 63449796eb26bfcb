/**
 * Nova's routes: servers, their actions, console and volume attachments. Each route parses and hands
 * the request to the server commands (api/server-commands.ts, shared with the OpenStack surface: the
 * compute service's rules, checked before any workflow starts, then the operation's workflow), and
 * answers 202 with the operation.
 */
import { Router, type Request } from 'express';
import type { Config } from '../../core/config';
import { Conflict, NotFound } from '../../core/errors';
import { createComputeService, createConsoleService, serverIdForKey, serverViewOf, type ChangeFeed, type CreateServerBody, type Server } from '../../services/compute';
import type { QuotaLimits } from '../../services/compute';
import type { AuthContext, IdentityService } from '../../services/identity';
import { authenticate, callerOf } from '../auth';
import type { JsonBody } from '../body';
import { conductorOf, presentOperation, type OperationDeps } from '../operations';
import { serverCommands } from '../server-commands';
import { pageQuery } from '../pagination';
import { presentServer } from '../presenters/servers';
import { createResponseCache } from '../response-cache';

export { serverIdForKey };

const CONSOLE_POLL_MS = 1000;
const STREAM_WINDOW_BYTES = 1024 * 1024;
/** The stream looks the server up again every this many polls (deleted: the stream ends). */
const STREAM_RECHECK_POLLS = 5;

export function serversRouter(
  deps: OperationDeps & { config: Pick<Config, 'console'>; identity: IdentityService; quotaDefaults: QuotaLimits; changes?: ChangeFeed },
): Router {
  const compute = createComputeService(deps.db);
  const kept = createResponseCache(deps.changes);
  const commands = serverCommands(deps, compute);
  const router = Router();
  router.use(['/v1/servers', '/v1/operations'], authenticate(deps.identity));

  const present = async (auth: AuthContext, server: Server) => presentServer(deps.config, auth, (await compute.details([server]))[0]!);

  router.post('/v1/servers', async (req, res) => {
    const auth = callerOf(req);
    const { server, operation, replayed } = await commands.create(auth, req.body as CreateServerBody, req.get('idempotency-key'));
    if (!replayed) req.log.info({ server: server.id, operation: operation.id }, 'server create accepted');
    res.status(202).json({ server: await present(auth, server), operation: await presentOperation(deps, operation) });
  });

  // Lists and shows are what clients poll: sent again as rendered while nothing they show changed.
  router.get('/v1/servers', async (req, res) => {
    const auth = callerOf(req);
    await kept.json(res, `${serverViewOf(auth)} ${req.originalUrl}`, async () => {
      const batchId = typeof req.query.batch_id === 'string' ? req.query.batch_id : undefined;
      const page = await compute.list(auth, { ...pageQuery(req), ...(batchId ? { batchId } : {}) });
      return { servers: page.items.map((d) => presentServer(deps.config, auth, d)), next: page.next };
    });
  });

  router.get('/v1/servers/:server_id', async (req, res) => {
    const auth = callerOf(req);
    await kept.json(res, `${serverViewOf(auth)} ${req.originalUrl}`, async () => presentServer(deps.config, auth, await compute.show(auth, param(req, 'server_id'))));
  });

  router.delete('/v1/servers/:server_id', async (req, res) => {
    const op = await commands.remove(callerOf(req), param(req, 'server_id'));
    res.status(202).json({ operation: await presentOperation(deps, op) });
  });

  router.post('/v1/servers/:server_id/action', async (req, res) => {
    const { action } = req.body as JsonBody<'serverAction'>;
    const op = await commands.power(callerOf(req), param(req, 'server_id'), action);
    res.status(202).json({ operation: await presentOperation(deps, op) });
  });

  const consoles = createConsoleService(conductorOf(deps), deps.config.console);

  router.get('/v1/servers/:server_id/console', async (req, res) => {
    const auth = callerOf(req);
    const server = await compute.get(auth, param(req, 'server_id'));
    res.json({ output: (await consoles.read(server, { maxBytes: Number(req.query.max_bytes ?? 65536) })).output });
  });

  /**
   * The console, live, as server-sent events: each event's data is a JSON string of new console
   * output. Polls the host once a second for what is new since the last poll (the first one reads
   * the tail), through the server's console session; ends when the client goes away, when the
   * server is deleted, or after 10 minutes.
   */
  router.get('/v1/servers/:server_id/console/stream', async (req, res) => {
    const auth = callerOf(req);
    let server = await compute.get(auth, param(req, 'server_id'));
    if (!server.host) throw new Conflict(`server ${server.id} has no host yet`);
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'keep-alive' });
    let closed = false;
    req.on('close', () => {
      closed = true;
    });
    const deadline = Date.now() + 10 * 60_000;
    let since: number | undefined;
    for (let poll = 1; !closed && Date.now() < deadline; poll += 1) {
      try {
        const chunk = await consoles.read(server, { maxBytes: STREAM_WINDOW_BYTES, ...(since !== undefined ? { since } : {}) });
        if (chunk.output) res.write(`data: ${JSON.stringify(chunk.output)}\n\n`);
        since = chunk.end;
      } catch (err) {
        res.write(`event: error\ndata: ${JSON.stringify(err instanceof Error ? err.message : String(err))}\n\n`);
      }
      await new Promise((r) => setTimeout(r, CONSOLE_POLL_MS));
      if (poll % STREAM_RECHECK_POLLS === 0 && !closed) {
        // A deleted (or no longer visible) server ends the stream, and so its console session.
        const again = await compute.get(auth, server.id).catch((err: unknown) => (err instanceof NotFound ? null : server));
        if (!again?.host) {
          res.write(`event: error\ndata: ${JSON.stringify(`server ${server.id} is gone`)}\n\n`);
          break;
        }
        server = again;
      }
    }
    res.end();
  });

  router.post('/v1/servers/:server_id/volumes', async (req, res) => {
    const volumeId = (req.body as JsonBody<'attachVolume'>).volume_id;
    const { operation } = await commands.attachVolume(callerOf(req), param(req, 'server_id'), volumeId);
    res.status(202).json({ operation: await presentOperation(deps, operation) });
  });

  router.delete('/v1/servers/:server_id/volumes/:volume_id', async (req, res) => {
    const op = await commands.detachVolume(callerOf(req), param(req, 'server_id'), param(req, 'volume_id'));
    res.status(202).json({ operation: await presentOperation(deps, op) });
  });

  router.get('/v1/operations/:operation_id', async (req, res) => {
    const auth = callerOf(req);
    const op = await compute.operation(auth, param(req, 'operation_id'));
    res.json(await presentOperation(deps, op, true));
  });

  return router;
}

function param(req: Request, name: string): string {
  return req.params[name] as string;
}
