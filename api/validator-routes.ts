/**
 * express-openapi-validator (5.x) finds a request's route by compiling every route template of the
 * spec with path-to-regexp, on every request, until one matches (`lookupRoute` in its
 * openapi.metadata.js): ~80 templates, so a GET paid for dozens of compilations (~12% of a server
 * show's CPU in a profile of bench:api). Two wrappers of what the validator calls, each looked up on
 * its module at each call (so replacing the export reaches it):
 * - the compilation, a pure function of the template and its options, is remembered once per
 *   process (the regexps have no `g`/`y` flag: sharing them is safe);
 * - the route lookup tries only the templates under the request's first two path segments (in the
 *   spec's order, with any template whose prefix is not literal), not all ~80 with an
 *   `Object.entries` of them each time (~5% of the main thread at 200 shows a second).
 * Remove when the validator indexes its own.
 */
import { createRequire } from 'node:module';
import type { RequestHandler } from 'express';
import { isLiteral, prefixOf } from './prefix-router';

type Compile = (path: string, options?: Record<string, unknown>) => unknown;

/** Far more than the spec's route templates (× the two routing options). */
const MAX_TEMPLATES = 2000;

let installed = false;

export function rememberValidatorRoutes(): void {
  if (installed) return;
  installed = true;
  // The copy of path-to-regexp the validator loads (it may differ from express's own).
  const requireFromValidator = createRequire(require.resolve('express-openapi-validator'));
  indexRouteLookup(requireFromValidator('./middlewares/openapi.metadata') as MetadataModule);
  const pathToRegexp = requireFromValidator('path-to-regexp') as { pathToRegexp: Compile };
  const compile = pathToRegexp.pathToRegexp;
  // By options, then by template. The validator passes { sensitive, strict } (a new object for
  // each of the ~80 templates of every request): those two flags make the key without building a
  // string; options of any other shape are keyed by their JSON.
  const compiled = new Map<string, Map<string, unknown>>();
  let size = 0;
  pathToRegexp.pathToRegexp = (path, options) => {
    const flags = flagsOf(options);
    let byPath = compiled.get(flags);
    if (byPath === undefined) compiled.set(flags, (byPath = new Map()));
    let found = byPath.get(path);
    if (found === undefined) {
      found = compile(path, options);
      // Templates are few; a caller compiling request paths would not grow this without bound.
      if (size < MAX_TEMPLATES) {
        byPath.set(path, found);
        size += 1;
      }
    }
    return found;
  };
}

const FLAG_KEYS: Readonly<Record<string, true>> = { sensitive: true, strict: true };

function flagsOf(options: Record<string, unknown> | undefined): string {
  if (options === undefined) return '';
  for (const key in options) if (!FLAG_KEYS[key]) return JSON.stringify(options);
  return options.sensitive ? (options.strict ? 'sensitive,strict' : 'sensitive') : options.strict ? 'strict' : 'none';
}

/** What the validator's metadata middleware reads of its context (openapi.context.js). */
interface RouteContext {
  expressRouteMap: Record<string, unknown>;
  useRequestUrl?: boolean;
}
type MetadataModule = { applyOpenApiMetadata: (context: RouteContext, responseApiDoc: unknown) => RequestHandler };

/**
 * Wraps the metadata middleware's factory: its context is seen through a view whose route map, while
 * a request is looked up, holds only that request's templates. Everything else it reads is the
 * context's own.
 */
function indexRouteLookup(metadata: MetadataModule): void {
  const apply = metadata.applyOpenApiMetadata;
  metadata.applyOpenApiMetadata = (context, responseApiDoc) => {
    const all = context.expressRouteMap;
    const templates = Object.keys(all);
    const anywhere = templates.filter((t) => !isLiteral(prefixOf(t)));
    const only = (keep: (template: string) => boolean) => Object.fromEntries(templates.filter(keep).map((t) => [t, all[t]]));
    const byPrefix = new Map<string, Record<string, unknown>>();
    for (const template of templates) {
      const prefix = prefixOf(template);
      if (isLiteral(prefix) && !byPrefix.has(prefix)) byPrefix.set(prefix, only((t) => prefixOf(t) === prefix || anywhere.includes(t)));
    }
    const elsewhere = only((t) => anywhere.includes(t));
    let current = all;
    const view = new Proxy(context, { get: (target, key) => (key === 'expressRouteMap' ? current : Reflect.get(target, key)) });
    const middleware = apply(view, responseApiDoc);
    return (req, res, next) => {
      const path = (context.useRequestUrl ? req.url : req.originalUrl).split('?')[0]!;
      current = byPrefix.get(prefixOf(path)) ?? elsewhere;
      try {
        return middleware(req, res, next);
      } finally {
        current = all;
      }
    };
  };
}
