/**
 * Servers end to end over HTTP, against a whole in-process cloud: real Temporal dev server, PGlite,
 * libvirt's test driver (whose state the test process shares, so the test can look at the host).
 * Two host agents, as in a real cloud: the cloud's own and a second one on the same test-driver state
 * (test:///default; names carry the server id), with the same armed faults, so a boot failure on one
 * host reschedules to the other (test/integration/two-hosts.test.ts looks at each host apart).
 */
import fs from 'node:fs';
import path from 'node:path';
import { Worker } from '@temporalio/worker';
import { FaultPlan } from '../../activities/fault-injection';
import { connectTemporal } from '../../temporal/connection';
import { testWorkflowBundle } from '../support/workflow-bundle';
import { testTemporal } from '../support/temporal';
import { cloudCensus, startServerFixture, stopServerFixture, type ServerFixture } from '../support/cloud-census';
import { waitGone, waitSettled } from '../support/stratus-fixtures';

const faults = new FaultPlan();
let { t, admin, hv, imageId, tiny, net } = {} as ServerFixture;

beforeAll(async () => {
  ({ t, admin, hv, imageId, tiny, net } = await startServerFixture({ faults, hosts: [{ libvirt: 'shared', faults }], cidr: '10.20.0.0/24' }));
}, 120_000);

afterAll(() => stopServerFixture({ t, hv }));

/** Everything a server can hold, in the database and on the host. */
const fullCensus = () => cloudCensus(t, hv);

/** A workflow's history, from the shared Temporal server. */
async function liveHistory(workflowId: string) {
  const { address, namespace } = testTemporal();
  const { connection, client } = await connectTemporal(address, namespace);
  try {
    return await client.workflow.getHandle(workflowId).fetchHistory();
  } finally {
    await connection.close();
  }
}

/** Fetches a finished workflow's history from the server and replays it against the current code. */
async function replayLiveHistory(workflowId: string): Promise<void> {
  await Worker.runReplayHistory({ workflowBundle: await testWorkflowBundle() }, await liveHistory(workflowId), workflowId);
}

function serverBody(extra: Record<string, unknown> = {}) {
  return {
    name: 'web-1',
    flavor_id: tiny,
    image_id: imageId,
    networks: [{ network_id: net.networkId }],
    volumes: [{ size_gb: 1, delete_on_termination: true }],
    ...extra,
  };
}

test('create → ACTIVE with an IP, an in-use volume and a qcow2 overlay root disk; delete → all gone', async () => {
  const before = await fullCensus();
  const created = await t.call('POST', '/v1/servers', { token: admin, body: serverBody() });
  expect(created.status).toBe(202);
  expect(created.body.server).toMatchObject({ status: 'BUILD', name: 'web-1' });
  expect(created.body.operation).toMatchObject({ kind: 'server.create', status: 'running' });
  expect(created.body.operation.links.temporal_ui).toContain(`/workflows/server%3A${created.body.server.id}%3Acreate/`);
  const id = created.body.server.id as string;

  const server = await waitSettled(t, admin, id);
  expect(server).toMatchObject({ status: 'ACTIVE', task_state: null, power_state: 'running', fault: null });
  expect(t.hostNames).toContain(server.host);
  const onHost = server.host === t.config.host.name ? t.config.host : t.hosts[0]!.config;
  expect(server.addresses).toHaveLength(1);
  expect(server.addresses[0].ip).toMatch(/^10\.20\.0\.\d+$/);
  expect(server.addresses[0].ip).not.toBe('10.20.0.1'); // the gateway
  expect(server.volumes_attached).toHaveLength(1);
  const volume = await t.call('GET', `/v1/volumes/${server.volumes_attached[0].id}`, { token: admin });
  expect(volume.body).toMatchObject({ status: 'in-use', server_id: id, device: 'vdb', size_gb: 1 });

  // On the host: a running domain whose root disk is a qcow2 overlay on the cached image.
  const domain = `stratus-${id}`;
  expect(await hv.domainState(domain)).toBe('running');
  const vols = await hv.listVolumes(t.config.host.storagePool);
  const root = vols.find((v) => v.name === `root-${id}`);
  expect(root).toMatchObject({ format: 'qcow2', backingFormat: 'raw' });
  expect(root!.backingPath).toContain(onHost.imageCacheDir);
  const disks = await hv.domainDisks(domain);
  expect(disks.map((d) => d.path)).toEqual(expect.arrayContaining([root!.path]));

  // The operation: every step done, in order, with times.
  const op = await t.call('GET', `/v1/operations/${created.body.operation.id}`, { token: admin });
  expect(op.body.status).toBe('succeeded');
  expect(op.body.progress.steps.map((s: { name: string; status: string }) => `${s.name}:${s.status}`)).toEqual([
    'authenticate:done',
    'select_image:done',
    'schedule:done',
    'allocate_port:done',
    'attach_volume:done',
    'boot:done',
    'start_metering:done',
  ]);

  // Its history replays against today's code (the corpus: test/fixtures/histories, npm run record:histories).
  await replayLiveHistory(`server:${id}:create`);

  const deleted = await t.call('DELETE', `/v1/servers/${id}`, { token: admin });
  expect(deleted.status).toBe(202);
  await waitGone(t, admin, id);
  expect(await hv.domainState(domain)).toBeUndefined();
  expect(await fullCensus()).toEqual(before);
}, 90_000);

test('progress while a step runs is in the rows, carried by the conductor steps themselves; a create is 7 local activities', async () => {
  const held = faults.holdAt('allocate_port');
  const created = await t.call('POST', '/v1/servers', { token: admin, body: serverBody({ name: 'progress-1', volumes: [] }) });
  expect(created.status).toBe(202);
  const id = created.body.server.id as string;
  try {
    await held.reached;
    // allocatePorts is held inside the activity; its start was written beside it, from the argument it carried.
    const during = await t.waitFor(`/v1/operations/${created.body.operation.id}`, admin, (r) => r.body.progress?.current === 'allocate_port', 10_000);
    expect(during.body.progress.steps.map((s: { name: string; status: string }) => `${s.name}:${s.status}`)).toEqual([
      'authenticate:done',
      'select_image:done',
      'schedule:done',
      'allocate_port:running',
      'attach_volume:pending',
      'boot:pending',
      'start_metering:pending',
    ]);
    const server = await t.call('GET', `/v1/servers/${id}`, { token: admin });
    expect(server.body).toMatchObject({ status: 'BUILD', progress: { current: 'allocate_port' } });
  } finally {
    held.release();
  }
  expect(await waitSettled(t, admin, id)).toMatchObject({ status: 'ACTIVE' });
  const op = await t.call('GET', `/v1/operations/${created.body.operation.id}`, { token: admin });
  expect(op.body.progress.steps.every((s: { status: string }) => s.status === 'done')).toBe(true); // the last write rode on finishServerOperation

  // The history: every conductor call is a step's own, none a progress write.
  const history = await liveHistory(`server:${id}:create`);
  const localActivities = (history.events ?? []).flatMap((e) => {
    const marker = e.markerRecordedEventAttributes;
    if (marker?.markerName !== 'core_local_activity') return [];
    const data = marker.details?.data?.payloads?.[0]?.data;
    return [JSON.parse(Buffer.from(data!).toString()).activity_type as string];
  });
  // authenticate reserves the quota, and the claim writes the host and task state ('merged-conductor-steps').
  expect(localActivities).toEqual([
    'authenticateRequest',
    'selectImage',
    'claimHost',
    'allocatePorts',
    'setServerState',
    'startMetering',
    'finishServerOperation',
  ]);
  await t.call('DELETE', `/v1/servers/${id}`, { token: admin });
  await waitGone(t, admin, id);
}, 90_000);

describe('a failure at any step leaves ERROR with the step named, and nothing allocated', () => {
  const cases: Array<[step: string, point: string]> = [
    ['authenticate', 'authenticate'],
    ['select_image', 'select_image'],
    ['schedule', 'schedule'],
    ['allocate_port', 'allocate_port'],
    ['attach_volume', 'attach_volume'],
    ['boot', 'hypervisor.startDomain'], // after the domain and its disks exist: a half-success
    ['start_metering', 'start_metering'],
  ];
  test.each(cases)('%s', async (step, point) => {
    const before = await fullCensus();
    faults.failAt(point, 'fatal');
    try {
      const created = await t.call('POST', '/v1/servers', { token: admin, body: serverBody({ name: `fail-${step.replace(/_/g, '-')}` }) });
      expect(created.status).toBe(202);
      const server = await waitSettled(t, admin, created.body.server.id);
      expect(server.status).toBe('ERROR');
      expect(server.fault).toMatchObject({ step, code: 'InjectedFault' });
      expect(await fullCensus()).toEqual(before);
      const op = await t.call('GET', `/v1/operations/${created.body.operation.id}`, { token: admin });
      expect(op.body.status).toBe('failed');
      expect(op.body.error).toMatchObject({ step });
      // An ERROR server can be deleted, and that leaves nothing either.
      expect((await t.call('DELETE', `/v1/servers/${server.id}`, { token: admin })).status).toBe(202);
      await waitGone(t, admin, server.id);
      expect(await fullCensus()).toEqual(before);
    } finally {
      faults.clear();
    }
  }, 90_000);
});

test('no valid host: ERROR at schedule with a reason per host', async () => {
  // Within the default quota (40 vCPU, 102400 MiB), beyond every host.
  const huge = await t.call('POST', '/v1/flavors', { token: admin, body: { name: 'x1.huge', vcpus: 16, ram_mb: 100_000, disk_gb: 10 } });
  const created = await t.call('POST', '/v1/servers', { token: admin, body: serverBody({ flavor_id: huge.body.id, volumes: [] }) });
  const server = await waitSettled(t, admin, created.body.server.id);
  expect(server.fault).toMatchObject({ step: 'schedule', code: 'NoValidHost' });
  for (const name of t.hostNames) expect(server.fault.message).toContain(`${name}:`);
  await t.call('DELETE', `/v1/servers/${server.id}`, { token: admin });
  await waitGone(t, admin, server.id);
}, 60_000);

test('the same Idempotency-Key, sent 5 times at once, makes one server', async () => {
  const key = `key-${Date.now()}`;
  const results = await Promise.all(
    Array.from({ length: 5 }, () =>
      t.call('POST', '/v1/servers', { token: admin, body: serverBody({ name: 'once', volumes: [] }), headers: { 'idempotency-key': key } }),
    ),
  );
  const ids = new Set(results.filter((r) => r.status === 202).map((r) => r.body.server.id));
  expect(ids.size).toBe(1);
  expect(results.every((r) => r.status === 202 || r.status === 409)).toBe(true);
  const [id] = [...ids] as string[];
  await waitSettled(t, admin, id!);
  const list = await t.call('GET', '/v1/servers?limit=1000', { token: admin });
  expect(list.body.servers.filter((s: { name: string }) => s.name === 'once')).toHaveLength(1);
  await t.call('DELETE', `/v1/servers/${id}`, { token: admin });
  await waitGone(t, admin, id!);
}, 60_000);

test('bad input is 4xx naming the field, and creates nothing', async () => {
  const before = await fullCensus();
  const cases: Array<[Record<string, unknown>, number, string]> = [
    [{ flavor_id: '00000000-0000-4000-8000-000000000000' }, 400, 'body.flavor_id'],
    [{ image_id: '00000000-0000-4000-8000-000000000000' }, 404, 'body.image_id'],
    [{ networks: [{ network_id: '00000000-0000-4000-8000-000000000000' }] }, 400, 'body.networks[0].network_id'],
    [{ volumes: [{ volume_id: '00000000-0000-4000-8000-000000000000' }] }, 400, 'body.volumes[0].volume_id'],
    [{ name: '' }, 400, 'body.name'],
  ];
  for (const [extra, status, field] of cases) {
    const res = await t.call('POST', '/v1/servers', { token: admin, body: serverBody(extra) });
    expect({ status: res.status, field: res.body.fields?.[0]?.field }).toEqual({ status, field });
  }
  expect(await fullCensus()).toEqual(before);
});

test('actions: stop, start, reboot; invalid ones are 409', async () => {
  const created = await t.call('POST', '/v1/servers', { token: admin, body: serverBody({ name: 'power', volumes: [] }) });
  const id = created.body.server.id as string;
  await waitSettled(t, admin, id);
  expect((await t.call('POST', `/v1/servers/${id}/action`, { token: admin, body: { action: 'start' } })).status).toBe(409);
  expect((await t.call('POST', `/v1/servers/${id}/action`, { token: admin, body: { action: 'stop' } })).status).toBe(202);
  expect((await waitSettled(t, admin, id)).status).toBe('SHUTOFF');
  expect(await hv.domainState(`stratus-${id}`)).toBe('shutoff');
  expect((await t.call('POST', `/v1/servers/${id}/action`, { token: admin, body: { action: 'reboot' } })).status).toBe(409);
  expect((await t.call('POST', `/v1/servers/${id}/action`, { token: admin, body: { action: 'start' } })).status).toBe(202);
  expect((await waitSettled(t, admin, id)).status).toBe('ACTIVE');
  expect((await t.call('POST', `/v1/servers/${id}/action`, { token: admin, body: { action: 'reboot' } })).status).toBe(202);
  expect((await waitSettled(t, admin, id)).status).toBe('ACTIVE');
  const console = await t.call('GET', `/v1/servers/${id}/console`, { token: admin });
  expect(console.status).toBe(200);
  expect(typeof console.body.output).toBe('string');
  await t.call('DELETE', `/v1/servers/${id}`, { token: admin });
  await waitGone(t, admin, id);
}, 90_000);

test('the console streams live as server-sent events', async () => {
  const created = await t.call('POST', '/v1/servers', { token: admin, body: serverBody({ name: 'console', volumes: [] }) });
  const id = created.body.server.id as string;
  await waitSettled(t, admin, id);
  // The test driver runs no guest: write to the serial log file as QEMU would.
  const server = (await t.call('GET', `/v1/servers/${id}`, { token: admin })).body;
  const onHost = server.host === t.config.host.name ? t.config.host : t.hosts[0]!.config;
  const log = path.join(path.dirname(onHost.imageCacheDir), 'console', `stratus-${id}.log`);
  fs.mkdirSync(path.dirname(log), { recursive: true });
  fs.appendFileSync(log, 'hello from the guest\n');

  const controller = new AbortController();
  const res = await fetch(`${t.baseUrl}/v1/servers/${id}/console/stream`, { headers: { authorization: `Bearer ${admin}` }, signal: controller.signal });
  expect(res.status).toBe(200);
  expect(res.headers.get('content-type')).toMatch(/^text\/event-stream/);
  const reader = res.body!.getReader();
  const decoder = new TextDecoder();
  let received = '';
  const readUntil = async (text: string) => {
    const deadline = Date.now() + 10_000;
    while (!received.includes(text) && Date.now() < deadline) {
      const { value, done } = await reader.read();
      if (done) break;
      for (const line of decoder.decode(value).split('\n')) if (line.startsWith('data: ')) received += JSON.parse(line.slice(6));
    }
    return received;
  };
  expect(await readUntil('hello from the guest')).toContain('hello from the guest');
  fs.appendFileSync(log, 'second line\n');
  expect(await readUntil('second line')).toBe('hello from the guest\nsecond line\n');
  controller.abort();
  expect((await t.call('GET', `/v1/servers/${id}/console`, { token: admin })).body.output).toBe('hello from the guest\nsecond line\n');
  await t.call('DELETE', `/v1/servers/${id}`, { token: admin });
  await waitGone(t, admin, id);
}, 60_000);

test("another project's server, and its operation, are 404; a reader cannot create", async () => {
  const created = await t.call('POST', '/v1/servers', { token: admin, body: serverBody({ name: 'private', volumes: [] }) });
  const id = created.body.server.id as string;
  await waitSettled(t, admin, id);
  const project = (await t.call('POST', '/v1/projects', { token: admin, body: { name: 'other-team' } })).body;
  const user = (await t.call('POST', '/v1/users', { token: admin, body: { name: 'outsider', password: 'outsider-pw' } })).body;
  await t.call('PUT', `/v1/projects/${project.id}/users/${user.id}/roles/member`, { token: admin });
  const reader = (await t.call('POST', '/v1/users', { token: admin, body: { name: 'watcher', password: 'watcher-pw' } })).body;
  await t.call('PUT', `/v1/projects/${project.id}/users/${reader.id}/roles/reader`, { token: admin });
  const outsider = await t.login('outsider', 'outsider-pw', 'other-team');
  const watcher = await t.login('watcher', 'watcher-pw', 'other-team');
  expect((await t.call('GET', `/v1/servers/${id}`, { token: outsider })).status).toBe(404);
  expect((await t.call('DELETE', `/v1/servers/${id}`, { token: outsider })).status).toBe(404);
  expect((await t.call('GET', `/v1/operations/${created.body.operation.id}`, { token: outsider })).status).toBe(404);
  expect((await t.call('GET', '/v1/servers', { token: outsider })).body.servers).toEqual([]);
  expect((await t.call('POST', '/v1/servers', { token: watcher, body: serverBody({ name: 'nope', networks: [], volumes: [] }) })).status).toBe(403);
  await t.call('DELETE', `/v1/servers/${id}`, { token: admin });
  await waitGone(t, admin, id);
}, 60_000);
