/**
 * Quota reservations and group-locked claims at the database edge, on PGlite and PostgreSQL
 * (PostgreSQL's pool runs the concurrent calls really concurrently; the locks keep them exact).
 */
import { ApplicationFailure } from '@temporalio/common';
import { createComputeControlActivities } from '../../activities/compute/control';
import { silentLogger } from '../../core/log';
import { newId } from '../../db/ids';
import * as hosts from '../../db/repositories/hosts';
import * as projects from '../../db/repositories/projects';
import * as quotas from '../../db/repositories/quotas';
import * as serverGroups from '../../db/repositories/server-groups';
import { rejection, unique } from '../support/db-helpers';
import { engines, useDatabase } from '../support/databases';

const DEFAULTS: quotas.QuotaLimits = { servers: 10, vcpus: 20, ram_mb: 4096, volumes: 5, volume_gb: 100, ports: 10 };
const TINY = { id: newId(), name: 'm1.tiny', vcpus: 1, ramMb: 128, diskGb: 1 };

describe.each(engines.map((e) => [e.name, e] as const))('placement and quotas on %s', (_name, engine) => {
  const database = useDatabase(engine);

  test('20 concurrent reservations against a limit of 5: exactly 5; commit, release and repeat are exact', async () => {
    const db = database();
    const p = await projects.create(db, { name: unique('p') });
    await quotas.setLimits(db, p.id, { servers: 5 });
    const owners = Array.from({ length: 20 }, () => newId());
    const results = await Promise.allSettled(
      owners.map((ownerId) => quotas.reserve(db, { projectId: p.id, ownerId, amounts: { servers: 1, vcpus: 1, ram_mb: 128 }, defaults: DEFAULTS })),
    );
    const won = owners.filter((_, i) => results[i]!.status === 'fulfilled');
    const lost = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected').map((r) => r.reason as unknown);
    expect(won).toHaveLength(5);
    expect(lost).toHaveLength(15);
    for (const err of lost) expect(err).toMatchObject({ status: 403, resource: 'servers', fields: [{ field: 'servers' }] });
    expect(await quotas.report(db, p.id, DEFAULTS)).toMatchObject({
      servers: { limit: 5, used: 0, reserved: 5 },
      vcpus: { limit: 20, used: 0, reserved: 5 },
      ram_mb: { limit: 4096, used: 0, reserved: 640 },
    });
    // Reserving again for an owner that holds a reservation changes nothing (a retried activity).
    await quotas.reserve(db, { projectId: p.id, ownerId: won[0]!, amounts: { servers: 1 }, defaults: DEFAULTS });
    await quotas.commit(db, won[0]!);
    await quotas.commit(db, won[0]!);
    await quotas.commit(db, won[1]!);
    await quotas.release(db, won[2]!);
    await quotas.release(db, won[2]!);
    expect((await quotas.report(db, p.id, DEFAULTS)).servers).toEqual({ limit: 5, used: 2, reserved: 2 });
    // A second resource over its limit is named too.
    expect(await rejection(quotas.reserve(db, { projectId: p.id, ownerId: newId(), amounts: { servers: 1, ram_mb: 4096 }, defaults: DEFAULTS }))).toMatchObject({
      resource: 'ram_mb',
      message: 'quota exceeded for ram_mb: requested 4096, limit 4096, used 256, reserved 256',
    });
    // -1 is unlimited.
    await quotas.setLimits(db, p.id, { servers: -1 });
    await quotas.reserve(db, { projectId: p.id, ownerId: newId(), amounts: { servers: 100 }, defaults: DEFAULTS });
    expect(await rejection(quotas.setLimits(db, p.id, { servers: -2 }))).toMatchObject({ status: 400 });
  });

  test('the create flow reserving after losing a race: QuotaExceeded, non-retryable, naming the resource', async () => {
    const db = database();
    const p = await projects.create(db, { name: unique('p') });
    const acts = createComputeControlActivities({ db, log: silentLogger, heartbeatSeconds: 3600, quotaDefaults: { ...DEFAULTS, servers: 1 } });
    const plan = { flavor: TINY, networks: [], volumes: [] };
    await acts.reserveServerQuota({ serverId: newId(), projectId: p.id, ...plan });
    const err = await rejection(acts.reserveServerQuota({ serverId: newId(), projectId: p.id, ...plan }));
    expect(err).toBeInstanceOf(ApplicationFailure);
    expect(err).toMatchObject({ type: 'QuotaExceeded', nonRetryable: true, message: expect.stringContaining('quota exceeded for servers') });
  });

  test('6 concurrent anti-affinity members on 3 hosts: the group row lock lets exactly one per host through', async () => {
    const db = database();
    const p = await projects.create(db, { name: unique('p') });
    const names = [unique('ha'), unique('hb'), unique('hc')];
    // Only this test's hosts are candidates: take every other host out of scheduling.
    await db('hosts').update({ enabled: false });
    for (const name of names) {
      await hosts.upsertHeartbeat(db, { name, libvirtUri: 'test:///default', vcpus: 8, ramMb: 8192, diskGb: 100, capabilities: {}, libvirtVersion: '9.0.0' });
    }
    const group = await serverGroups.create(db, { projectId: p.id, name: 'web', policy: 'anti-affinity' });
    const serverIds = Array.from({ length: 6 }, () => newId());
    for (const id of serverIds) await serverGroups.addMember(db, group.id, id);
    const acts = createComputeControlActivities({ db, log: silentLogger, heartbeatSeconds: 3600 });
    const results = await Promise.allSettled(serverIds.map((serverId) => acts.claimHost({ serverId, flavor: TINY, excludeHosts: [] })));
    const placed = results.filter((r): r is PromiseFulfilledResult<string> => r.status === 'fulfilled').map((r) => r.value);
    const refused = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected').map((r) => r.reason as ApplicationFailure);
    expect(placed.sort()).toEqual([...names].sort());
    expect(refused).toHaveLength(3);
    for (const err of refused) {
      expect(err.type).toBe('NoValidHost');
      for (const name of names) expect(err.message).toContain(`${name}: server_group: anti-affinity`);
    }
    const members = (await serverGroups.members(db, [group.id]))[group.id]!;
    expect(members.filter((m) => m.host !== null).map((m) => m.host).sort()).toEqual([...names].sort());
    await db('hosts').whereIn('name', names).update({ enabled: false });
  });
});
