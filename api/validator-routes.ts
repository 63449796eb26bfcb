/**
 * express-openapi-validator (5.x) finds a request's route by compiling every route template of the
 * spec with path-to-regexp, on every request, until one matches (`lookupRoute` in its
 * openapi.metadata.js): ~80 templates, so a GET paid for dozens of compilations (~12% of a server
 * show's CPU in a profile of bench:api). The compilation is a pure function of the template and its
 * options, so it is remembered here, once per process, by wrapping the export the validator calls
 * (it looks the function up on the module at each call). The regexps have no `g`/`y` flag: sharing
 * them is safe. Remove when the validator caches its own.
 */
import { createRequire } from 'node:module';

type Compile = (path: string, options?: Record<string, unknown>) => unknown;

/** Far more than the spec's route templates (× the two routing options). */
const MAX_TEMPLATES = 2000;

let installed = false;

export function rememberValidatorRoutes(): void {
  if (installed) return;
  installed = true;
  // The copy of path-to-regexp the validator loads (it may differ from express's own).
  const requireFromValidator = createRequire(require.resolve('express-openapi-validator'));
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
