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
  const compiled = new Map<string, unknown>();
  pathToRegexp.pathToRegexp = (path, options) => {
    const key = `${path}\0${options ? JSON.stringify(options) : ''}`;
    let found = compiled.get(key);
    if (found === undefined) {
      found = compile(path, options);
      // Templates are few; a caller compiling request paths would not grow this without bound.
      if (compiled.size < MAX_TEMPLATES) compiled.set(key, found);
    }
    return found;
  };
}
