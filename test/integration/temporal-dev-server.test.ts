/**
 * The embedded Temporal dev server: persistence across restarts, the Web UI, clean teardown,
 * one-line start-up errors, stale-server reaping, and the Stratus namespace + search attributes.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { MissingDependency } from '../../core/errors';
import { silentLogger } from '../../core/log';
import { resolveTemporalCli } from '../../temporal/binary';
import {
  connectTemporal,
  ensureNamespaceAndSearchAttributes,
  temporalUiRunUrl,
} from '../../temporal/connection';
import { searchAttributes } from '../../temporal/constants';
import { startDevServer, type DevServer, type DevServerOptions } from '../../temporal/dev-server';
import { freePort } from '../support/ports';
import { testTemporal } from '../support/temporal';

const cliPath = resolveTemporalCli({ temporal: { cliPath: process.env.TEMPORAL_CLI_PATH || undefined } });
const stratusAttributes = Object.values(searchAttributes).map((key) => key.name);

function processGone(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return false;
  } catch {
    return true;
  }
}

async function options(extra: Partial<DevServerOptions> = {}): Promise<DevServerOptions> {
  return {
    cliPath,
    port: await freePort(),
    uiPort: await freePort(),
    dbFile: undefined,
    namespace: 'stratus',
    log: silentLogger,
    ...extra,
  };
}

async function errorOf(promise: Promise<unknown>): Promise<Error> {
  try {
    await promise;
  } catch (err) {
    return err as Error;
  }
  throw new Error('expected a rejection');
}

describe('temporal dev server', () => {
  let dir: string;
  const started: DevServer[] = [];

  beforeAll(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'stratus-devserver-'));
  });
  afterAll(async () => {
    for (const server of started) await server.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });
  async function start(opts: DevServerOptions): Promise<DevServer> {
    const server = await startDevServer(opts);
    started.push(server);
    return server;
  }

  it('keeps workflows in its db file across a restart, serves the UI, and leaves no process', async () => {
    const dbFile = path.join(dir, 'persist', 'temporal.db');
    const pidFile = path.join(dir, 'persist', 'temporal.pid');
    const opts = await options({ dbFile, pidFile });

    const first = await start(opts);
    expect(first.address).toBe(`127.0.0.1:${opts.port}`);
    expect(JSON.parse(fs.readFileSync(pidFile, 'utf8'))).toMatchObject({ pid: first.pid, ownerPid: process.pid });
    const workflowId = `noop-${Date.now()}`;
    let runId: string;
    {
      const { connection, client } = await connectTemporal(first.address, 'stratus');
      try {
        // No worker: the run just sits there, which is all a durability check needs.
        const handle = await client.workflow.start('noop', { taskQueue: 'noop-queue', workflowId, args: [] });
        runId = handle.firstExecutionRunId;
      } finally {
        await connection.close();
      }
    }
    await first.stop();
    expect(processGone(first.pid)).toBe(true);
    expect(fs.existsSync(pidFile)).toBe(false);

    const second = await start(opts);
    expect(second.pid).not.toBe(first.pid);
    const { connection, client } = await connectTemporal(second.address, 'stratus');
    try {
      const description = await client.workflow.getHandle(workflowId).describe();
      expect(description.runId).toBe(runId);
      expect(description.type).toBe('noop');
      expect(description.status.name).toBe('RUNNING');
    } finally {
      await connection.close();
    }

    expect(second.uiUrl).toBe(`http://127.0.0.1:${opts.uiPort}`);
    const ui = await fetch(second.uiUrl!);
    expect(ui.status).toBe(200);
    const runPage = await fetch(temporalUiRunUrl(second.uiUrl!, 'stratus', workflowId, runId));
    expect(runPage.status).toBe(200);

    await second.stop();
    expect(() => process.kill(second.pid, 0)).toThrow();
    await second.stop(); // idempotent
  });

  it('refuses a port in use with one line naming the variable', async () => {
    const holder = net.createServer();
    await new Promise<void>((resolve) => holder.listen({ host: '127.0.0.1', port: 0 }, resolve));
    const held = (holder.address() as net.AddressInfo).port;
    try {
      const grpcErr = await errorOf(startDevServer(await options({ port: held })));
      expect(grpcErr).toBeInstanceOf(MissingDependency);
      expect(grpcErr.message).toBe(`port ${held} (TEMPORAL_PORT) is in use: stop what holds it or set TEMPORAL_PORT`);

      const uiErr = await errorOf(startDevServer(await options({ uiPort: held })));
      expect(uiErr.message).toBe(
        `port ${held} (TEMPORAL_UI_PORT) is in use: stop what holds it or set TEMPORAL_UI_PORT`,
      );
    } finally {
      await new Promise((resolve) => holder.close(resolve));
    }
  });

  it('rejects with the last stderr lines when the binary exits before it is ready', async () => {
    const fake = path.join(dir, 'fake-temporal');
    fs.writeFileSync(fake, '#!/bin/sh\necho "starting" >&2\necho "Error: boom: no luck" >&2\nexit 3\n', {
      mode: 0o755,
    });
    const err = await errorOf(startDevServer(await options({ cliPath: fake })));
    expect(err).toBeInstanceOf(MissingDependency);
    expect(err.message).toBe('temporal dev server exited (code 3) before it was ready: starting | Error: boom: no luck');
  });

  it('kills a stale server recorded in its pid file by a run that died, then starts', async () => {
    const pidFile = path.join(dir, 'stale', 'temporal.pid');
    const opts = await options({ pidFile, headless: true });
    // What a crashed `stratus up` leaves behind: a server on our port, owned by a process that is gone.
    const orphan = spawn(cliPath, ['server', 'start-dev', '--ip', '127.0.0.1', '--port', String(opts.port), '--headless'], {
      stdio: 'ignore',
    });
    const orphanExited = new Promise((resolve) => orphan.once('exit', resolve));
    const deadOwner = spawn('true');
    await new Promise((resolve) => deadOwner.once('exit', resolve));
    fs.mkdirSync(path.dirname(pidFile), { recursive: true });
    fs.writeFileSync(pidFile, JSON.stringify({ pid: orphan.pid, ownerPid: deadOwner.pid, cliPath }));
    await waitForPort(opts.port);

    const server = await start(opts);
    await orphanExited;
    expect(processGone(orphan.pid!)).toBe(true);
    expect(JSON.parse(fs.readFileSync(pidFile, 'utf8'))).toMatchObject({ pid: server.pid });

    // A pid file whose owner is alive (us) is not ours to reap: refuse with one line.
    const err = await errorOf(startDevServer({ ...(await options({ pidFile })) }));
    expect(err).toBeInstanceOf(MissingDependency);
    expect(err.message).toMatch(/^a Temporal dev server \(pid \d+\) owned by running process \d+ already uses /);
    await server.stop();
  });

  it('a server whose owner dies by SIGKILL goes away too', async () => {
    const script = path.join(dir, 'owner.ts');
    const devServerModule = path.resolve(__dirname, '../../temporal/dev-server');
    const logModule = path.resolve(__dirname, '../../core/log');
    fs.writeFileSync(
      script,
      `import { startDevServer } from ${JSON.stringify(devServerModule)};
       import { silentLogger } from ${JSON.stringify(logModule)};
       startDevServer({ cliPath: ${JSON.stringify(cliPath)}, port: ${await freePort()}, uiPort: 0, headless: true,
         dbFile: undefined, namespace: 'stratus', log: silentLogger })
         .then((s) => console.log(JSON.stringify({ pid: s.pid })), (e) => { console.error(e.message); process.exit(1); });
       setInterval(() => undefined, 1000);`,
    );
    const owner = spawn(process.execPath, ['--import', 'tsx', script], { stdio: ['ignore', 'pipe', 'inherit'] });
    const ownerExited = new Promise((resolve) => owner.once('exit', resolve));
    const serverPid = await new Promise<number>((resolve, reject) => {
      let out = '';
      owner.stdout!.on('data', (chunk: Buffer) => {
        out += chunk.toString();
        const match = /\{"pid":(\d+)\}/.exec(out);
        if (match) resolve(Number(match[1]));
      });
      owner.once('exit', (code) => reject(new Error(`owner exited (${code}) before the server was ready`)));
    });
    expect(processGone(serverPid)).toBe(false);
    owner.kill('SIGKILL');
    await ownerExited;
    const deadline = Date.now() + 10_000;
    while (!processGone(serverPid) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    expect(processGone(serverPid)).toBe(true);
  });

  it('the shared test server has the Stratus namespace and search attributes', async () => {
    const { address, namespace } = testTemporal();
    const { connection } = await connectTemporal(address, namespace);
    try {
      const { customAttributes } = await connection.operatorService.listSearchAttributes({ namespace });
      for (const name of stratusAttributes) expect(customAttributes?.[name]).toBe(2); // KEYWORD
    } finally {
      await connection.close();
    }
  });

  it('ensureNamespaceAndSearchAttributes registers what is missing, then does nothing', async () => {
    const { address } = testTemporal();
    const namespace = `stratus-ensure-${process.pid}-${Date.now()}`;
    const { connection } = await connectTemporal(address, namespace);
    try {
      const first = await ensureNamespaceAndSearchAttributes(connection, namespace, { retentionDays: 1 });
      expect(first).toEqual({ namespaceCreated: true, searchAttributesAdded: stratusAttributes });
      const again = await ensureNamespaceAndSearchAttributes(connection, namespace);
      expect(again).toEqual({ namespaceCreated: false, searchAttributesAdded: [] });
      const { customAttributes } = await connection.operatorService.listSearchAttributes({ namespace });
      for (const name of stratusAttributes) expect(customAttributes?.[name]).toBe(2);
    } finally {
      await connection.close();
    }
  });

  it('an unreachable address is a one-line MissingDependency', async () => {
    const err = await errorOf(connectTemporal(`127.0.0.1:${await freePort()}`, 'stratus', { connectTimeoutMs: 500 }));
    expect(err).toBeInstanceOf(MissingDependency);
    expect(err.message).toMatch(/^Temporal is unreachable at 127\.0\.0\.1:\d+ \(.*\): start it, or check TEMPORAL_ADDRESS/);
    expect(err.message).not.toContain('\n');
  });
});

describe('temporalUiRunUrl', () => {
  it('builds the history URL of one run, escaping ids', () => {
    expect(temporalUiRunUrl('http://localhost:8233/', 'stratus', 'server/abc 1', 'r-1')).toBe(
      'http://localhost:8233/namespaces/stratus/workflows/server%2Fabc%201/r-1/history',
    );
  });
});

async function waitForPort(port: number): Promise<void> {
  const deadline = Date.now() + 15_000;
  for (;;) {
    const open = await new Promise<boolean>((resolve) => {
      const socket = net.connect({ host: '127.0.0.1', port });
      socket.once('connect', () => {
        socket.destroy();
        resolve(true);
      });
      socket.once('error', () => resolve(false));
    });
    if (open) return;
    if (Date.now() > deadline) throw new Error(`port ${port} never opened`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
