/**
 * The /v1 routers behind one dispatch on the path's first two segments (`/v1/servers`): a request
 * goes only through the routers that have a route there, in their order, instead of through every
 * router in turn. Express walks each router it enters, testing its layers one by one and allocating
 * for each (in a profile of 200 shows a second, Express's router made ~37% of what `up` allocated,
 * ~40 KB a request, and every major collection this garbage brings is a pause in the p99).
 *
 * Each router's prefixes are read from its own routes, so adding a route needs nothing here. A
 * router with a route whose first segments are not literal (a parameter, a pattern) is entered for
 * every path, as before. A router's path-scoped middleware (`router.use('/v1/x', …)`) only ever
 * applies under its own routes' prefixes, so skipping the router elsewhere skips nothing it did.
 */
import type { IRouter, RequestHandler } from 'express';

/** The routers' own view of their stack (router 2.x, as Express 5 uses it). */
interface Stacked {
  stack: Array<{ route?: { path: unknown } }>;
}

/** `/v1/servers/abc` → `/v1/servers`; lower case, as routing is case-insensitive. */
export function prefixOf(path: string): string {
  const second = path.indexOf('/', 1);
  const third = second < 0 ? -1 : path.indexOf('/', second + 1);
  return (third < 0 ? path : path.slice(0, third)).toLowerCase();
}

/** The literal prefixes of a router's routes, or null when some route could be under any. */
function prefixesOf(router: IRouter): Set<string> | null {
  const prefixes = new Set<string>();
  for (const layer of (router as unknown as Stacked).stack) {
    const path = layer.route?.path;
    if (path === undefined) continue; // path-scoped middleware: applies under the routes' prefixes
    if (typeof path !== 'string') return null;
    const prefix = prefixOf(path);
    if (!isLiteral(prefix)) return null;
    prefixes.add(prefix);
  }
  return prefixes;
}

/** Whether a route template's prefix is plain text (no parameter or pattern in it). */
export function isLiteral(prefix: string): boolean {
  return !/[:*(){}?+]/.test(prefix);
}

export function routeByPrefix(routers: readonly IRouter[]): RequestHandler {
  const served = routers.map((router) => ({ router, prefixes: prefixesOf(router) }));
  const anywhere = served.filter((s) => s.prefixes === null).map((s) => s.router);
  const byPrefix = new Map<string, IRouter[]>();
  for (const { prefixes } of served) {
    for (const prefix of prefixes ?? []) {
      if (!byPrefix.has(prefix)) byPrefix.set(prefix, served.filter((s) => s.prefixes === null || s.prefixes.has(prefix)).map((s) => s.router));
    }
  }
  return (req, res, next) => {
    const chain = byPrefix.get(prefixOf(req.path)) ?? anywhere;
    let i = 0;
    // A router that did not answer calls this (with an error, or 'router' to leave itself): the
    // next router, then the app's next middleware, as if they were all mounted in turn.
    const step = (err?: unknown): void => {
      if (err && err !== 'router') return next(err);
      const router = chain[i++];
      if (!router) return next();
      router(req, res, step);
    };
    step();
  };
}
