/**
 * Compute, network and storage repositories (migration 0003) on both engines: CRUD, validation,
 * constraint errors, and the concurrency guarantees the database itself gives — IP allocation,
 * host claims and volume state transitions under racing callers.
 */
import { Conflict, InvalidInput, NotFound } from '../../core/errors';
import { newId } from '../../db/ids';
import { SEEDED_FLAVORS } from '../../db/migrations/0003_compute_network_storage';
import * as claims from '../../db/repositories/claims';
import * as flavors from '../../db/repositories/flavors';
import * as hosts from '../../db/repositories/hosts';
import * as meters from '../../db/repositories/meters';
import * as networks from '../../db/repositories/networks';
import * as operations from '../../db/repositories/operations';
import * as ports from '../../db/repositories/ports';
import * as projects from '../../db/repositories/projects';
import * as serverGroups from '../../db/repositories/server-groups';
import * as servers from '../../db/repositories/servers';
import * as subnets from '../../db/repositories/subnets';
import * as users from '../../db/repositories/users';
import * as volumes from '../../db/repositories/volumes';
import { parseIpv4 } from '../../db/ipv4';
import type { Queryable } from '../../db/types';
import { allItems, MISSING_ID, rejection, unique } from '../support/db-helpers';
import { engines, useDatabase } from '../support/databases';

const TINY = SEEDED_FLAVORS[0].id;

function settle<T>(results: PromiseSettledResult<T>[]) {
  return {
    ok: results.filter((r): r is PromiseFulfilledResult<T> => r.status === 'fulfilled').map((r) => r.value),
    errors: results.filter((r): r is PromiseRejectedResult => r.status === 'rejected').map((r) => r.reason as unknown),
  };
}

const ipNumber = (text: string) => parseIpv4(text) ?? Number.NaN;

/** Measured times, printed once per engine. */
const timings: string[] = [];
afterAll(() => {
  if (timings.length > 0) process.stdout.write(`db-compute timings: ${timings.join('; ')}\n`);
});

describe.each(engines)('compute, network and storage repositories on $name', (engine) => {
  const database = useDatabase(engine);

  async function project(db: Queryable) {
    return projects.create(db, { name: unique('proj') });
  }
  async function networkWithSubnet(db: Queryable, subnet: Partial<subnets.NewSubnet> = {}) {
    const p = await project(db);
    const network = await networks.create(db, { projectId: p.id, name: unique('net') });
    const s = await subnets.create(db, { networkId: network.id, projectId: p.id, cidr: '10.0.0.0/24', ...subnet });
    return { project: p, network, subnet: s };
  }
  async function server(db: Queryable, over: Partial<servers.NewServer> = {}) {
    const p = over.projectId ? { id: over.projectId } : await project(db);
    return servers.create(db, { id: newId(), projectId: p.id, userId: null, name: unique('vm'), flavorId: TINY, imageId: null, ...over });
  }
  async function host(db: Queryable, over: Partial<hosts.Heartbeat> = {}) {
    return hosts.upsertHeartbeat(db, {
      name: unique('host'),
      libvirtUri: 'test:///default',
      vcpus: 8,
      ramMb: 3072,
      diskGb: 100,
      capabilities: {},
      libvirtVersion: '9.0.0',
      ...over,
    });
  }
  /** An image row written directly (images are another repository's business; only the foreign keys matter here). */
  async function image(db: Queryable, projectId: string): Promise<string> {
    const id = newId();
    await db('images').insert({ id, project_id: projectId, name: unique('img'), disk_format: 'qcow2' });
    return id;
  }

  describe('flavors', () => {
    test('the migration seeds m1.tiny, m1.small and m1.medium', async () => {
      const db = database();
      expect(await flavors.getByName(db, 'm1.tiny')).toEqual({
        id: TINY, name: 'm1.tiny', vcpus: 1, ramMb: 128, diskGb: 1, isPublic: true, createdAt: expect.any(Date),
      });
      expect(await flavors.getByName(db, 'm1.small')).toMatchObject({ vcpus: 1, ramMb: 2048, diskGb: 20 });
      expect(await flavors.getByName(db, 'm1.medium')).toMatchObject({ vcpus: 2, ramMb: 4096, diskGb: 40 });
      for (const seed of SEEDED_FLAVORS) expect((await flavors.get(db, seed.id))?.name).toBe(seed.name);
    });

    test('create, get, list by name, duplicate → Conflict, bad sizes → InvalidInput naming the field', async () => {
      const db = database();
      const name = unique('x1');
      const f = await flavors.create(db, { name, vcpus: 4, ramMb: 8192, diskGb: 0, isPublic: false });
      expect(f).toEqual({ id: expect.any(String), name, vcpus: 4, ramMb: 8192, diskGb: 0, isPublic: false, createdAt: expect.any(Date) });
      expect(await flavors.get(db, f.id)).toEqual(f);
      expect(await flavors.get(db, MISSING_ID)).toBeNull();
      expect(await flavors.get(db, 'nope')).toBeNull();

      const dup = await rejection(flavors.create(db, { name, vcpus: 1, ramMb: 1, diskGb: 1 }));
      expect(dup).toBeInstanceOf(Conflict);
      expect(dup).toMatchObject({ message: `a flavor named '${name}' already exists`, fields: [{ field: 'name' }] });
      const bads: Array<[Partial<flavors.NewFlavor>, string]> = [[{ vcpus: 0 }, 'vcpus'], [{ ramMb: -1 }, 'ram_mb'], [{ diskGb: -1 }, 'disk_gb'], [{ vcpus: 1.5 }, 'vcpus']];
      for (const [bad, field] of bads) {
        const err = await rejection(flavors.create(db, { name: unique('bad'), vcpus: 1, ramMb: 1, diskGb: 1, ...bad }));
        expect(err).toBeInstanceOf(InvalidInput);
        expect(err).toMatchObject({ fields: [{ field }] });
      }

      const names = (await allItems((marker) => flavors.list(db, { limit: 2, marker }))).map((x) => x.name);
      expect(names).toEqual([...names].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0)));
      expect(names).toEqual(expect.arrayContaining(['m1.tiny', 'm1.small', 'm1.medium', name]));
      expect((await flavors.list(db, { limit: 100, isPublic: false })).items.map((x) => x.id)).toContain(f.id);
    });

    test('remove: Conflict while a live server uses it; allowed once only DELETED servers do, which keep its id', async () => {
      const db = database();
      const f = await flavors.create(db, { name: unique('f'), vcpus: 1, ramMb: 64, diskGb: 1 });
      const s = await server(db, { flavorId: f.id });
      const err = await rejection(flavors.remove(db, f.id));
      expect(err).toBeInstanceOf(Conflict);
      expect((err as Conflict).message).toBe(`flavor '${f.name}' is used by 1 server(s)`);
      await servers.markDeleted(db, s.id);
      await flavors.remove(db, f.id);
      expect(await flavors.get(db, f.id)).toBeNull();
      expect((await servers.get(db, s.id))?.flavorId).toBe(f.id);
      expect(await rejection(flavors.remove(db, f.id))).toBeInstanceOf(NotFound);
      expect(await rejection(server(db, { flavorId: f.id }))).toMatchObject({ constructor: NotFound, fields: [{ field: 'flavor_id' }] });
    });

    test('remove racing a server create on the flavor: never both succeed', async () => {
      const db = database();
      const p = await project(db);
      for (let round = 0; round < 5; round++) {
        const f = await flavors.create(db, { name: unique('race'), vcpus: 1, ramMb: 64, diskGb: 1 });
        const [removed, created] = await Promise.allSettled([flavors.remove(db, f.id), server(db, { projectId: p.id, flavorId: f.id })]);
        expect([removed.status, created.status]).not.toEqual(['fulfilled', 'fulfilled']);
        expect([removed.status, created.status]).toContain('fulfilled');
        if (created.status === 'fulfilled') expect(await flavors.get(db, f.id)).not.toBeNull();
      }
    });
  });

  describe('networks', () => {
    test('create, get, list by project, remove (cascading subnets)', async () => {
      const db = database();
      const p = await project(db);
      const other = await project(db);
      const n1 = await networks.create(db, { projectId: p.id, name: 'private' });
      expect(n1).toEqual({ id: expect.any(String), projectId: p.id, name: 'private', createdAt: expect.any(Date) });
      const n2 = await networks.create(db, { projectId: p.id, name: 'second' });
      await networks.create(db, { projectId: other.id, name: 'private' });
      expect(await networks.get(db, n1.id)).toEqual(n1);

      const mine = await allItems((marker) => networks.list(db, { limit: 1, marker, projectId: p.id }));
      expect(mine.map((n) => n.id)).toEqual([n1.id, n2.id]);
      expect((await networks.list(db, { limit: 10, projectId: 'junk' })).items).toEqual([]);

      const s = await subnets.create(db, { networkId: n1.id, projectId: p.id, cidr: '172.16.0.0/24' });
      await networks.remove(db, n1.id);
      expect(await networks.get(db, n1.id)).toBeNull();
      expect(await subnets.get(db, s.id)).toBeNull();
      expect(await rejection(networks.remove(db, n1.id))).toBeInstanceOf(NotFound);
    });

    test('duplicate name in a project → Conflict; unknown project → NotFound', async () => {
      const db = database();
      const p = await project(db);
      await networks.create(db, { projectId: p.id, name: 'dup' });
      expect(await rejection(networks.create(db, { projectId: p.id, name: 'dup' }))).toMatchObject({ constructor: Conflict, fields: [{ field: 'name' }] });
      expect(await rejection(networks.create(db, { projectId: MISSING_ID, name: 'x' }))).toMatchObject({ constructor: NotFound, fields: [{ field: 'project_id' }] });
    });

    test('a network with ports cannot be removed', async () => {
      const db = database();
      const { project: p, network } = await networkWithSubnet(db);
      const port = await ports.create(db, { projectId: p.id, networkId: network.id });
      const err = await rejection(networks.remove(db, network.id));
      expect(err).toBeInstanceOf(Conflict);
      expect((err as Conflict).message).toBe(`network '${network.id}' has ports: delete them first`);
      await ports.remove(db, port.id);
      await networks.remove(db, network.id);
    });
  });

  describe('subnets', () => {
    test('defaults: gateway is the first usable address, one pool of the rest', async () => {
      const db = database();
      const { project: p, network, subnet } = await networkWithSubnet(db, { dnsNameservers: ['1.1.1.1'] });
      expect(subnet).toEqual({
        id: expect.any(String),
        name: '',
        networkId: network.id,
        projectId: p.id,
        cidr: '10.0.0.0/24',
        gatewayIp: '10.0.0.1',
        allocationPools: [{ start: '10.0.0.2', end: '10.0.0.254' }],
        dnsNameservers: ['1.1.1.1'],
        createdAt: expect.any(Date),
      });
      expect(await subnets.get(db, subnet.id)).toEqual(subnet);
    });

    test('explicit gateway and pools; no gateway', async () => {
      const db = database();
      const { project: p, network, subnet } = await networkWithSubnet(db, {
        cidr: '192.168.10.0/24',
        gatewayIp: '192.168.10.254',
        allocationPools: [
          { start: '192.168.10.100', end: '192.168.10.199' },
          { start: '192.168.10.10', end: '192.168.10.19' },
        ],
      });
      expect(subnet).toMatchObject({
        gatewayIp: '192.168.10.254',
        allocationPools: [
          { start: '192.168.10.10', end: '192.168.10.19' },
          { start: '192.168.10.100', end: '192.168.10.199' },
        ],
      });
      const bare = await subnets.create(db, { networkId: network.id, projectId: p.id, cidr: '192.168.11.0/29', gatewayIp: null });
      expect(bare).toMatchObject({ gatewayIp: null, allocationPools: [{ start: '192.168.11.1', end: '192.168.11.6' }] });
    });

    test('validation errors name cidr, gateway_ip, allocation_pools', async () => {
      const db = database();
      const { project: p, network } = await networkWithSubnet(db);
      const attempt = (over: Partial<subnets.NewSubnet>) => rejection(subnets.create(db, { networkId: network.id, projectId: p.id, cidr: '10.1.0.0/24', ...over }));
      const cases: Array<[Partial<subnets.NewSubnet>, string]> = [
        [{ cidr: '10.1.0.1/24' }, 'cidr'],
        [{ cidr: 'ten/24' }, 'cidr'],
        [{ cidr: '10.1.0.0/32' }, 'cidr'],
        [{ gatewayIp: '10.2.0.1' }, 'gateway_ip'],
        [{ gatewayIp: '10.1.0.255' }, 'gateway_ip'],
        [{ allocationPools: [{ start: '10.1.0.5', end: '10.1.1.5' }] }, 'allocation_pools'],
        [{ allocationPools: [{ start: '10.1.0.1', end: '10.1.0.9' }] }, 'allocation_pools'],
        [{ allocationPools: [{ start: '10.1.0.10', end: '10.1.0.20' }, { start: '10.1.0.15', end: '10.1.0.30' }] }, 'allocation_pools'],
        [{ dnsNameservers: ['dns.example'] }, 'dns_nameservers'],
      ];
      for (const [over, field] of cases) {
        const err = await attempt(over);
        expect(err).toBeInstanceOf(InvalidInput);
        expect((err as InvalidInput).fields.map((f) => f.field)).toEqual([field]);
      }
      expect(await attempt({ cidr: '10.1.0.1/24' })).toMatchObject({ message: "'10.1.0.1/24' has host bits set: the network is 10.1.0.0/24" });
    });

    test('overlapping subnets on one network → InvalidInput on cidr; other networks may reuse the range', async () => {
      const db = database();
      const { project: p, network } = await networkWithSubnet(db, { cidr: '10.20.0.0/16' });
      const err = await rejection(subnets.create(db, { networkId: network.id, projectId: p.id, cidr: '10.20.5.0/24' }));
      expect(err).toMatchObject({ constructor: InvalidInput, fields: [{ field: 'cidr' }] });
      await networkWithSubnet(db, { cidr: '10.20.5.0/24' });

      const racing = await networks.create(db, { projectId: p.id, name: unique('race') });
      const results = settle(
        await Promise.allSettled(['10.30.0.0/24', '10.30.0.0/25', '10.30.0.128/25', '10.30.0.0/16'].map((cidr) => subnets.create(db, { networkId: racing.id, projectId: p.id, cidr }))),
      );
      const kept = (await subnets.listByNetwork(db, racing.id)).map((s) => s.cidr);
      expect(results.ok.length).toBe(kept.length);
      for (const e of results.errors) expect(e).toBeInstanceOf(InvalidInput);
      // Whatever won, what is stored never overlaps.
      expect(kept.length === 1 || (kept.length === 2 && kept.every((c) => c.endsWith('/25')))).toBe(true);
    });

    test('unknown network → NotFound; list filters; remove refused while ports hold addresses', async () => {
      const db = database();
      const p = await project(db);
      expect(await rejection(subnets.create(db, { networkId: MISSING_ID, projectId: p.id, cidr: '10.0.0.0/24' }))).toMatchObject({
        constructor: NotFound,
        fields: [{ field: 'network_id' }],
      });
      const { network, subnet } = await networkWithSubnet(db, { projectId: p.id });
      const second = await subnets.create(db, { networkId: network.id, projectId: p.id, cidr: '10.0.1.0/24' });
      expect((await allItems((marker) => subnets.list(db, { limit: 1, marker, networkId: network.id }))).map((s) => s.id)).toEqual([subnet.id, second.id]);
      expect((await subnets.list(db, { limit: 100, projectId: p.id })).items.map((s) => s.id)).toEqual([subnet.id, second.id]);

      const port = await ports.create(db, { projectId: p.id, networkId: network.id });
      expect(port.subnetId).toBe(subnet.id);
      expect(await rejection(subnets.remove(db, subnet.id))).toBeInstanceOf(Conflict);
      await subnets.remove(db, second.id);
      await ports.remove(db, port.id);
      await subnets.remove(db, subnet.id);
      expect(await rejection(subnets.remove(db, subnet.id))).toBeInstanceOf(NotFound);
    });
  });

  describe('ports', () => {
    test('allocates the lowest free pool address with an OpenStack MAC; freed addresses are reused', async () => {
      const db = database();
      const { project: p, network, subnet } = await networkWithSubnet(db);
      const a = await ports.create(db, { projectId: p.id, networkId: network.id });
      expect(a).toEqual({
        id: expect.any(String),
        name: '',
        projectId: p.id,
        networkId: network.id,
        subnetId: subnet.id,
        mac: expect.stringMatching(/^fa:16:3e(:[0-9a-f]{2}){3}$/),
        fixedIp: '10.0.0.2',
        deviceId: null,
        deviceOwner: null,
        createdByServer: false,
        status: 'DOWN',
        createdAt: expect.any(Date),
      });
      const b = await ports.create(db, { projectId: p.id, networkId: network.id });
      const c = await ports.create(db, { projectId: p.id, networkId: network.id });
      expect([b.fixedIp, c.fixedIp]).toEqual(['10.0.0.3', '10.0.0.4']);
      await ports.remove(db, b.id);
      expect((await ports.create(db, { projectId: p.id, networkId: network.id })).fixedIp).toBe('10.0.0.3');
      expect(await ports.get(db, a.id)).toEqual(a);
      expect(await rejection(ports.remove(db, b.id))).toBeInstanceOf(NotFound);
    });

    test('a requested fixed IP: taken → Conflict, outside or reserved → InvalidInput (field fixed_ip); may lie outside the pools', async () => {
      const db = database();
      const { project: p, network } = await networkWithSubnet(db, { allocationPools: [{ start: '10.0.0.100', end: '10.0.0.110' }] });
      const fixed = await ports.create(db, { projectId: p.id, networkId: network.id, fixedIp: '10.0.0.50' });
      expect(fixed.fixedIp).toBe('10.0.0.50');
      const taken = await rejection(ports.create(db, { projectId: p.id, networkId: network.id, fixedIp: '10.0.0.50' }));
      expect(taken).toMatchObject({ constructor: Conflict, message: 'IP address 10.0.0.50 is already in use', fields: [{ field: 'fixed_ip' }] });
      for (const [ip, words] of [
        ['10.0.1.5', 'not inside any subnet'],
        ['10.0.0.1', 'gateway'],
        ['10.0.0.0', 'network or broadcast'],
        ['10.0.0.255', 'network or broadcast'],
        ['10.0.0.500', 'not an IPv4 address'],
      ]) {
        const err = await rejection(ports.create(db, { projectId: p.id, networkId: network.id, fixedIp: ip }));
        expect(err).toMatchObject({ constructor: InvalidInput, fields: [{ field: 'fixed_ip' }] });
        expect((err as InvalidInput).message).toContain(words);
      }
      expect((await ports.create(db, { projectId: p.id, networkId: network.id })).fixedIp).toBe('10.0.0.100');
    });

    test('a second subnet serves once the first is full; unknown network → NotFound; no subnet → Conflict', async () => {
      const db = database();
      const { project: p, network } = await networkWithSubnet(db, { cidr: '10.5.0.0/30' });
      await subnets.create(db, { networkId: network.id, projectId: p.id, cidr: '10.6.0.0/24' });
      const first = await ports.create(db, { projectId: p.id, networkId: network.id });
      const second = await ports.create(db, { projectId: p.id, networkId: network.id });
      expect([first.fixedIp, second.fixedIp]).toEqual(['10.5.0.2', '10.6.0.2']);

      expect(await rejection(ports.create(db, { projectId: p.id, networkId: MISSING_ID }))).toMatchObject({ constructor: NotFound, fields: [{ field: 'network_id' }] });
      const bare = await networks.create(db, { projectId: p.id, name: unique('bare') });
      expect(await rejection(ports.create(db, { projectId: p.id, networkId: bare.id }))).toBeInstanceOf(Conflict);
    });

    test('bind: idempotent for the same server, Conflict for another; unbind, listByDevice, list filters, setStatus', async () => {
      const db = database();
      const { project: p, network } = await networkWithSubnet(db);
      const vm = newId();
      const otherVm = newId();
      const a = await ports.create(db, { projectId: p.id, networkId: network.id });
      const b = await ports.create(db, { projectId: p.id, networkId: network.id, deviceId: vm, deviceOwner: 'compute', createdByServer: true });
      expect(b).toMatchObject({ deviceId: vm, deviceOwner: 'compute', createdByServer: true });

      const bound = await ports.bind(db, a.id, vm);
      expect(bound).toMatchObject({ deviceId: vm, deviceOwner: 'compute' });
      expect(await ports.bind(db, a.id, vm)).toEqual(bound);
      const err = await rejection(ports.bind(db, a.id, otherVm));
      expect(err).toMatchObject({ constructor: Conflict, message: `port '${a.id}' is in use by device '${vm}'` });
      expect(await rejection(ports.bind(db, MISSING_ID, vm))).toBeInstanceOf(NotFound);

      expect((await ports.listByDevice(db, vm)).map((x) => x.id)).toEqual([a.id, b.id]);
      expect((await ports.list(db, { limit: 10, deviceId: vm })).items.map((x) => x.id)).toEqual([a.id, b.id]);
      expect((await ports.list(db, { limit: 10, networkId: network.id, projectId: p.id })).items).toHaveLength(2);
      expect((await ports.list(db, { limit: 10, networkId: 'junk' })).items).toEqual([]);

      expect((await ports.setStatus(db, a.id, 'ACTIVE')).status).toBe('ACTIVE');
      expect(await ports.unbind(db, a.id, otherVm)).toBe(false);
      expect(await ports.unbind(db, a.id, vm)).toBe(true);
      expect(await ports.unbind(db, a.id)).toBe(false);
      expect(await ports.unbind(db, MISSING_ID)).toBe(false);
      expect(await ports.get(db, a.id)).toMatchObject({ deviceId: null, deviceOwner: null, status: 'DOWN' });
      expect((await ports.bind(db, a.id, otherVm)).deviceId).toBe(otherVm);
    });

    test('50 concurrent creates on one /24: 50 distinct addresses, all in the pool, none the gateway', async () => {
      const db = database();
      const { project: p, network, subnet } = await networkWithSubnet(db, { cidr: '10.50.0.0/24' });
      const started = Date.now();
      const results = settle(await Promise.allSettled(Array.from({ length: 50 }, () => ports.create(db, { projectId: p.id, networkId: network.id }))));
      timings.push(`${engine.name}: 50 concurrent ports.create ${Date.now() - started} ms`);
      expect(results.errors).toEqual([]);
      const ips = results.ok.map((x) => x.fixedIp);
      expect(new Set(ips).size).toBe(50);
      expect(new Set(results.ok.map((x) => x.mac)).size).toBe(50);
      const pool = subnet.allocationPools[0]!;
      for (const ip of ips) {
        expect(ipNumber(ip)).toBeGreaterThanOrEqual(ipNumber(pool.start));
        expect(ipNumber(ip)).toBeLessThanOrEqual(ipNumber(pool.end));
        expect(ip).not.toBe(subnet.gatewayIp);
      }
      // Lowest-first under the lock: exactly the first 50 addresses of the pool.
      expect(ips.map(ipNumber).sort((x, y) => x - y)).toEqual(Array.from({ length: 50 }, (_, i) => ipNumber('10.50.0.2') + i));
    });

    test('a /29 with 3 pool addresses and 10 concurrent creates: exactly 3 succeed, 7 Conflict', async () => {
      const db = database();
      const { project: p, network } = await networkWithSubnet(db, { cidr: '10.29.0.0/29', allocationPools: [{ start: '10.29.0.2', end: '10.29.0.4' }] });
      const started = Date.now();
      const results = settle(await Promise.allSettled(Array.from({ length: 10 }, () => ports.create(db, { projectId: p.id, networkId: network.id }))));
      timings.push(`${engine.name}: 10 concurrent creates on a 3-address pool ${Date.now() - started} ms`);
      expect(results.ok.map((x) => x.fixedIp).sort()).toEqual(['10.29.0.2', '10.29.0.3', '10.29.0.4']);
      expect(results.errors).toHaveLength(7);
      for (const err of results.errors) {
        expect(err).toBeInstanceOf(Conflict);
        expect((err as Conflict).message).toBe(`no free IP address on network '${network.id}'`);
      }
    });

    test('concurrent requests for one fixed IP: one wins, the rest Conflict', async () => {
      const db = database();
      const { project: p, network } = await networkWithSubnet(db);
      const results = settle(await Promise.allSettled(Array.from({ length: 8 }, () => ports.create(db, { projectId: p.id, networkId: network.id, fixedIp: '10.0.0.77' }))));
      expect(results.ok).toHaveLength(1);
      expect(results.errors).toHaveLength(7);
      for (const err of results.errors) expect(err).toBeInstanceOf(Conflict);
    });

    test('allocation inside a caller transaction rolls back with it', async () => {
      const db = database();
      const { project: p, network } = await networkWithSubnet(db);
      await expect(
        db.transaction(async (trx) => {
          expect((await ports.create(trx, { projectId: p.id, networkId: network.id })).fixedIp).toBe('10.0.0.2');
          expect((await ports.create(trx, { projectId: p.id, networkId: network.id })).fixedIp).toBe('10.0.0.3');
          throw new Error('roll back');
        }),
      ).rejects.toThrow('roll back');
      expect((await ports.create(db, { projectId: p.id, networkId: network.id })).fixedIp).toBe('10.0.0.2');
    });
  });

  describe('servers', () => {
    test('create as BUILD/scheduling; get; update; fault set and cleared', async () => {
      const db = database();
      const p = await project(db);
      const u = await users.create(db, { name: unique('u'), passwordHash: 'h' });
      const img = await image(db, p.id);
      const id = newId();
      const s = await servers.create(db, { id, projectId: p.id, userId: u.id, name: 'web-1', flavorId: TINY, imageId: img, metadata: { role: 'web' } });
      expect(s).toEqual({
        id,
        projectId: p.id,
        userId: u.id,
        name: 'web-1',
        flavorId: TINY,
        imageId: img,
        status: 'BUILD',
        taskState: 'scheduling',
        powerState: null,
        host: null,
        metadata: { role: 'web' },
        fault: null,
        availabilityZone: null,
          batchId: null,
          batchIndex: null,
        placement: null,
        createdAt: expect.any(Date),
        updatedAt: expect.any(Date),
        deletedAt: null,
      });
      expect(await servers.get(db, id)).toEqual(s);

      const scheduled = await servers.update(db, id, { taskState: 'spawning', host: 'h1' });
      expect(scheduled).toMatchObject({ status: 'BUILD', taskState: 'spawning', host: 'h1', metadata: { role: 'web' } });
      const failed = await servers.update(db, id, { status: 'ERROR', taskState: null, fault: { step: 'boot', code: 'BootFailed', message: 'no' } });
      expect(failed).toMatchObject({ status: 'ERROR', taskState: null, host: 'h1', fault: { step: 'boot', code: 'BootFailed', message: 'no' } });
      expect(failed.updatedAt.getTime()).toBeGreaterThanOrEqual(s.updatedAt.getTime());
      expect((await servers.update(db, id, { fault: null, status: 'ACTIVE', powerState: 'running' })).fault).toBeNull();

      const wrong = await rejection(servers.update(db, id, { status: 'SHUTOFF' }, { from: ['BUILD'] }));
      expect(wrong).toMatchObject({ constructor: Conflict, message: `server '${id}' is ACTIVE, not BUILD` });
      expect(await rejection(servers.update(db, MISSING_ID, { status: 'ACTIVE' }))).toBeInstanceOf(NotFound);
    });

    test('markDeleted is idempotent; a DELETED server stays readable but is not listed or updated', async () => {
      const db = database();
      const p = await project(db);
      const a = await server(db, { projectId: p.id });
      const b = await server(db, { projectId: p.id });
      const deleted = await servers.markDeleted(db, a.id);
      expect(deleted).toMatchObject({ status: 'DELETED', taskState: null, deletedAt: expect.any(Date) });
      expect(await servers.markDeleted(db, a.id)).toEqual(deleted);
      expect(await servers.get(db, a.id)).toEqual(deleted);
      expect(await rejection(servers.update(db, a.id, { status: 'ACTIVE' }))).toBeInstanceOf(Conflict);
      expect(await rejection(servers.markDeleted(db, MISSING_ID))).toBeInstanceOf(NotFound);

      expect((await servers.list(db, { limit: 10, projectId: p.id })).items.map((s) => s.id)).toEqual([b.id]);
      expect((await allItems((marker) => servers.list(db, { limit: 1, marker, projectId: p.id, includeDeleted: true }))).map((s) => s.id)).toEqual([a.id, b.id]);
    });

    test('missing references → NotFound naming the field; duplicate id → Conflict; user and image deletion set null; remove', async () => {
      const db = database();
      const p = await project(db);
      const refs: Array<[Partial<servers.NewServer>, string]> = [
        [{ projectId: MISSING_ID }, 'project_id'],
        [{ userId: MISSING_ID }, 'user_id'],
        [{ flavorId: MISSING_ID }, 'flavor_id'],
        [{ imageId: MISSING_ID }, 'image_id'],
      ];
      for (const [over, field] of refs) {
        expect(await rejection(servers.create(db, { id: newId(), projectId: p.id, userId: null, name: 'x', flavorId: TINY, imageId: null, ...over }))).toMatchObject({
          constructor: NotFound,
          fields: [{ field }],
        });
      }
      const u = await users.create(db, { name: unique('u'), passwordHash: 'h' });
      const img = await image(db, p.id);
      const s = await server(db, { projectId: p.id, userId: u.id, imageId: img });
      expect(await rejection(server(db, { id: s.id, projectId: p.id }))).toMatchObject({ constructor: Conflict, fields: [{ field: 'id' }] });
      await users.remove(db, u.id);
      await db('images').where({ id: img }).delete();
      expect(await servers.get(db, s.id)).toMatchObject({ userId: null, imageId: null });

      await servers.remove(db, s.id);
      expect(await servers.get(db, s.id)).toBeNull();
      expect(await rejection(servers.remove(db, s.id))).toBeInstanceOf(NotFound);
      expect(await servers.get(db, 'junk')).toBeNull();
    });
    test('with relations: flavor, ports in order, attached volumes, latest operation and group in one read; list, get and withRelations agree', async () => {
      const db = database();
      const { project: p, network, subnet } = await networkWithSubnet(db);
      const a = await server(db, { projectId: p.id });
      const b = await server(db, { projectId: p.id, flavorId: (await flavors.create(db, { name: unique('gone'), vcpus: 1, ramMb: 64, diskGb: 1 })).id });
      const first = await ports.create(db, { projectId: p.id, networkId: network.id, deviceId: a.id, deviceOwner: 'compute' });
      const second = await ports.create(db, { projectId: p.id, networkId: network.id, deviceId: a.id, deviceOwner: 'compute' });
      const attached = await volumes.create(db, { projectId: p.id, name: 'v1', sizeGb: 1, status: 'in-use', serverId: a.id, device: 'vdb' });
      await volumes.create(db, { projectId: p.id, name: 'v2', sizeGb: 1, status: 'deleting', serverId: a.id, device: 'vdc' });
      const op = (kind: string) => operations.create(db, { kind, resourceType: 'server', resourceId: a.id, projectId: p.id, workflowId: `server:${a.id}:${kind}`, runId: 'run-1' });
      await operations.finish(db, (await op('server.create')).id, { status: 'succeeded' });
      const stop = await op('server.stop');
      await operations.recordProgress(db, stop.id, { status: 'running', current: 'stop' }, 1);
      const group = await serverGroups.create(db, { projectId: p.id, name: unique('g'), policy: 'affinity' });
      await serverGroups.addMember(db, group.id, a.id);
      await db('flavors').where({ id: b.flavorId }).delete();

      const [one, two] = (await servers.listWithRelations(db, { limit: 10, projectId: p.id })).items;
      expect(one).toEqual({
        server: await servers.get(db, a.id),
        flavor: { id: TINY, name: SEEDED_FLAVORS[0].name, vcpus: SEEDED_FLAVORS[0].vcpus, ramMb: SEEDED_FLAVORS[0].ramMb, diskGb: SEEDED_FLAVORS[0].diskGb },
        ports: [first, second].map((x) => ({ id: x.id, networkId: network.id, subnetId: subnet.id, fixedIp: x.fixedIp, mac: x.mac, status: x.status })),
        volumes: [{ id: attached.id, device: 'vdb' }],
        latest: { id: stop.id, status: 'running', workflowId: stop.workflowId, runId: 'run-1', progress: (await operations.get(db, stop.id))!.progress },
        groupId: group.id,
      });
      expect(one!.latest!.progress).toMatchObject({ status: 'running', current: 'stop' });
      expect(two).toEqual({ server: await servers.get(db, b.id), flavor: null, ports: [], volumes: [], latest: null, groupId: null });
      expect(await servers.getWithRelations(db, a.id)).toEqual(one);
      expect(await servers.withRelations(db, [b, a])).toEqual([{ ...two, server: b }, { ...one, server: a }]);
      expect(await servers.getWithRelations(db, MISSING_ID)).toBeNull();
      expect(await servers.getWithRelations(db, 'junk')).toBeNull();
      // Pages through the same select as list, with the same cursors.
      const paged = await allItems((marker) => servers.listWithRelations(db, { limit: 1, marker, projectId: p.id }));
      expect(paged.map((d) => d.server.id)).toEqual([a.id, b.id]);
      expect((await servers.list(db, { limit: 1, projectId: p.id })).next).toBe((await servers.listWithRelations(db, { limit: 1, projectId: p.id })).next);
    });
  });

  describe('host claims', () => {
    test('claims on the first candidate with room, with reasons for the others; idempotent; release; usage', async () => {
      const db = database();
      const small = await host(db, { vcpus: 1, ramMb: 64, diskGb: 100 });
      const down = await host(db);
      await hosts.markDown(db, down.name);
      const big = await host(db);
      const serverId = newId();
      const result = await claims.claim(db, { serverId, vcpus: 2, ramMb: 128, diskGb: 10, candidates: ['no-such-host', small.name, down.name, big.name] });
      expect(result).toEqual({
        host: big.name,
        reasons: {
          'no-such-host': 'host not found',
          [small.name]: 'needs 2 vCPU, 1 free of 1; needs 128 MB RAM, 64 free of 64',
          [down.name]: 'host is down',
        },
      });
      expect(await claims.claim(db, { serverId, vcpus: 2, ramMb: 128, diskGb: 10, candidates: [small.name] })).toEqual({ host: big.name, reasons: {} });
      expect(await claims.get(db, serverId)).toEqual({ serverId, hostName: big.name, vcpus: 2, ramMb: 128, diskGb: 10, createdAt: expect.any(Date) });
      expect(await claims.usage(db, big.name)).toEqual({ vcpus: 2, ramMb: 128, diskGb: 10 });
      expect(await claims.usage(db, small.name)).toEqual({ vcpus: 0, ramMb: 0, diskGb: 0 });

      const byHost = await claims.usageByHost(db);
      expect(byHost[big.name]).toEqual({ vcpus: 2, ramMb: 128, diskGb: 10 });
      expect(byHost[small.name]).toEqual({ vcpus: 0, ramMb: 0, diskGb: 0 });

      const filler = await claims.claim(db, { serverId: newId(), vcpus: 6, ramMb: 2944, diskGb: 90, candidates: [big.name] });
      expect(filler.host).toBe(big.name);
      const full = await claims.claim(db, { serverId: newId(), vcpus: 1, ramMb: 1, diskGb: 1, candidates: [big.name] });
      expect(full).toEqual({ host: null, reasons: { [big.name]: 'needs 1 vCPU, 0 free of 8; needs 1 MB RAM, 0 free of 3072; needs 1 GB disk, 0 free of 100' } });

      expect(await claims.release(db, serverId)).toBe(true);
      expect(await claims.release(db, serverId)).toBe(false);
      expect(await claims.get(db, serverId)).toBeNull();
      expect(await claims.usage(db, big.name)).toEqual({ vcpus: 6, ramMb: 2944, diskGb: 90 });
    });

    test('20 concurrent 1-vCPU claims on an 8-vCPU host: exactly 8 succeed', async () => {
      const db = database();
      const h = await host(db, { vcpus: 8, ramMb: 65536, diskGb: 1000 });
      const started = Date.now();
      const results = settle(
        await Promise.allSettled(Array.from({ length: 20 }, () => claims.claim(db, { serverId: newId(), vcpus: 1, ramMb: 128, diskGb: 1, candidates: [h.name] }))),
      );
      timings.push(`${engine.name}: 20 concurrent claims ${Date.now() - started} ms`);
      expect(results.errors).toEqual([]);
      expect(results.ok.filter((r) => r.host === h.name)).toHaveLength(8);
      const refused = results.ok.filter((r) => r.host === null);
      expect(refused).toHaveLength(12);
      for (const r of refused) expect(r.reasons[h.name]).toBe('needs 1 vCPU, 0 free of 8');
      expect(await claims.usage(db, h.name)).toEqual({ vcpus: 8, ramMb: 1024, diskGb: 8 });
    });

    test('concurrent claims for one server on different hosts: one claim, every caller told its host', async () => {
      const db = database();
      const hs = [await host(db), await host(db), await host(db)];
      const serverId = newId();
      const results = settle(
        await Promise.allSettled(hs.map((h) => claims.claim(db, { serverId, vcpus: 1, ramMb: 64, diskGb: 1, candidates: [h.name] }))),
      );
      expect(results.errors).toEqual([]);
      const holder = (await claims.get(db, serverId))?.hostName;
      expect(results.ok.map((r) => r.host)).toEqual([holder, holder, holder]);
      const usage = await claims.usageByHost(db);
      expect(hs.map((h) => usage[h.name]?.vcpus).reduce((x, y) => (x ?? 0) + (y ?? 0), 0)).toBe(1);
    });

    test('deleting a host drops its claims', async () => {
      const db = database();
      const h = await host(db);
      const serverId = newId();
      await claims.claim(db, { serverId, vcpus: 1, ramMb: 1, diskGb: 1, candidates: [h.name] });
      await db('hosts').where({ name: h.name }).delete();
      expect(await claims.get(db, serverId)).toBeNull();
    });
  });

  describe('volumes', () => {
    test('create, get, list filters, transition with set, Conflict naming the status found, remove', async () => {
      const db = database();
      const p = await project(db);
      const img = await image(db, p.id);
      const v = await volumes.create(db, { projectId: p.id, name: 'data', sizeGb: 10, imageId: img });
      expect(v).toEqual({
        id: expect.any(String),
        projectId: p.id,
        name: 'data',
        sizeGb: 10,
        status: 'creating',
        imageId: img,
        host: null,
        serverId: null,
        device: null,
        deleteOnTermination: false,
        availabilityZone: null,
        createdAt: expect.any(Date),
        updatedAt: expect.any(Date),
      });
      expect(await volumes.get(db, v.id)).toEqual(v);

      const available = await volumes.transition(db, v.id, { from: ['creating'], to: 'available', set: { host: 'h1' } });
      expect(available).toMatchObject({ status: 'available', host: 'h1' });
      const vm = newId();
      const reserved = await volumes.transition(db, v.id, { from: ['available'], to: 'reserved', set: { serverId: vm, device: 'vdb', deleteOnTermination: true } });
      expect(reserved).toMatchObject({ status: 'reserved', serverId: vm, device: 'vdb', deleteOnTermination: true, host: 'h1' });
      const err = await rejection(volumes.transition(db, v.id, { from: ['available', 'error'], to: 'deleting' }));
      expect(err).toMatchObject({ constructor: Conflict, message: `volume '${v.id}' is reserved, not available or error` });
      expect(await rejection(volumes.transition(db, MISSING_ID, { from: ['available'], to: 'deleting' }))).toBeInstanceOf(NotFound);

      expect((await volumes.list(db, { limit: 10, serverId: vm })).items.map((x) => x.id)).toEqual([v.id]);
      const other = await volumes.create(db, { projectId: p.id, name: 'other', sizeGb: 1, status: 'available', device: 'vdc' });
      expect(other).toMatchObject({ status: 'available', device: 'vdc' });
      expect((await allItems((marker) => volumes.list(db, { limit: 1, marker, projectId: p.id }))).map((x) => x.id)).toEqual([v.id, other.id]);

      expect(await rejection(volumes.remove(db, v.id))).toMatchObject({ constructor: Conflict, message: `volume '${v.id}' is reserved: detach it first` });
      await volumes.transition(db, v.id, { from: ['reserved'], to: 'available', set: { serverId: null, device: null } });
      await volumes.transition(db, v.id, { from: ['available'], to: 'deleted' });
      expect((await volumes.list(db, { limit: 10, projectId: p.id })).items.map((x) => x.id)).toEqual([other.id]);
      expect((await volumes.list(db, { limit: 10, projectId: p.id, includeDeleted: true })).items).toHaveLength(2);
      await volumes.remove(db, v.id);
      expect(await volumes.get(db, v.id)).toBeNull();
      expect(await rejection(volumes.remove(db, v.id))).toBeInstanceOf(NotFound);
    });

    test('validation: size, status, references', async () => {
      const db = database();
      const p = await project(db);
      expect(await rejection(volumes.create(db, { projectId: p.id, name: 'x', sizeGb: 0 }))).toMatchObject({ constructor: InvalidInput, fields: [{ field: 'size_gb' }] });
      expect(await rejection(volumes.create(db, { projectId: MISSING_ID, name: 'x', sizeGb: 1 }))).toMatchObject({ constructor: NotFound, fields: [{ field: 'project_id' }] });
      expect(await rejection(volumes.create(db, { projectId: p.id, name: 'x', sizeGb: 1, imageId: MISSING_ID }))).toMatchObject({ constructor: NotFound, fields: [{ field: 'image_id' }] });
      const v = await volumes.create(db, { projectId: p.id, name: 'x', sizeGb: 1 });
      expect(await rejection(volumes.transition(db, v.id, { from: ['creating'], to: 'melted' as volumes.VolumeStatus }))).toBeInstanceOf(InvalidInput);
    });

    test('10 concurrent available→reserved transitions on one volume: exactly one wins, 9 Conflict', async () => {
      const db = database();
      const p = await project(db);
      const v = await volumes.create(db, { projectId: p.id, name: 'contended', sizeGb: 1, status: 'available' });
      const vms = Array.from({ length: 10 }, () => newId());
      const results = settle(
        await Promise.allSettled(vms.map((vm) => volumes.transition(db, v.id, { from: ['available'], to: 'reserved', set: { serverId: vm } }))),
      );
      expect(results.ok).toHaveLength(1);
      expect(results.errors).toHaveLength(9);
      for (const err of results.errors) {
        expect(err).toBeInstanceOf(Conflict);
        expect((err as Conflict).message).toBe(`volume '${v.id}' is reserved, not available`);
      }
      expect((await volumes.get(db, v.id))?.serverId).toBe(results.ok[0]?.serverId);
    });
  });

  describe('operations', () => {
    test('create running, setRunId, finish (first outcome wins), listByResource, remove', async () => {
      const db = database();
      const resourceId = newId();
      const projectId = newId();
      const op = await operations.create(db, { kind: 'server.create', resourceType: 'server', resourceId, projectId, workflowId: `server:${resourceId}:create` });
      expect(op).toEqual({
        id: expect.any(String),
        kind: 'server.create',
        resourceType: 'server',
        resourceId,
        projectId,
        workflowId: `server:${resourceId}:create`,
        runId: null,
        workflowType: null,
        workflowArgs: null,
        status: 'running',
        error: null,
        progress: null,
        createdAt: expect.any(Date),
        updatedAt: expect.any(Date),
      });
      expect((await operations.setRunId(db, op.id, 'run-1')).runId).toBe('run-1');
      const failed = await operations.finish(db, op.id, { status: 'failed', error: { step: 'schedule', code: 'NoValidHost', message: 'no host' } });
      expect(failed).toMatchObject({ status: 'failed', error: { step: 'schedule', code: 'NoValidHost', message: 'no host' }, runId: 'run-1' });
      expect(await operations.finish(db, op.id, { status: 'succeeded' })).toEqual(failed);
      expect(await operations.get(db, op.id)).toEqual(failed);

      const del = await operations.create(db, {
        id: newId(),
        kind: 'server.delete',
        resourceType: 'server',
        resourceId,
        projectId,
        workflowId: 'w2',
        runId: 'r2',
        workflowType: 'deleteServer',
        workflowArgs: [{ serverId: resourceId, cancelCreate: true }],
      });
      expect(del).toMatchObject({ workflowType: 'deleteServer', workflowArgs: [{ serverId: resourceId, cancelCreate: true }] });
      expect((await operations.listByResource(db, resourceId)).map((o) => o.kind)).toEqual(['server.create', 'server.delete']);
      // The reconciler's candidates: running, older than the given time, oldest first.
      expect((await operations.listRunning(db, { before: new Date(Date.now() + 60_000), limit: 1000 })).map((o) => o.id)).toContain(del.id);
      expect((await operations.listRunning(db, { before: new Date(0), limit: 1000 })).map((o) => o.id)).not.toContain(del.id);
      expect(await rejection(operations.create(db, { id: del.id, kind: 'x', resourceType: 'server', resourceId, projectId, workflowId: 'w' }))).toBeInstanceOf(Conflict);
      await operations.remove(db, del.id);
      expect(await operations.get(db, del.id)).toBeNull();
      expect(await rejection(operations.finish(db, MISSING_ID, { status: 'succeeded' }))).toBeInstanceOf(NotFound);
      expect(await rejection(operations.setRunId(db, MISSING_ID, 'r'))).toBeInstanceOf(NotFound);
    });
  });

  describe('server meters', () => {
    test('start is idempotent, stop keeps the first stop time', async () => {
      const db = database();
      const serverId = newId();
      expect(await meters.get(db, serverId)).toBeNull();
      const started = await meters.start(db, { serverId, workflowId: 'meter-1' });
      expect(started).toEqual({ serverId, workflowId: 'meter-1', startedAt: expect.any(Date), stoppedAt: null, allocation: null });
      expect(await meters.start(db, { serverId, workflowId: 'meter-2' })).toEqual(started);
      const stopped = await meters.stop(db, serverId);
      expect(stopped?.stoppedAt).toEqual(expect.any(Date));
      expect(await meters.stop(db, serverId)).toEqual(stopped);
      expect(await meters.get(db, serverId)).toEqual(stopped);
      expect(await meters.stop(db, newId())).toBeNull();
      const racing = newId();
      const all = await Promise.all(Array.from({ length: 5 }, (_, i) => meters.start(db, { serverId: racing, workflowId: `w${i}` })));
      expect(new Set(all.map((m) => m.workflowId)).size).toBe(1);
    });
  });
});
