/**
 * api/validator-routes.ts: the route templates express-openapi-validator compiles on every request
 * are compiled once; what a template compiles to is unchanged.
 */
import { createRequire } from 'node:module';
import { rememberValidatorRoutes } from '../../api/validator-routes';

type Compiled = { regexp: RegExp; keys: Array<{ name: string }> };
const fromValidator = createRequire(require.resolve('express-openapi-validator'));
const pathToRegexp = () => (fromValidator('path-to-regexp') as { pathToRegexp: (p: string, o?: object) => Compiled }).pathToRegexp;

test('a template compiles once per options, and matches as before', () => {
  const original = pathToRegexp()('/v1/servers/:server_id', { sensitive: false, strict: false });
  rememberValidatorRoutes();
  rememberValidatorRoutes(); // idempotent: not wrapped twice
  const first = pathToRegexp()('/v1/servers/:server_id', { sensitive: false, strict: false });
  expect(pathToRegexp()('/v1/servers/:server_id', { sensitive: false, strict: false })).toBe(first);
  expect(pathToRegexp()('/v1/servers/:server_id', { sensitive: true, strict: false })).not.toBe(first);
  expect(first.regexp.source).toBe(original.regexp.source);
  expect(first.keys.map((k) => k.name)).toEqual(['server_id']);
  expect(first.regexp.exec('/v1/servers/4f0c')?.[1]).toBe('4f0c');
  expect(first.regexp.exec('/v1/servers/4f0c')?.[1]).toBe('4f0c'); // no lastIndex state between uses
  expect(first.regexp.exec('/v1/volumes/4f0c')).toBeNull();
  // Keyed by the two flags the validator passes, or else by the options' JSON: other options are never conflated.
  expect(pathToRegexp()('/v1/servers/:server_id', {})).toBe(first);
  const open = pathToRegexp()('/v1/servers/:server_id', { end: false });
  expect(open).not.toBe(first);
  expect(open.regexp.exec('/v1/servers/4f0c/console')?.[1]).toBe('4f0c');
  expect(pathToRegexp()('/v1/servers/:server_id', { end: false })).toBe(open);
});
