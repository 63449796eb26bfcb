/**
 * api/prefix-router.ts: a request goes through the routers serving its path's first two segments,
 * in their order, and on to the app's next middleware; what it answers is what the routers mounted
 * one after another answered. Real Express routers, over HTTP.
 */
import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import express, { Router, type ErrorRequestHandler } from 'express';
import { routeByPrefix } from '../../api/prefix-router';

let server: Server;
let base: string;
/** Which routers' middleware a request went through. */
let visited: string[] = [];

function router(name: string, build: (r: Router) => void): Router {
  const r = Router();
  r.use((_req, _res, next) => {
    visited.push(name);
    next();
  });
  build(r);
  return r;
}

beforeAll(async () => {
  const app = express();
  app.use(
    routeByPrefix([
      router('servers', (r) => {
        r.get('/v1/servers', (_req, res) => void res.json({ from: 'servers list' }));
        r.get('/v1/servers/:id', (req, res, next) => (req.params.id === 'pass' ? next() : void res.json({ from: 'servers show', id: req.params.id })));
        r.get('/v1/operations/:id', (_req, res) => void res.json({ from: 'operations' }));
      }),
      router('volumes', (r) => {
        r.get('/v1/volumes', (_req, res) => void res.json({ from: 'volumes' }));
        r.get('/v1/volumes/:id', async () => {
          throw new Error('volume lookup failed');
        });
      }),
      router('late-servers', (r) => {
        r.get('/v1/servers/:id', (_req, res) => void res.json({ from: 'late servers' }));
      }),
      router('anywhere', (r) => {
        r.get('/v1/:kind/special', (req, res) => void res.json({ from: 'anywhere', kind: req.params.kind }));
      }),
    ]),
  );
  app.use((_req, res) => void res.status(404).json({ from: 'not found' }));
  app.use(((err: Error, _req, res, _next) => void res.status(500).json({ error: err.message })) as ErrorRequestHandler);
  server = app.listen(0, '127.0.0.1');
  await new Promise((resolve) => server.once('listening', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  await new Promise((resolve) => server.close(resolve));
});

async function get(path: string): Promise<{ status: number; body: Record<string, unknown>; visited: string[] }> {
  visited = [];
  const res = await fetch(`${base}${path}`);
  return { status: res.status, body: (await res.json()) as Record<string, unknown>, visited };
}

test('a request goes only through the routers of its prefix (and those that could serve any path)', async () => {
  expect(await get('/v1/servers/abc')).toEqual({ status: 200, body: { from: 'servers show', id: 'abc' }, visited: ['servers'] });
  expect(await get('/v1/volumes')).toEqual({ status: 200, body: { from: 'volumes' }, visited: ['volumes'] });
  expect(await get('/v1/operations/1')).toEqual({ status: 200, body: { from: 'operations' }, visited: ['servers'] });
  // Case-insensitive and trailing slash, as Express routes them.
  expect((await get('/V1/Servers/')).body).toEqual({ from: 'servers list' });
});

test('a router that does not answer passes to the next one of the prefix, in order, then to the app', async () => {
  expect(await get('/v1/servers/pass')).toEqual({ status: 200, body: { from: 'late servers' }, visited: ['servers', 'late-servers'] });
  expect(await get('/v1/servers/x/y')).toEqual({ status: 404, body: { from: 'not found' }, visited: ['servers', 'late-servers', 'anywhere'] });
  expect(await get('/v1/nothing-here')).toEqual({ status: 404, body: { from: 'not found' }, visited: ['anywhere'] });
});

test('a route whose prefix is a parameter is served under every prefix, after the routers of the prefix', async () => {
  expect(await get('/v1/anything/special')).toEqual({ status: 200, body: { from: 'anywhere', kind: 'anything' }, visited: ['anywhere'] });
  expect(await get('/v1/volumes/x/special')).toEqual({ status: 404, body: { from: 'not found' }, visited: ['volumes', 'anywhere'] });
});

test("a handler's error reaches the app's error handler", async () => {
  expect(await get('/v1/volumes/7')).toEqual({ status: 500, body: { error: 'volume lookup failed' }, visited: ['volumes'] });
});
