/**
 * api/request-context.ts: every log line of a request carries its id, and once it is authenticated
 * its caller, each field once; the summary line at the end of each request says how it went.
 * Real Express and pino, over HTTP.
 */
import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import { Writable } from 'node:stream';
import express from 'express';
import pino from 'pino';
import { requestContext } from '../../api/request-context';

let server: Server;
let base: string;
let lines: string[] = [];

beforeAll(async () => {
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      lines.push(...chunk.toString().split('\n').filter(Boolean));
      done();
    },
  });
  const app = express();
  app.use(requestContext(pino({ level: 'info' }, sink)));
  app.get('/open', (req, res) => {
    req.log.info('before anyone is known');
    res.json({});
  });
  app.get('/mine', (req, res) => {
    req.log.info('early'); // made before authentication…
    req.auth = { user: { id: 'u', name: 'alice' }, project: { id: 'p', name: 'web' } } as typeof req.auth;
    req.log.info('late'); // …and made again with the caller once it is known
    res.json({});
  });
  server = app.listen(0, '127.0.0.1');
  await new Promise((resolve) => server.once('listening', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  await new Promise((resolve) => server.close(resolve));
});

async function logsOf(path: string, headers: Record<string, string> = {}): Promise<Array<Record<string, unknown>>> {
  lines = [];
  const res = await fetch(`${base}${path}`, { headers });
  await res.text();
  await new Promise((resolve) => setTimeout(resolve, 20)); // the summary is written on 'finish'
  return lines.map((l) => JSON.parse(l) as Record<string, unknown>);
}

test('an anonymous request: its id on every line, no caller', async () => {
  const logs = await logsOf('/open', { 'x-request-id': 'req-1' });
  expect(logs.map((l) => [l.msg, l.req_id, l.user])).toEqual([
    ['before anyone is known', 'req-1', undefined],
    ['request', 'req-1', undefined],
  ]);
  expect(logs[1]).toMatchObject({ method: 'GET', path: '/open', status: 200 });
});

test('an authenticated request: the caller on the lines after authentication, each field once', async () => {
  const logs = await logsOf('/mine');
  expect(logs.map((l) => [l.msg, l.user, l.project])).toEqual([
    ['early', undefined, undefined],
    ['late', 'alice', 'web'],
    ['request', 'alice', 'web'],
  ]);
  const id = logs[0]!.req_id;
  expect(id).toMatch(/^[0-9a-f-]{36}$/);
  expect(logs.every((l) => l.req_id === id)).toBe(true);
  for (const line of lines) expect(line.match(/"user"/g)?.length ?? 0).toBeLessThanOrEqual(1);
});
