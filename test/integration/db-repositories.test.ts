/** Every repository on both engines: CRUD, constraint errors, token rules, pagination, concurrency. */
import { Conflict, InvalidInput, NotFound } from '../../core/errors';
import { byCreation, paginate } from '../../db/pagination';
import * as hosts from '../../db/repositories/hosts';
import * as projects from '../../db/repositories/projects';
import * as roles from '../../db/repositories/roles';
import * as tokens from '../../db/repositories/tokens';
import * as users from '../../db/repositories/users';
import type { Queryable } from '../../db/types';
import { allPages, MISSING_ID, rejection, unique } from '../support/db-helpers';
import { engines, useDatabase } from '../support/databases';

describe.each(engines)('repositories on $name', (engine) => {
  const database = useDatabase(engine);

  describe('projects', () => {
    test('create, get by id and name, update, delete', async () => {
      const db = database();
      const name = unique('proj');
      const p = await projects.create(db, { name, description: 'first' });
      expect(p).toEqual({ id: expect.any(String), name, description: 'first', enabled: true, createdAt: expect.any(Date), updatedAt: expect.any(Date) });
      expect(await projects.getById(db, p.id)).toEqual(p);
      expect(await projects.getByName(db, name)).toEqual(p);

      const renamed = unique('proj');
      const updated = await projects.update(db, p.id, { name: renamed, enabled: false });
      expect(updated).toMatchObject({ id: p.id, name: renamed, description: 'first', enabled: false });
      expect(updated.updatedAt.getTime()).toBeGreaterThanOrEqual(p.updatedAt.getTime());
      expect(await projects.getByName(db, name)).toBeNull();

      await projects.delete(db, p.id);
      expect(await projects.getById(db, p.id)).toBeNull();
    });

    test('a caller-chosen id is kept', async () => {
      const id = '6f1c3c8e-2d0a-4a57-9b7e-0a4c3b1e2f10';
      expect((await projects.create(database(), { id, name: unique('proj') })).id).toBe(id);
    });

    test('duplicate names are a Conflict naming the field', async () => {
      const db = database();
      const name = unique('dup');
      await projects.create(db, { name });
      const err = await rejection(projects.create(db, { name }));
      expect(err).toBeInstanceOf(Conflict);
      expect(err).toMatchObject({ message: `a project named '${name}' already exists`, fields: [{ field: 'name', message: 'already exists' }] });

      const other = await projects.create(db, { name: unique('dup') });
      const renameErr = await rejection(projects.update(db, other.id, { name }));
      expect(renameErr).toBeInstanceOf(Conflict);
      expect((renameErr as Conflict).message).toBe(`a project named '${name}' already exists`);
    });

    test('unknown or malformed ids: get → null, update/delete → NotFound', async () => {
      const db = database();
      expect(await projects.getById(db, MISSING_ID)).toBeNull();
      expect(await projects.getById(db, 'not-a-uuid')).toBeNull();
      expect(await rejection(projects.update(db, MISSING_ID, { description: 'x' }))).toBeInstanceOf(NotFound);
      expect(await rejection(projects.update(db, 'not-a-uuid', { description: 'x' }))).toBeInstanceOf(NotFound);
      expect(await rejection(projects.delete(db, MISSING_ID))).toBeInstanceOf(NotFound);
    });

    test('repositories run inside a caller transaction', async () => {
      const db = database();
      const name = unique('trx');
      await expect(
        db.transaction(async (trx) => {
          await projects.create(trx, { name });
          expect(await projects.getByName(trx, name)).not.toBeNull();
          throw new Error('roll back');
        }),
      ).rejects.toThrow('roll back');
      expect(await projects.getByName(db, name)).toBeNull();
    });
  });

  describe('users', () => {
    test('create, get (hash only by name), update, delete', async () => {
      const db = database();
      const project = await projects.create(db, { name: unique('home') });
      const name = unique('user');
      const u = await users.create(db, { name, passwordHash: 'hash-1', defaultProjectId: project.id });
      expect(u).toEqual({ id: expect.any(String), name, enabled: true, defaultProjectId: project.id, createdAt: expect.any(Date), updatedAt: expect.any(Date) });
      expect(await users.getById(db, u.id)).toEqual(u);
      expect(await users.getById(db, u.id)).not.toHaveProperty('passwordHash');
      expect(await users.getByName(db, name)).toEqual({ ...u, passwordHash: 'hash-1' });

      const updated = await users.update(db, u.id, { passwordHash: 'hash-2', enabled: false, defaultProjectId: null });
      expect(updated).toMatchObject({ id: u.id, enabled: false, defaultProjectId: null });
      expect((await users.getByName(db, name))?.passwordHash).toBe('hash-2');

      await users.delete(db, u.id);
      expect(await users.getById(db, u.id)).toBeNull();
      expect(await rejection(users.delete(db, u.id))).toBeInstanceOf(NotFound);
    });

    test('duplicate name → Conflict; unknown default project → NotFound', async () => {
      const db = database();
      const name = unique('user');
      await users.create(db, { name, passwordHash: 'h' });
      const err = await rejection(users.create(db, { name, passwordHash: 'h' }));
      expect(err).toBeInstanceOf(Conflict);
      expect((err as Conflict).message).toBe(`a user named '${name}' already exists`);

      const missing = await rejection(users.create(db, { name: unique('user'), passwordHash: 'h', defaultProjectId: MISSING_ID }));
      expect(missing).toBeInstanceOf(NotFound);
      expect(missing).toMatchObject({ fields: [{ field: 'defaultProjectId' }] });
    });

    test('deleting the default project clears it on the user', async () => {
      const db = database();
      const project = await projects.create(db, { name: unique('home') });
      const u = await users.create(db, { name: unique('user'), passwordHash: 'h', defaultProjectId: project.id });
      await projects.delete(db, project.id);
      expect((await users.getById(db, u.id))?.defaultProjectId).toBeNull();
    });
  });

  describe('role assignments', () => {
    test('assign is idempotent; list, revoke; cascades on delete', async () => {
      const db = database();
      const p = await projects.create(db, { name: unique('p') });
      const q = await projects.create(db, { name: unique('q') });
      const u = await users.create(db, { name: unique('u'), passwordHash: 'h' });

      expect(await roles.listRoles(db)).toEqual(['admin', 'member', 'reader']);
      expect(await roles.assign(db, { userId: u.id, projectId: p.id, role: 'member' })).toBe(true);
      expect(await roles.assign(db, { userId: u.id, projectId: p.id, role: 'member' })).toBe(false);
      expect(await roles.assign(db, { userId: u.id, projectId: p.id, role: 'admin' })).toBe(true);
      expect(await roles.assign(db, { userId: u.id, projectId: q.id, role: 'reader' })).toBe(true);

      expect(await roles.listForUserInProject(db, u.id, p.id)).toEqual(['admin', 'member']);
      expect(await roles.listForUserInProject(db, u.id, q.id)).toEqual(['reader']);
      const byUser = await roles.listAssignments(db, { userId: u.id });
      expect(byUser).toHaveLength(3);
      expect(byUser[0]).toEqual({ userId: u.id, projectId: expect.any(String), role: expect.any(String), createdAt: expect.any(Date) });
      expect((await roles.listAssignments(db, { projectId: q.id })).map((a) => [a.userId, a.role])).toEqual([[u.id, 'reader']]);
      expect(await roles.listAssignments(db, { userId: u.id, projectId: p.id })).toHaveLength(2);

      expect(await roles.revoke(db, { userId: u.id, projectId: p.id, role: 'admin' })).toBe(true);
      expect(await roles.revoke(db, { userId: u.id, projectId: p.id, role: 'admin' })).toBe(false);
      expect(await roles.listForUserInProject(db, u.id, p.id)).toEqual(['member']);

      await projects.delete(db, q.id);
      expect(await roles.listAssignments(db, { projectId: q.id })).toEqual([]);
      await users.delete(db, u.id);
      expect(await roles.listAssignments(db, { userId: u.id })).toEqual([]);
    });

    test('unknown user, project or role → NotFound naming it', async () => {
      const db = database();
      const p = await projects.create(db, { name: unique('p') });
      const u = await users.create(db, { name: unique('u'), passwordHash: 'h' });
      const badRole = await rejection(roles.assign(db, { userId: u.id, projectId: p.id, role: 'emperor' }));
      expect(badRole).toBeInstanceOf(NotFound);
      expect((badRole as NotFound).message).toBe("role 'emperor' not found");
      expect(await rejection(roles.assign(db, { userId: MISSING_ID, projectId: p.id, role: 'member' }))).toMatchObject({
        message: `user '${MISSING_ID}' not found`,
      });
      expect(await rejection(roles.assign(db, { userId: u.id, projectId: MISSING_ID, role: 'member' }))).toMatchObject({
        message: `project '${MISSING_ID}' not found`,
      });
    });
  });

  describe('tokens', () => {
    async function setup(db: Queryable) {
      const project = await projects.create(db, { name: unique('tp') });
      const user = await users.create(db, { name: unique('tu'), passwordHash: 'h' });
      await roles.assign(db, { userId: user.id, projectId: project.id, role: 'member' });
      await roles.assign(db, { userId: user.id, projectId: project.id, role: 'admin' });
      return { project, user };
    }
    const now = new Date('2030-01-01T00:00:00Z');
    const later = new Date('2030-01-01T01:00:00Z');

    test('a valid token resolves to its user, project and roles', async () => {
      const db = database();
      const { project, user } = await setup(db);
      const hash = unique('hash');
      const t = await tokens.insert(db, { tokenHash: hash, userId: user.id, projectId: project.id, expiresAt: later });
      expect(t).toEqual({ id: expect.any(String), userId: user.id, projectId: project.id, expiresAt: later, revokedAt: null, createdAt: expect.any(Date) });
      expect(await tokens.findValidByHash(db, hash, now)).toEqual({ token: t, user, project, roles: ['admin', 'member'] });
      expect(await tokens.findValidByHash(db, 'no-such-hash', now)).toBeNull();
    });

    test('a token without roles still resolves, with roles []', async () => {
      const db = database();
      const project = await projects.create(db, { name: unique('tp') });
      const user = await users.create(db, { name: unique('tu'), passwordHash: 'h' });
      const hash = unique('hash');
      await tokens.insert(db, { tokenHash: hash, userId: user.id, projectId: project.id, expiresAt: later });
      expect((await tokens.findValidByHash(db, hash, now))?.roles).toEqual([]);
    });

    test('expired, revoked, disabled user, disabled project → not valid', async () => {
      const db = database();
      const { project, user } = await setup(db);
      const insert = async (expiresAt = later) => {
        const tokenHash = unique('hash');
        const token = await tokens.insert(db, { tokenHash, userId: user.id, projectId: project.id, expiresAt });
        return { token, tokenHash };
      };

      const expiring = await insert(later);
      expect(await tokens.findValidByHash(db, expiring.tokenHash, new Date(later.getTime() - 1))).not.toBeNull();
      expect(await tokens.findValidByHash(db, expiring.tokenHash, later)).toBeNull();

      const revoked = await insert();
      expect(await tokens.revoke(db, revoked.token.id)).toBe(true);
      expect(await tokens.revoke(db, revoked.token.id)).toBe(false);
      expect(await tokens.findValidByHash(db, revoked.tokenHash, now)).toBeNull();

      const live = await insert();
      await users.update(db, user.id, { enabled: false });
      expect(await tokens.findValidByHash(db, live.tokenHash, now)).toBeNull();
      await users.update(db, user.id, { enabled: true });
      expect(await tokens.findValidByHash(db, live.tokenHash, now)).not.toBeNull();
      await projects.update(db, project.id, { enabled: false });
      expect(await tokens.findValidByHash(db, live.tokenHash, now)).toBeNull();
    });

    test('deleteExpired removes only expired tokens; deleting a user removes its tokens', async () => {
      const db = database();
      const { project, user } = await setup(db);
      const old = await tokens.insert(db, { tokenHash: unique('h'), userId: user.id, projectId: project.id, expiresAt: new Date('2000-01-01T00:00:00Z') });
      const fresh = await tokens.insert(db, { tokenHash: unique('h'), userId: user.id, projectId: project.id, expiresAt: later });
      expect(await tokens.deleteExpired(db, now)).toBeGreaterThanOrEqual(1);
      expect(await db('tokens').where({ id: old.id }).first()).toBeUndefined();
      expect(await db('tokens').where({ id: fresh.id }).first()).toBeDefined();
      await users.delete(db, user.id);
      expect(await db('tokens').where({ id: fresh.id }).first()).toBeUndefined();
    });

    test('duplicate hash → Conflict; unknown user → NotFound', async () => {
      const db = database();
      const { project, user } = await setup(db);
      const tokenHash = unique('h');
      await tokens.insert(db, { tokenHash, userId: user.id, projectId: project.id, expiresAt: later });
      expect(await rejection(tokens.insert(db, { tokenHash, userId: user.id, projectId: project.id, expiresAt: later }))).toBeInstanceOf(Conflict);
      expect(await rejection(tokens.insert(db, { tokenHash: unique('h'), userId: MISSING_ID, projectId: project.id, expiresAt: later }))).toBeInstanceOf(NotFound);
    });
  });

  describe('hosts', () => {
    const heartbeat = (name: string, over: Partial<hosts.Heartbeat> = {}): hosts.Heartbeat => ({
      name,
      libvirtUri: 'qemu:///system',
      vcpus: 8,
      ramMb: 16384,
      diskGb: 200,
      capabilities: { arch: 'x86_64', cpuModels: ['host-passthrough', 'Skylake'], numa: { nodes: 1 } },
      libvirtVersion: '9.0.0',
      ...over,
    });

    test('first heartbeat registers, later ones refresh; markDown and back up', async () => {
      const db = database();
      const name = unique('host');
      const first = await hosts.upsertHeartbeat(db, heartbeat(name));
      expect(first).toEqual({
        ...heartbeat(name),
        status: 'up',
        registeredAt: expect.any(Date),
        lastSeenAt: expect.any(Date),
        // An administrator's settings, at their defaults (PATCH /v1/hosts/{name} changes them).
        enabled: true,
        availabilityZone: 'nova',
        cpuAllocationRatio: null,
        ramAllocationRatio: null,
        diskAllocationRatio: null,
        lastBuildFailureAt: null,
      });
      expect(await hosts.get(db, name)).toEqual(first);

      expect(await hosts.markDown(db, name)).toBe(true);
      expect(await hosts.markDown(db, name)).toBe(false);
      expect((await hosts.get(db, name))?.status).toBe('down');

      const second = await hosts.upsertHeartbeat(db, heartbeat(name, { vcpus: 16, capabilities: { arch: 'aarch64' }, libvirtVersion: null }));
      expect(second).toMatchObject({ status: 'up', vcpus: 16, capabilities: { arch: 'aarch64' }, libvirtVersion: null });
      expect(second.registeredAt).toEqual(first.registeredAt);
      expect(second.lastSeenAt.getTime()).toBeGreaterThanOrEqual(first.lastSeenAt.getTime());
    });

    test('unknown host: get → null, markDown → false; bad capacity → InvalidInput', async () => {
      const db = database();
      expect(await hosts.get(db, 'no-such-host')).toBeNull();
      expect(await hosts.markDown(db, 'no-such-host')).toBe(false);
      expect(await rejection(hosts.upsertHeartbeat(db, heartbeat(unique('host'), { vcpus: -1 })))).toBeInstanceOf(InvalidInput);
    });

    test('markStaleDown marks hosts silent since the cutoff', async () => {
      const db = database();
      const stale = unique('stale');
      const fresh = unique('fresh');
      await hosts.upsertHeartbeat(db, heartbeat(stale));
      await hosts.upsertHeartbeat(db, heartbeat(fresh));
      await db('hosts').where({ name: stale }).update({ last_seen_at: new Date('2000-01-01T00:00:00Z') });
      const marked = await hosts.markStaleDown(db, new Date(Date.now() - 60_000));
      expect(marked).toContain(stale);
      expect(marked).not.toContain(fresh);
      expect((await hosts.get(db, fresh))?.status).toBe('up');
    });

    test('list pages by name, with a status filter', async () => {
      const db = database();
      const prefix = unique('page');
      for (let i = 0; i < 5; i++) await hosts.upsertHeartbeat(db, heartbeat(`${prefix}-${i}`));
      await hosts.markDown(db, `${prefix}-2`);
      const up = (await allPages((marker) => hosts.list(db, { limit: 2, marker, status: 'up' }))).flat();
      expect(up.every((h) => h.status === 'up')).toBe(true);
      const mine = up.map((h) => h.name).filter((n) => n.startsWith(prefix));
      expect(mine).toEqual([`${prefix}-0`, `${prefix}-1`, `${prefix}-3`, `${prefix}-4`]);
    });
  });

  describe('pagination', () => {
    test('pages by name cover every row once, in database order, and end with next = null', async () => {
      const db = database();
      for (let i = 0; i < 7; i++) await projects.create(db, { name: unique('pg') });
      const pages = await allPages((marker) => projects.list(db, { limit: 3, marker }));
      expect(pages.slice(0, -1).every((p) => p.length === 3)).toBe(true);
      const names = pages.flat().map((p) => p.name);
      const expected = (await db('projects').orderBy('name').pluck('name')) as string[];
      expect(names).toEqual(expected);
      expect(new Set(names).size).toBe(names.length);

      const exact = await projects.list(db, { limit: expected.length });
      expect(exact.next).toBeNull();
      expect(exact.items).toHaveLength(expected.length);
    });

    test('keyset on (created_at, id) holds when many rows share one timestamp', async () => {
      const db = database();
      const users_ = await db.transaction(async (trx) => {
        const made = [];
        // One transaction: now() is the same for every row, so only the id breaks ties.
        for (let i = 0; i < 5; i++) made.push(await users.create(trx, { name: unique('same-ts'), passwordHash: 'h' }));
        return made;
      });
      expect(new Set(users_.map((u) => u.createdAt.getTime())).size).toBe(1);
      const list = (marker: string | undefined) =>
        paginate(db, db('users').select(['id', 'created_at']), byCreation('users'), { limit: 2, marker }, (r: { id: string }) => r.id);
      const ids = (await allPages(list)).flat();
      const expected = (await db('users').orderBy([{ column: 'created_at' }, { column: 'id' }]).pluck('id')) as string[];
      expect(ids).toEqual(expected);
      expect(ids).toEqual(expect.arrayContaining(users_.map((u) => u.id)));
    });

    test('bad marker or limit → InvalidInput', async () => {
      const db = database();
      expect(await rejection(projects.list(db, { limit: 2, marker: 'garbage' }))).toBeInstanceOf(InvalidInput);
      expect(await rejection(projects.list(db, { limit: 0 }))).toBeInstanceOf(InvalidInput);
      expect(await rejection(projects.list(db, { limit: 1.5 }))).toBeInstanceOf(InvalidInput);
    });
  });

  describe('concurrency', () => {
    test('20 concurrent heartbeats for one host: all succeed, one row', async () => {
      const db = database();
      const name = unique('race');
      const results = await Promise.allSettled(
        Array.from({ length: 20 }, (_, i) => hosts.upsertHeartbeat(db, heartbeat(name, { vcpus: i + 1 }))),
      );
      expect(results.filter((r) => r.status === 'rejected')).toEqual([]);
      expect(await db('hosts').where({ name }).count<Array<{ count: number }>>('* as count')).toEqual([{ count: 1 }]);
      expect((await hosts.get(db, name))?.status).toBe('up');
    });

    test('20 concurrent creates of one project name: exactly one created, 19 Conflicts', async () => {
      const db = database();
      const name = unique('race');
      const results = await Promise.allSettled(Array.from({ length: 20 }, () => projects.create(db, { name })));
      const created = results.filter((r) => r.status === 'fulfilled');
      const failed = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
      expect(created).toHaveLength(1);
      expect(failed).toHaveLength(19);
      for (const f of failed) expect(f.reason).toBeInstanceOf(Conflict);
      expect(await db('projects').where({ name }).count<Array<{ count: number }>>('* as count')).toEqual([{ count: 1 }]);
    });
  });
});

function heartbeat(name: string, over: Partial<hosts.Heartbeat> = {}): hosts.Heartbeat {
  return { name, libvirtUri: 'test:///default', vcpus: 4, ramMb: 8192, diskGb: 100, capabilities: {}, libvirtVersion: '9.0.0', ...over };
}
