/**
 * api/validator-routes.ts's route index: express-openapi-validator, looking a request's route up
 * among only the templates of its first two path segments, finds what it found trying them all: the
 * route and its parameters, 405 with `Allow` for a method the route lacks, 404 for a path the spec
 * does not have, a template whose prefix is a parameter under any prefix, case-insensitive routing.
 * The real validator over HTTP, on a small spec.
 */
import { createRequire } from 'node:module';
import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import express, { type ErrorRequestHandler } from 'express';
import * as OpenApiValidator from 'express-openapi-validator';
import { rememberValidatorRoutes } from '../../api/validator-routes';

const get = (id: string) => ({ get: { operationId: id, responses: { '200': { description: 'ok' } } } });
const withId = (name: string) => [{ name, in: 'path', required: true, schema: { type: 'string', pattern: '^[a-z0-9]+$' } }];
const spec = {
  openapi: '3.0.3',
  info: { title: 'index', version: '1' },
  paths: {
    '/v1/things': get('listThings'),
    '/v1/things/{thing_id}': { parameters: withId('thing_id'), ...get('showThing'), delete: { operationId: 'deleteThing', responses: { '204': { description: 'gone' } } } },
    '/v1/things/{thing_id}/parts': { parameters: withId('thing_id'), ...get('listParts') },
    '/v1/other/{other_id}': { parameters: withId('other_id'), ...get('showOther') },
    '/v1/{kind}/summary': { parameters: withId('kind'), ...get('summary') },
  },
};

/** An app validating with `spec`, answering the route the validator found. */
async function serve(): Promise<{ server: Server; base: string }> {
  const app = express();
  app.use(OpenApiValidator.middleware({ apiSpec: structuredClone(spec) as never, validateRequests: true, validateResponses: false }));
  app.use((req, res) => {
    const found = (req as { openapi?: { openApiRoute: string; pathParams: Record<string, string> } }).openapi;
    res.json({ route: found ? found.openApiRoute : null, params: found ? found.pathParams : null });
  });
  app.use(((err: { status?: number; message: string; headers?: Record<string, string> }, _req, res, _next) => {
    for (const [k, v] of Object.entries(err.headers ?? {})) res.set(k, v);
    res.status(err.status ?? 500).json({ message: err.message });
  }) as ErrorRequestHandler);
  const server = app.listen(0, '127.0.0.1');
  await new Promise((resolve) => server.once('listening', resolve));
  return { server, base: `http://127.0.0.1:${(server.address() as AddressInfo).port}` };
}

async function call(base: string, method: string, path: string): Promise<{ status: number; body: Record<string, unknown>; allow: string | null }> {
  const res = await fetch(`${base}${path}`, { method });
  return { status: res.status, body: (await res.json()) as Record<string, unknown>, allow: res.headers.get('allow') };
}

let plain: { server: Server; base: string };
let indexed: { server: Server; base: string };

beforeAll(async () => {
  // The validator builds its lookup at its first request: the plain app's comes before the index is installed.
  plain = await serve();
  await call(plain.base, 'GET', '/v1/things');
  rememberValidatorRoutes();
  indexed = await serve();
});

afterAll(async () => {
  for (const { server } of [plain, indexed]) await new Promise((resolve) => server.close(resolve));
});

const REQUESTS: Array<[string, string]> = [
  ['GET', '/v1/things'],
  ['GET', '/v1/things/a1'],
  ['GET', '/v1/things/a1/parts'],
  ['GET', '/v1/other/b2?'],
  ['GET', '/V1/Things/a1'],
  ['GET', '/v1/things/summary'],
  ['GET', '/v1/gadgets/summary'],
  ['POST', '/v1/things/a1'],
  ['GET', '/v1/nowhere/at/all'],
  ['GET', '/v1/things/a1/parts/extra'],
  ['GET', '/v1/things/NOT-VALID'],
  ['GET', '//v1/things'],
  ['GET', '/v1'],
];

test.each(REQUESTS)('%s %s: the same answer as without the index', async (method, path) => {
  expect(await call(indexed.base, method, path)).toEqual(await call(plain.base, method, path));
});

test('what the validator answers, with the index', async () => {
  expect((await call(indexed.base, 'GET', '/v1/things/a1')).body).toEqual({ route: '/v1/things/{thing_id}', params: { thing_id: 'a1' } });
  expect((await call(indexed.base, 'GET', '/v1/gadgets/summary')).body).toEqual({ route: '/v1/{kind}/summary', params: { kind: 'gadgets' } });
  const wrong = await call(indexed.base, 'POST', '/v1/things/a1');
  expect(wrong.status).toBe(405);
  expect(wrong.allow?.split(', ').sort()).toEqual(['DELETE', 'GET']);
  expect((await call(indexed.base, 'GET', '/v1/nowhere/at/all')).status).toBe(404);
  expect((await call(indexed.base, 'GET', '/v1/things/NOT-VALID')).status).toBe(400);
});

test('with the index, a lookup compiles and tries only the templates of its prefix', async () => {
  const pathToRegexp = createRequire(require.resolve('express-openapi-validator'))('path-to-regexp') as { pathToRegexp: (p: string, o?: object) => unknown };
  const compile = pathToRegexp.pathToRegexp;
  const tried = async (base: string, path: string) => {
    const templates: string[] = [];
    pathToRegexp.pathToRegexp = (p, o) => {
      templates.push(p);
      return compile(p, o);
    };
    try {
      await call(base, 'GET', path);
    } finally {
      pathToRegexp.pathToRegexp = compile;
    }
    return templates;
  };
  // A path of no route: without the index every template is tried; with it, those that could be under any prefix.
  expect((await tried(plain.base, '/v1/nowhere/at/all')).sort()).toEqual(['/v1/:kind/summary', '/v1/other/:other_id', '/v1/things', '/v1/things/:thing_id', '/v1/things/:thing_id/parts']);
  expect(await tried(indexed.base, '/v1/nowhere/at/all')).toEqual(['/v1/:kind/summary']);
  expect(['/v1/other/:other_id', '/v1/:kind/summary']).toEqual(expect.arrayContaining(await tried(indexed.base, '/v1/other/b2')));
});
