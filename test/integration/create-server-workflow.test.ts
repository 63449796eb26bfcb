/**
 * Every branch of the create flow (workflows/create-server.ts), on the real Temporal dev server with
 * MOCKED activities: a Worker on a private task queue runs the real workflow bundle with fake conductor
 * activities, and one Worker per fake host (`host.<name>`) runs fake host activities. The fakes keep a
 * tiny model of what a server holds (claims, ports, volumes, domains, metering), so each branch ends
 * with one assertion: ACTIVE holding exactly one of each, or ERROR holding nothing.
 *
 * Branches: success; each step's failure (authenticate, select_image, schedule, allocate_port,
 * attach_volume on the conductor, attach_volume on the host, boot, start_metering); a reschedule
 * (boot, host volume create); a conductor-side failure during boot (no reschedule); the pinned host
 * (existing volume); the hosts running out; the attempts bound.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { ApplicationFailure } from '@temporalio/common';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { Worker } from '@temporalio/worker';
import { WorkflowFailedError } from '@temporalio/client';
import { silentLogger } from '../../core/log';
import { hostTaskQueue } from '../../temporal/constants';
import { testWorkflowBundle } from '../support/workflow-bundle';
import { installTemporalRuntime } from '../../workers/temporal-runtime';
import { createServer, type CreateServerInput } from '../../workflows/create-server';
import { testTemporal } from '../support/temporal';

let env: TestWorkflowEnvironment;
let bundle: { code: string };

beforeAll(async () => {
  installTemporalRuntime(silentLogger, { forwardCoreLogs: false });
  const { address, namespace } = testTemporal();
  env = await TestWorkflowEnvironment.createFromExistingServer({ address, namespace });
  bundle = await testWorkflowBundle();
}, 120_000);

afterAll(async () => {
  await env?.teardown();
});

type Fail = { activity: string; host?: string; times?: number };

/** A fake cloud: what the create flow's activities would hold, and failures armed per activity (and host). */
class FakeCloud {
  readonly calls: string[] = [];
  readonly claims = new Map<string, string>(); // serverId → host
  readonly ports = new Set<string>();
  /** volumeId → { host, status } ('deleted' rows stay, as in the database). */
  readonly volumes = new Map<string, { host: string; status: string; serverId: string | null }>();
  /** host → domain names / pool volume names */
  readonly domains = new Map<string, Set<string>>();
  readonly poolVolumes = new Map<string, Set<string>>();
  readonly metering = new Set<string>();
  finished: { status: string; serverStatus: string; fault?: { step: string; code: string; message: string } } | undefined;
  claimRequests: Array<{ excludeHosts: string[]; requiredHost: string | null }> = [];
  private readonly armed: Fail[] = [];

  constructor(readonly hosts: string[]) {
    for (const h of hosts) {
      this.domains.set(h, new Set());
      this.poolVolumes.set(h, new Set());
    }
  }

  fail(activity: string, host?: string, times = Infinity): this {
    this.armed.push({ activity, ...(host ? { host } : {}), times });
    return this;
  }

  private check(activity: string, host?: string): void {
    this.calls.push(host ? `${activity}@${host}` : activity);
    const a = this.armed.find((f) => f.activity === activity && (f.host === undefined || f.host === host) && (f.times ?? 1) > 0);
    if (!a) return;
    a.times = (a.times ?? 1) - 1;
    throw ApplicationFailure.nonRetryable(`${activity} failed${host ? ` on ${host}` : ''}`, 'InjectedFault');
  }

  /** Everything a server holds (for ERROR: must be empty). */
  holdings() {
    return {
      claims: [...this.claims.entries()].map(([s, h]) => `${s}@${h}`),
      ports: [...this.ports],
      volumes: [...this.volumes.entries()].filter(([, v]) => v.status !== 'deleted' && v.serverId !== null).map(([id, v]) => `${id}@${v.host}:${v.status}`),
      domains: [...this.domains.entries()].flatMap(([h, ds]) => [...ds].map((d) => `${d}@${h}`)),
      poolVolumes: [...this.poolVolumes.entries()].flatMap(([h, vs]) => [...vs].map((v) => `${v}@${h}`)),
      metering: [...this.metering],
    };
  }

  conductorActivities() {
    return {
      // As the real one: with `reserveQuota` (create runs since 'merged-conductor-steps') it reserves too.
      authenticateRequest: async (req: { reserveQuota?: unknown }) => {
        this.check('authenticateRequest');
        if (req.reserveQuota) this.check('reserveServerQuota');
      },
      reserveServerQuota: async () => this.check('reserveServerQuota'),
      selectImage: async ({ imageId }: { imageId: string }) => {
        this.check('selectImage');
        return { id: imageId, checksum: 'c', sizeBytes: 1, diskFormat: 'raw', downloadUrl: 'http://x/y' };
      },
      hostOfVolumes: async ({ volumeIds }: { volumeIds: string[] }) => {
        this.check('hostOfVolumes');
        return this.volumes.get(volumeIds[0]!)?.host ?? null;
      },
      claimHost: async (req: { serverId: string; excludeHosts: string[]; requiredHost: string | null; lastFailure?: string }) => {
        this.check('claimHost');
        this.claimRequests.push({ excludeHosts: [...req.excludeHosts], requiredHost: req.requiredHost });
        const host = this.hosts.find((h) => !req.excludeHosts.includes(h) && (req.requiredHost === null || h === req.requiredHost));
        if (!host) throw ApplicationFailure.nonRetryable(`no valid host (${this.hosts.map((h) => `${h}: ${req.excludeHosts.includes(h) ? 'failed already' : 'not the pinned host'}`).join('; ')})`, 'NoValidHost');
        this.claims.set(req.serverId, host);
        return host;
      },
      releaseClaim: async ({ serverId }: { serverId: string }) => {
        this.check('releaseClaim');
        this.claims.delete(serverId);
      },
      setServerState: async () => {
        this.calls.push('setServerState');
        return { host: null, status: 'BUILD' };
      },
      allocatePorts: async ({ serverId }: { serverId: string }) => {
        this.check('allocatePorts');
        this.ports.add(`port-${serverId}`);
        return [];
      },
      releasePorts: async ({ serverId }: { serverId: string }) => {
        this.check('releasePorts');
        this.ports.delete(`port-${serverId}`);
      },
      prepareServerVolumes: async (req: { serverId: string; host: string; requests: Array<{ volumeId: string } | { newVolumeId: string; sizeGb: number }> }) => {
        this.check('prepareServerVolumes');
        const toCreate: Array<{ volumeId: string; poolVolume: string; sizeGb: number }> = [];
        const volumes = req.requests.map((r, i) => {
          const id = 'volumeId' in r ? r.volumeId : r.newVolumeId;
          if (!('volumeId' in r)) {
            this.volumes.set(id, { host: req.host, status: 'creating', serverId: req.serverId });
            toCreate.push({ volumeId: id, poolVolume: `volume-${id}`, sizeGb: r.sizeGb });
          } else {
            this.volumes.set(id, { ...this.volumes.get(id)!, status: 'reserved', serverId: req.serverId });
          }
          return { volumeId: id, poolVolume: `volume-${id}`, serial: id.slice(0, 20), target: `vd${'bcdefgh'[i]}` };
        });
        return { volumes, toCreate };
      },
      releaseServerVolumes: async (req: { serverId: string; deleteVolumeIds?: string[] }) => {
        this.check('releaseServerVolumes');
        const deleted: string[] = [];
        for (const [id, v] of this.volumes) {
          if (v.serverId !== req.serverId) continue;
          if (req.deleteVolumeIds?.includes(id)) {
            v.status = 'deleting';
            deleted.push(id);
          } else {
            Object.assign(v, { status: 'available', serverId: null });
          }
        }
        return { deletePoolVolumes: deleted.map((id) => `volume-${id}`), deletedVolumeIds: deleted };
      },
      forgetDeletedVolumes: async ({ volumeIds }: { volumeIds: string[] }) => {
        this.check('forgetDeletedVolumes');
        for (const id of volumeIds) Object.assign(this.volumes.get(id)!, { status: 'deleted', serverId: null });
      },
      markServerVolumesInUse: async ({ serverId }: { serverId: string }) => {
        this.check('markServerVolumesInUse');
        for (const v of this.volumes.values()) if (v.serverId === serverId) v.status = 'in-use';
      },
      startMetering: async ({ serverId }: { serverId: string }) => {
        this.check('startMetering');
        this.metering.add(serverId);
      },
      stopMetering: async ({ serverId }: { serverId: string }) => {
        this.check('stopMetering');
        this.metering.delete(serverId);
      },
      finishServerOperation: async (req: { server: { status: string; fault?: { step: string; code: string; message: string } | null }; status: string }) => {
        this.calls.push('finishServerOperation');
        this.finished = { status: req.status, serverStatus: req.server.status, ...(req.server.fault ? { fault: req.server.fault } : {}) };
      },
    };
  }

  hostActivities(host: string) {
    return {
      createVolume: async ({ poolVolume }: { poolVolume: string }) => {
        this.poolVolumes.get(host)!.add(poolVolume); // half-success: the volume exists, then the call fails
        this.check('createVolume', host);
      },
      deleteVolume: async ({ poolVolume }: { poolVolume: string }) => {
        this.check('deleteVolume', host);
        this.poolVolumes.get(host)!.delete(poolVolume);
      },
      bootServer: async ({ domainName }: { domainName: string }) => {
        this.domains.get(host)!.add(domainName); // defined first, as the real agent does
        this.poolVolumes.get(host)!.add(`root-${domainName}`);
        this.check('bootServer', host);
      },
      destroyServer: async ({ domainName }: { domainName: string }) => {
        this.check('destroyServer', host);
        this.domains.get(host)!.delete(domainName);
        this.poolVolumes.get(host)!.delete(`root-${domainName}`);
      },
    };
  }
}

interface Run {
  result?: { serverId: string; host: string };
  error?: WorkflowFailedError;
}

/** Runs one createServer against `cloud`'s fakes, with a workflow worker and one worker per host. */
async function runCreate(cloud: FakeCloud, input: Partial<CreateServerInput> = {}): Promise<Run> {
  const taskQueue = `create-flow-${randomBytes(4).toString('hex')}`;
  const workers = [
    await Worker.create({
      connection: env.nativeConnection,
      namespace: env.namespace ?? 'stratus',
      taskQueue,
      workflowBundle: bundle,
      activities: cloud.conductorActivities(),
    }),
    ...(await Promise.all(
      cloud.hosts.map((h) =>
        Worker.create({ connection: env.nativeConnection, namespace: env.namespace ?? 'stratus', taskQueue: hostTaskQueue(h), activities: cloud.hostActivities(h) }),
      ),
    )),
  ];
  const serverId = randomUUID();
  const args: CreateServerInput = {
    serverId,
    projectId: randomUUID(),
    userId: randomUUID(),
    operationId: randomUUID(),
    flavor: { id: randomUUID(), name: 'm1.tiny', vcpus: 1, ramMb: 512, diskGb: 1 } as CreateServerInput['flavor'],
    imageId: randomUUID(),
    networks: [],
    volumes: [],
    ...input,
  };
  const run = async (): Promise<Run> => {
    try {
      return { result: await env.client.workflow.execute(createServer, { taskQueue, workflowId: `test-create-${serverId}`, args: [args], workflowExecutionTimeout: '60 seconds' }) };
    } catch (err) {
      if (err instanceof WorkflowFailedError) return { error: err };
      throw err;
    }
  };
  const [first, ...rest] = workers;
  return first!.runUntil(async () => {
    const running = rest.map((w) => w.run());
    try {
      return await run();
    } finally {
      for (const w of rest) w.shutdown();
      await Promise.all(running);
    }
  });
}

const EMPTY = { claims: [], ports: [], volumes: [], domains: [], poolVolumes: [], metering: [] };
const hostNames = (n: number) => Array.from({ length: n }, (_, i) => `mock-${i + 1}-${randomBytes(3).toString('hex')}`);

test('success: ACTIVE on the first host, holding one claim, port, volume, domain and meter', async () => {
  const cloud = new FakeCloud(hostNames(2));
  const run = await runCreate(cloud, { volumes: [{ sizeGb: 1, deleteOnTermination: true }] });
  expect(run.result?.host).toBe(cloud.hosts[0]);
  expect(cloud.finished).toEqual({ status: 'succeeded', serverStatus: 'ACTIVE' });
  const held = cloud.holdings();
  expect(held.claims).toHaveLength(1);
  expect(held.ports).toHaveLength(1);
  expect(held.volumes).toEqual([expect.stringMatching(new RegExp(`@${cloud.hosts[0]}:in-use$`))]);
  expect(held.domains).toEqual([`stratus-${run.result!.serverId}@${cloud.hosts[0]}`]);
  expect(held.metering).toHaveLength(1);
}, 60_000);

describe('a failing step ends ERROR with the step named and nothing held', () => {
  const cases: Array<[step: string, activity: string, host: boolean]> = [
    ['authenticate', 'authenticateRequest', false],
    ['authenticate', 'reserveServerQuota', false],
    ['select_image', 'selectImage', false],
    ['schedule', 'claimHost', false],
    ['allocate_port', 'allocatePorts', false],
    ['attach_volume', 'prepareServerVolumes', false],
    ['attach_volume', 'createVolume', true],
    ['boot', 'bootServer', true],
    ['boot', 'markServerVolumesInUse', false],
    ['start_metering', 'startMetering', false],
  ];
  test.each(cases)('%s (%s)', async (step, activity, onHost) => {
    const cloud = new FakeCloud(hostNames(1)).fail(activity);
    const run = await runCreate(cloud, { volumes: [{ sizeGb: 1, deleteOnTermination: true }] });
    expect(run.error).toBeInstanceOf(WorkflowFailedError);
    expect(cloud.finished).toMatchObject({ status: 'failed', serverStatus: 'ERROR', fault: { step, code: 'InjectedFault' } });
    if (onHost) expect(cloud.finished!.fault!.message).toContain(cloud.hosts[0]);
    expect(cloud.holdings()).toEqual(EMPTY);
  }, 60_000);
});

test('reschedule: a boot failure on host 1 moves the server to host 2, and host 1 is cleaned', async () => {
  const cloud = new FakeCloud(hostNames(2));
  cloud.fail('bootServer', cloud.hosts[0]);
  const run = await runCreate(cloud, { volumes: [{ sizeGb: 1, deleteOnTermination: true }] });
  expect(run.result?.host).toBe(cloud.hosts[1]);
  expect(cloud.claimRequests.map((r) => r.excludeHosts)).toEqual([[], [cloud.hosts[0]]]);
  const held = cloud.holdings();
  expect(held.domains).toEqual([`stratus-${run.result!.serverId}@${cloud.hosts[1]}`]);
  expect(held.poolVolumes.every((v) => v.endsWith(`@${cloud.hosts[1]}`))).toBe(true);
  expect(held.claims).toEqual([`${run.result!.serverId}@${cloud.hosts[1]}`]);
  // The port survives the reschedule (allocated once); the host's part was undone on host 1.
  expect(cloud.calls.filter((c) => c === 'allocatePorts')).toHaveLength(1);
  expect(cloud.calls).toContain(`destroyServer@${cloud.hosts[0]}`);
  expect(cloud.calls).toContain(`deleteVolume@${cloud.hosts[0]}`);
}, 60_000);

test('reschedule: a host volume create failure on host 1 moves the server to host 2', async () => {
  const cloud = new FakeCloud(hostNames(2));
  cloud.fail('createVolume', cloud.hosts[0]);
  const run = await runCreate(cloud, { volumes: [{ sizeGb: 1 }] });
  expect(run.result?.host).toBe(cloud.hosts[1]);
  expect(cloud.holdings().poolVolumes.every((v) => v.endsWith(`@${cloud.hosts[1]}`))).toBe(true);
}, 60_000);

test('a conductor-side failure during boot aborts: no reschedule', async () => {
  const cloud = new FakeCloud(hostNames(2)).fail('markServerVolumesInUse');
  const run = await runCreate(cloud, { volumes: [{ sizeGb: 1 }] });
  expect(run.error).toBeDefined();
  expect(cloud.claimRequests).toHaveLength(1);
  expect(cloud.holdings()).toEqual(EMPTY);
}, 60_000);

test('pinned: an existing volume pins the host; its boot failure is ERROR without trying another host', async () => {
  const cloud = new FakeCloud(hostNames(2));
  const volumeId = randomUUID();
  cloud.volumes.set(volumeId, { host: cloud.hosts[1]!, status: 'available', serverId: null });
  cloud.fail('bootServer', cloud.hosts[1]);
  const run = await runCreate(cloud, { volumes: [{ volumeId }] });
  expect(run.error).toBeDefined();
  expect(cloud.claimRequests).toEqual([{ excludeHosts: [], requiredHost: cloud.hosts[1] }]);
  expect(cloud.finished?.fault).toMatchObject({ step: 'boot', code: 'InjectedFault' });
  expect(cloud.finished!.fault!.message).toContain(cloud.hosts[1]);
  expect(cloud.holdings()).toEqual(EMPTY);
  expect(cloud.volumes.get(volumeId)).toEqual({ host: cloud.hosts[1], status: 'available', serverId: null });
}, 60_000);

test('pinned: success boots on the volume host, not the first host', async () => {
  const cloud = new FakeCloud(hostNames(2));
  const volumeId = randomUUID();
  cloud.volumes.set(volumeId, { host: cloud.hosts[1]!, status: 'available', serverId: null });
  const run = await runCreate(cloud, { volumes: [{ volumeId }] });
  expect(run.result?.host).toBe(cloud.hosts[1]);
  expect(cloud.volumes.get(volumeId)).toMatchObject({ status: 'in-use' });
}, 60_000);

test('exhausted: every host fails; ERROR at boot naming each host, nothing held', async () => {
  const cloud = new FakeCloud(hostNames(2)).fail('bootServer');
  const run = await runCreate(cloud, { volumes: [{ sizeGb: 1, deleteOnTermination: true }] });
  expect(run.error).toBeDefined();
  expect(cloud.claimRequests).toHaveLength(3); // host 1, host 2, then no host left
  expect(cloud.finished?.fault).toMatchObject({ step: 'boot', code: 'InjectedFault' });
  for (const h of cloud.hosts) expect(cloud.finished!.fault!.message).toContain(`${h}: bootServer failed on ${h}`);
  expect(cloud.holdings()).toEqual(EMPTY);
}, 60_000);

test('exhausted: the attempts bound stops the reschedules before the hosts run out', async () => {
  const cloud = new FakeCloud(hostNames(3)).fail('bootServer');
  const run = await runCreate(cloud, { maxHostAttempts: 2 });
  expect(run.error).toBeDefined();
  expect(cloud.calls.filter((c) => c.startsWith('bootServer@'))).toEqual([`bootServer@${cloud.hosts[0]}`, `bootServer@${cloud.hosts[1]}`]);
  expect(cloud.finished!.fault!.message).toContain(cloud.hosts[0]);
  expect(cloud.finished!.fault!.message).toContain(cloud.hosts[1]);
  expect(cloud.holdings()).toEqual(EMPTY);
}, 60_000);
