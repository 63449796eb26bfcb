/**
 * Every operation converges (issue 7), end to end against a whole in-process cloud (real Temporal dev
 * server, PGlite, libvirt's test driver) with a reconciler that runs every second:
 * a failing undo never holds a server in BUILD (the leftover is in the ledger until the reconciler
 * finishes it), DELETE cancels a create at any step, a terminated create is cleaned up, a create whose
 * workflow never started is started, conductor steps are idempotent, and a dependency that is down
 * is a 503 with Retry-After in seconds.
 */
import type { Server } from 'node:http';
import { connect as tcpConnect, createServer as createTcpServer, type Socket } from 'node:net';
import { Client, Connection } from '@temporalio/client';
import { FaultPlan } from '../../activities/fault-injection';
import { conductorActivities } from '../../workers/conductor';
import { createApp } from '../../api/app';
import { recordOperation } from '../../api/operations';
import { serverIdForKey } from '../../api/routes/servers';
import { silentLogger } from '../../core/log';
import * as hosts from '../../db/repositories/hosts';
import * as leftovers from '../../db/repositories/leftovers';
import * as servers from '../../db/repositories/servers';
import { ImageUrlSigner } from '../../images/signed-url';
import { FilesystemImageStore } from '../../images/store';
import { createIdentityService } from '../../services/identity';
import { close, listen } from '../../workers/http';
import { OPERATIONS } from '../../workflows/catalog';
import { createServerWorkflowId } from '../../workflows/create-server';
import { deleteServerWorkflowId } from '../../workflows/delete-server';
import { cloudCensus, startServerFixture, stopServerFixture, type ServerFixture } from '../support/cloud-census';
import { freePort } from '../support/ports';
import { waitGone, waitSettled } from '../support/stratus-fixtures';
import { testTemporal } from '../support/temporal';

const faults = new FaultPlan();
let { t, admin, hv, imageId, tiny, net } = {} as ServerFixture;

beforeAll(async () => {
  ({ t, admin, hv, imageId, tiny, net } = await startServerFixture({ faults, env: { STRATUS_RECONCILE_SECONDS: '1', STRATUS_RECONCILE_GRACE_SECONDS: '2' }, cidr: '10.30.0.0/24' }));
}, 120_000);

afterAll(async () => {
  faults.clear();
  await stopServerFixture({ t, hv });
});

afterEach(() => faults.clear());

const fullCensus = () => cloudCensus(t, hv);

function serverBody(extra: Record<string, unknown> = {}) {
  return { name: 'converge', flavor_id: tiny, image_id: imageId, networks: [{ network_id: net.networkId }], volumes: [{ size_gb: 1, delete_on_termination: true }], ...extra };
}

async function pendingLeftoversOf(resourceId: string) {
  const res = await t.call('GET', '/v1/leftovers?status=pending', { token: admin });
  expect(res.status).toBe(200);
  return (res.body.leftovers as Array<{ resource_id: string; host: string | null; action: { activity: string }; error: string }>).filter((l) => l.resource_id === resourceId);
}

async function until(what: string, check: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

test('an undo that fails still ends the server ERROR within 10 s; the leftover waits in the ledger until the reconciler finishes it', async () => {
  const before = await fullCensus();
  faults.failAt('hypervisor.startDomain', 'fatal'); // the boot fails after its domain and disks exist…
  faults.failAt('hypervisor.undefineDomain', 'fatal'); // …and the undo that would remove them fails too
  const started = Date.now();
  const created = await t.call('POST', '/v1/servers', { token: admin, body: serverBody({ name: 'undo-fails' }) });
  expect(created.status).toBe(202);
  const id = created.body.server.id as string;
  const server = await waitSettled(t, admin, id, 10_000);
  const seconds = (Date.now() - started) / 1000;
  expect(seconds).toBeLessThan(10);
  expect(server).toMatchObject({ status: 'ERROR', fault: { step: 'boot', code: 'InjectedFault' } }); // the original fault
  const left = await pendingLeftoversOf(id);
  expect(left.length).toBeGreaterThanOrEqual(1);
  expect(left[0]).toMatchObject({ host: t.config.host.name, action: { activity: 'destroyServer' } });
  expect(left[0]!.error).toContain('injected fatal fault');
  // Everything the database holds is released already; the domain waits on the host.
  const now = await fullCensus();
  expect({ ports: now.ports, claims: now.claims, volumes: now.volumes }).toEqual({ ports: before.ports, claims: before.claims, volumes: before.volumes });
  expect(now.host.domains).toContain(`stratus-${id}`);

  faults.clear(); // the host heals: the reconciler's next round finishes the job
  await until('the ledger to empty', async () => (await pendingLeftoversOf(id)).length === 0, 20_000);
  expect(await fullCensus()).toEqual(before);
  console.log(`undo failed: server ERROR after ${seconds.toFixed(1)} s, leftover cleaned by the reconciler`);
  expect((await t.call('DELETE', `/v1/servers/${id}`, { token: admin })).status).toBe(202);
  await waitGone(t, admin, id);
}, 60_000);

/**
 * Waits until the delete workflow's cancel request to the create was accepted by Temporal (the
 * create's own history shows it only once its current workflow task ends: a held local activity
 * keeps that task open).
 */
async function cancelRequested(serverId: string): Promise<void> {
  const workflowId = deleteServerWorkflowId(serverId);
  const connection = await Connection.connect({ address: testTemporal().address });
  try {
    const handle = new Client({ connection, namespace: testTemporal().namespace }).workflow.getHandle(workflowId);
    await until(`the cancel request of ${workflowId}`, async () => {
      const history = await handle.fetchHistory();
      return (history.events ?? []).some((e) => e.externalWorkflowExecutionCancelRequestedEventAttributes);
    }, 15_000);
  } finally {
    await connection.close();
  }
}

describe('DELETE during each step of a create ends DELETED with nothing left', () => {
  const points: Array<[step: string, point: string]> = [
    ['authenticate', 'authenticate'],
    ['select_image', 'select_image'],
    ['schedule', 'schedule'],
    ['allocate_port', 'allocate_port'],
    ['attach_volume', 'attach_volume'],
    ['boot', 'hypervisor.startDomain'],
    ['start_metering', 'start_metering'],
  ];
  test.each(points)('%s', async (step, point) => {
    const before = await fullCensus();
    const hold = faults.holdAt(point);
    const created = await t.call('POST', '/v1/servers', { token: admin, body: serverBody({ name: `cancel-${step.replace(/_/g, '-')}` }) });
    expect(created.status).toBe(202);
    const id = created.body.server.id as string;
    await hold.reached;
    const deleted = await t.call('DELETE', `/v1/servers/${id}`, { token: admin });
    expect(deleted.status).toBe(202);
    expect(deleted.body.operation.kind).toBe('server.delete');
    await cancelRequested(id); // the delete reached the create: now let the step finish
    hold.release();
    await waitGone(t, admin, id, 30_000);
    expect((await servers.get(t.cloud.db!, id))?.status).toBe('DELETED');
    expect(await fullCensus()).toEqual(before);
    expect(await pendingLeftoversOf(id)).toEqual([]);
    // The create was cancelled; only a cancel that reached it after its last step finds it done (then the delete undid it).
    const create = (await t.call('GET', `/v1/operations/${created.body.operation.id}`, { token: admin })).body;
    if (step === 'start_metering' && create.status === 'succeeded') return;
    expect(create).toMatchObject({ status: 'failed', error: { code: 'Cancelled' } });
  }, 60_000);
});

test('a terminated create (no code runs) is found by the reconciler and cleaned up: ERROR, nothing left', async () => {
  const before = await fullCensus();
  const hold = faults.holdAt('hypervisor.startDomain');
  const created = await t.call('POST', '/v1/servers', { token: admin, body: serverBody({ name: 'terminated' }) });
  const id = created.body.server.id as string;
  await hold.reached;
  const { address, namespace } = testTemporal();
  const connection = await Connection.connect({ address });
  try {
    await new Client({ connection, namespace }).workflow.getHandle(createServerWorkflowId(id)).terminate('test: terminate mid-boot');
  } finally {
    await connection.close();
  }
  hold.release();
  const server = await waitSettled(t, admin, id, 30_000);
  expect(server).toMatchObject({ status: 'ERROR', fault: { code: 'WorkflowClosed' } });
  expect(await fullCensus()).toEqual(before);
  const op = (await t.call('GET', `/v1/operations/${created.body.operation.id}`, { token: admin })).body;
  expect(op.status).toBe('failed');
  expect((await t.call('DELETE', `/v1/servers/${id}`, { token: admin })).status).toBe(202);
  await waitGone(t, admin, id);
}, 60_000);

describe('a create recorded but never started (the API crashed in between) completes', () => {
  /** What the API writes before it starts the workflow, and nothing more. */
  async function recordOnly(serverId: string, name: string) {
    const db = t.cloud.db!;
    const project = await db('projects').where({ name: 'admin' }).first();
    const user = await db('users').where({ name: 'admin' }).first();
    const flavor = await db('flavors').where({ id: tiny }).first();
    await db.transaction(async (trx) => {
      await servers.create(trx, { id: serverId, projectId: project.id, userId: user.id, name, flavorId: tiny, imageId, metadata: {} });
      await recordOperation(trx, {
        def: OPERATIONS.serverCreate,
        resourceId: serverId,
        projectId: project.id,
        input: (operationId) => ({
          serverId,
          operationId,
          projectId: project.id,
          userId: user.id,
          flavor: { id: flavor.id, name: flavor.name, vcpus: flavor.vcpus, ramMb: flavor.ram_mb, diskGb: flavor.disk_gb },
          imageId,
          networks: [{ networkId: net.networkId }],
          volumes: [],
        }),
      });
    });
    return project.id as string;
  }

  test('the reconciler starts it', async () => {
    const id = '7e57c0de-0000-4000-8000-000000000001';
    await recordOnly(id, 'crashed-start');
    const server = await waitSettled(t, admin, id, 30_000);
    expect(server).toMatchObject({ status: 'ACTIVE', fault: null });
    await t.call('DELETE', `/v1/servers/${id}`, { token: admin });
    await waitGone(t, admin, id);
  }, 60_000);

  test('a DELETE before anyone started it ends it: DELETED, and the reconciler does not start it later', async () => {
    const id = '7e57c0de-0000-4000-8000-000000000002';
    await recordOnly(id, 'deleted-unstarted');
    expect((await t.call('DELETE', `/v1/servers/${id}`, { token: admin })).status).toBe(202);
    await waitGone(t, admin, id, 30_000);
    const create = (await t.cloud.db!('operations').where({ resource_id: id, kind: 'server.create' }).first()) as { status: string; error: { code: string } };
    expect(create).toMatchObject({ status: 'failed', error: { code: 'Cancelled' } });
    await new Promise((r) => setTimeout(r, 4000)); // past the grace and a few reconciler rounds
    expect((await servers.get(t.cloud.db!, id))?.status).toBe('DELETED');
    expect(await t.cloud.db!('host_claims').where({ server_id: id })).toEqual([]);
  }, 60_000);

  test('a retry with the same Idempotency-Key starts it, and makes no second server', async () => {
    const key = `crash-${Date.now()}`;
    const project = (await t.cloud.db!('projects').where({ name: 'admin' }).first()).id as string;
    const id = serverIdForKey(project, key);
    await recordOnly(id, 'crashed-retry');
    const retried = await t.call('POST', '/v1/servers', { token: admin, body: serverBody({ name: 'crashed-retry', volumes: [] }), headers: { 'idempotency-key': key } });
    expect(retried.status).toBe(202);
    expect(retried.body.server.id).toBe(id);
    expect((await waitSettled(t, admin, id, 30_000)).status).toBe('ACTIVE');
    const list = await t.call('GET', '/v1/servers?limit=1000', { token: admin });
    expect(list.body.servers.filter((s: { name: string }) => s.name === 'crashed-retry')).toHaveLength(1);
    await t.call('DELETE', `/v1/servers/${id}`, { token: admin });
    await waitGone(t, admin, id);
  }, 60_000);
});

test('conductor steps are idempotent: a re-run after a lost result changes nothing and succeeds', async () => {
  const db = t.cloud.db!;
  const acts = conductorActivities({
    db,
    taskQueue: t.config.temporal.conductorTaskQueue,
    log: silentLogger,
    heartbeatSeconds: 1,
    images: { signer: new ImageUrlSigner('x'.repeat(32)), apiBaseUrl: t.baseUrl, urlTtlSeconds: 60 },
  });
  const vol = await t.call('POST', '/v1/volumes', { token: admin, body: { name: 'idem', size_gb: 1 } });
  expect(vol.status).toBe(202);
  const volumeId = vol.body.volume.id as string;
  await t.waitFor(`/v1/volumes/${volumeId}`, admin, (r) => r.body.status === 'available');
  // The workflow's 'creating → available' ran, its result was lost, and it runs again.
  await expect(acts.transitionVolume({ volumeId, from: ['creating'], to: 'available' })).resolves.toBeUndefined();
  expect((await t.call('GET', `/v1/volumes/${volumeId}`, { token: admin })).body.status).toBe('available');
  // A transition that did not happen is still refused, and not retried (a business failure).
  await expect(acts.transitionVolume({ volumeId, from: ['creating'], to: 'error' })).rejects.toMatchObject({ nonRetryable: true });
  // Releases and ledger records: twice is once.
  const ghost = '7e57c0de-0000-4000-8000-0000000000ff';
  await acts.releasePorts({ serverId: ghost });
  await acts.releasePorts({ serverId: ghost });
  await acts.releaseClaim({ serverId: ghost });
  await acts.releaseClaim({ serverId: ghost });
  const entry = { id: '7e57c0de-0000-4000-8000-0000000000fe', operationId: null, resourceType: 'server', resourceId: ghost, action: { activity: 'releaseClaim', host: null, args: [{ serverId: ghost }] }, error: 'test' };
  await acts.recordLeftover(entry);
  await acts.recordLeftover(entry);
  expect(await db('leftovers').where({ id: entry.id }).count({ n: '*' })).toEqual([{ n: 1 }]);
  // …and the reconciler finishes it (a conductor action), once.
  await until('the test leftover to be done', async () => (await leftovers.get(db, entry.id))?.status === 'done', 15_000);
  await t.call('DELETE', `/v1/volumes/${volumeId}`, { token: admin });
}, 60_000);

describe('a dependency that is down is a 503 with Retry-After, in seconds', () => {
  /** A second API process beside the cloud, with one dependency pointing at nothing. */
  async function apiWith(opts: { deadDatabase?: boolean; deadTemporal?: boolean }) {
    const nothing = await freePort();
    const db = opts.deadDatabase ? (await deadPostgres(nothing)) : t.cloud.db!;
    // Temporal "goes down" behind a proxy: the client connected while it was up, as a running API did.
    const proxy = opts.deadTemporal ? await tcpProxy(testTemporal().address) : undefined;
    const connection = await Connection.connect({ address: proxy?.address ?? testTemporal().address });
    await proxy?.cut();
    const temporal = new Client({ connection, namespace: testTemporal().namespace });
    const app = createApp({
      config: t.config,
      db,
      temporal,
      identity: createIdentityService({ db, tokenTtlSeconds: 3600 }),
      log: silentLogger,
      images: { store: new FilesystemImageStore(t.config.images.storeDir), signer: new ImageUrlSigner('y'.repeat(32)) },
      validateResponses: true,
    });
    const port = await freePort();
    const server: Server = await listen(app, '127.0.0.1', port);
    return {
      url: `http://127.0.0.1:${port}`,
      async stop() {
        await close(server);
        await connection.close();
        if (opts.deadDatabase) await db.destroy();
      },
    };
  }

  /** A TCP proxy to `target`; `cut()` closes it and every connection through it (the target "is down"). */
  async function tcpProxy(target: string) {
    const [host, port] = [target.slice(0, target.lastIndexOf(':')), Number(target.slice(target.lastIndexOf(':') + 1))];
    const sockets = new Set<Socket>();
    const server = createTcpServer((client) => {
      const upstream = tcpConnect(port, host);
      for (const s of [client, upstream]) {
        sockets.add(s);
        s.on('error', () => undefined);
        s.on('close', () => sockets.delete(s));
      }
      client.pipe(upstream).pipe(client);
    });
    const listenPort = await freePort();
    await new Promise<void>((r) => server.listen(listenPort, '127.0.0.1', r));
    return {
      address: `127.0.0.1:${listenPort}`,
      async cut() {
        await new Promise((r) => {
          server.close(r);
          for (const s of sockets) s.destroy();
        });
      },
    };
  }

  const quiet = { warn: () => undefined, error: () => undefined, debug: () => undefined, deprecate: () => undefined };
  async function deadPostgres(port: number) {
    const knex = (await import('knex')).default;
    return knex({ client: 'pg', connection: { host: '127.0.0.1', port, user: 'postgres', connectionTimeoutMillis: 2000 }, pool: { min: 0, max: 2 }, acquireConnectionTimeout: 4000, log: quiet });
  }

  test('the database', async () => {
    const api = await apiWith({ deadDatabase: true });
    try {
      const started = Date.now();
      const res = await fetch(`${api.url}/v1/servers`, { headers: { authorization: `Bearer ${admin}` } });
      const seconds = (Date.now() - started) / 1000;
      expect(res.status).toBe(503);
      expect(res.headers.get('content-type')).toMatch(/^application\/problem\+json/);
      expect(Number(res.headers.get('retry-after'))).toBeGreaterThan(0);
      expect(((await res.json()) as { detail: string }).detail).toMatch(/database is unavailable/);
      expect(seconds).toBeLessThan(6);
    } finally {
      await api.stop();
    }
  }, 30_000);

  test('Temporal: 503 in seconds, and a retry with the same Idempotency-Key completes the recorded create', async () => {
    const api = await apiWith({ deadTemporal: true });
    const key = `temporal-down-${Date.now()}`;
    try {
      const started = Date.now();
      const res = await fetch(`${api.url}/v1/servers`, {
        method: 'POST',
        headers: { authorization: `Bearer ${admin}`, 'content-type': 'application/json', 'idempotency-key': key },
        body: JSON.stringify(serverBody({ name: 'temporal-down', volumes: [] })),
      });
      const seconds = (Date.now() - started) / 1000;
      expect(res.status).toBe(503);
      expect(Number(res.headers.get('retry-after'))).toBeGreaterThan(0);
      expect(((await res.json()) as { detail: string }).detail).toMatch(/Temporal is unavailable/);
      expect(seconds).toBeLessThan(12); // the start's 5 s deadline, plus the database work, on a loaded machine (was 17–22 s)
      console.log(`Temporal down: 503 after ${seconds.toFixed(1)} s`);
    } finally {
      await api.stop();
    }
    const retried = await t.call('POST', '/v1/servers', { token: admin, body: serverBody({ name: 'temporal-down', volumes: [] }), headers: { 'idempotency-key': key } });
    expect(retried.status).toBe(202);
    const id = retried.body.server.id as string;
    expect((await waitSettled(t, admin, id, 30_000)).status).toBe('ACTIVE');
    await t.call('DELETE', `/v1/servers/${id}`, { token: admin });
    await waitGone(t, admin, id);
  }, 60_000);
});

test('a host whose agent does not answer: the create moves to a live host, the fault names the host, its cleanup waits in the ledger', async () => {
  const db = t.cloud.db!;
  // A host that registered and looks alive (the scheduler prefers it: most free RAM) but whose agent never picks up work.
  const ghost = `ghost-${Date.now()}`;
  const beat = () => hosts.upsertHeartbeat(db, { name: ghost, libvirtUri: 'test:///default', libvirtVersion: '0', vcpus: 64, ramMb: 1_000_000, diskGb: 10_000, capabilities: {} });
  await beat();
  const timer = setInterval(() => void beat().catch(() => undefined), 500);
  try {
    const created = await t.call('POST', '/v1/servers', { token: admin, body: serverBody({ name: 'ghosted', volumes: [] }) });
    const id = created.body.server.id as string;
    const server = await waitSettled(t, admin, id, 90_000);
    expect(server).toMatchObject({ status: 'ACTIVE', host: t.config.host.name });
    const op = (await t.call('GET', `/v1/operations/${created.body.operation.id}`, { token: admin })).body;
    expect(op.progress.hosts).toEqual([ghost, t.config.host.name]);
    expect(op.progress.steps.find((s: { name: string }) => s.name === 'boot')).toMatchObject({ status: 'done', attempts: 2 });
    const left = await pendingLeftoversOf(id);
    expect(left).toEqual([expect.objectContaining({ host: ghost, action: expect.objectContaining({ activity: 'destroyServer' }) })]);
    expect(left[0]!.error).toMatch(new RegExp(`host ${ghost} did not answer`));
    await t.call('DELETE', `/v1/servers/${id}`, { token: admin });
    await waitGone(t, admin, id);
  } finally {
    clearInterval(timer);
    await hosts.markDown(db, ghost);
    await db('leftovers').where({ host: ghost }).delete(); // the ghost never returns: forget what waits for it
  }
}, 120_000);
