/**
 * Flavors, networks, subnets and ports over HTTP against a whole in-process cloud, with response
 * validation on. The cloud runs on PostgreSQL (a fresh database for this file): its connection pool
 * lets concurrent requests really run concurrently, so the IPAM test proves the database keeps
 * addresses unique (PGlite's single connection would serialize them and prove nothing).
 */
import { randomUUID } from 'node:crypto';
import * as ports from '../../db/repositories/ports';
import * as servers from '../../db/repositories/servers';
import { startTestCloud, type TestCloud } from '../support/cloud';
import { engines, type TestDatabase } from '../support/databases';

let database: TestDatabase;
let t: TestCloud;
let admin: string;
let alice: string; // member of team-a
let rita: string; // reader of team-a
let bob: string; // member of team-b
let teamA: { id: string };

beforeAll(async () => {
  const postgres = engines.find((e) => e.name === 'postgres');
  if (!postgres) throw new Error('no postgres test engine');
  database = await postgres.create({ migrate: false });
  t = await startTestCloud({ databaseUrl: database.url! });
  admin = await t.login();
  const project = async (name: string) => (await t.call('POST', '/v1/projects', { token: admin, body: { name } })).body;
  const user = async (name: string, projectId: string, role: string) => {
    const u = (await t.call('POST', '/v1/users', { token: admin, body: { name, password: `${name}-password` } })).body;
    expect((await t.call('PUT', `/v1/projects/${projectId}/users/${u.id}/roles/${role}`, { token: admin })).status).toBe(204);
  };
  teamA = await project('team-a');
  const teamB = await project('team-b');
  await user('alice', teamA.id, 'member');
  await user('rita', teamA.id, 'reader');
  await user('bob', teamB.id, 'member');
  alice = await t.login('alice', 'alice-password', 'team-a');
  rita = await t.login('rita', 'rita-password', 'team-a');
  bob = await t.login('bob', 'bob-password', 'team-b');
}, 120_000);

afterAll(async () => {
  await t?.stop();
  await database?.dispose();
});

function expectProblem(res: { status: number; body: any; headers: Headers }, status: number, field?: string) {
  expect(res.status).toBe(status);
  expect(res.headers.get('content-type')).toMatch(/^application\/problem\+json/);
  expect(res.body).toMatchObject({ status, title: expect.any(String), detail: expect.any(String) });
  if (field) expect(res.body.fields.map((f: { field: string }) => f.field)).toContain(field);
}

const db = () => {
  if (!t.cloud.db) throw new Error('the test cloud opened no database');
  return t.cloud.db;
};

describe('flavors', () => {
  test('everyone lists the seeded public flavors', async () => {
    const res = await t.call('GET', '/v1/flavors', { token: rita });
    expect(res.status).toBe(200);
    const byName = Object.fromEntries(res.body.flavors.map((f: any) => [f.name, f]));
    expect(byName['m1.tiny']).toMatchObject({ vcpus: 1, ram_mb: 128, disk_gb: 1, is_public: true });
    expect(byName['m1.small']).toMatchObject({ vcpus: 1, ram_mb: 2048, disk_gb: 20, is_public: true });
    expect(byName['m1.medium']).toMatchObject({ vcpus: 2, ram_mb: 4096, disk_gb: 40, is_public: true });
    expect(res.body.next).toBeNull();
    const one = await t.call('GET', `/v1/flavors/${byName['m1.tiny'].id}`, { token: alice });
    expect(one.body).toEqual(byName['m1.tiny']);
  });

  test('admins create flavors; members and readers get 403', async () => {
    const body = { name: 'm1.large', vcpus: 4, ram_mb: 8192, disk_gb: 80 };
    expectProblem(await t.call('POST', '/v1/flavors', { token: alice, body }), 403);
    expectProblem(await t.call('POST', '/v1/flavors', { token: rita, body }), 403);
    const created = await t.call('POST', '/v1/flavors', { token: admin, body });
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({ ...body, is_public: true, id: expect.any(String) });
    expectProblem(await t.call('POST', '/v1/flavors', { token: admin, body }), 409, 'body.name');
  });

  test.each([
    ['vcpus 0', { vcpus: 0 }, 'body.vcpus'],
    ['ram_mb under 64', { ram_mb: 32 }, 'body.ram_mb'],
    ['negative disk_gb', { disk_gb: -1 }, 'body.disk_gb'],
    ['a bad name', { name: 'has space' }, 'body.name'],
  ])('%s is 400 naming the field', async (_case, change, field) => {
    const res = await t.call('POST', '/v1/flavors', { token: admin, body: { name: 'm1.bad', vcpus: 1, ram_mb: 256, disk_gb: 1, ...change } });
    expectProblem(res, 400, field);
  });

  test('a private flavor is listed and shown to admins only', async () => {
    const secret = (await t.call('POST', '/v1/flavors', { token: admin, body: { name: 'x1.secret', vcpus: 1, ram_mb: 64, disk_gb: 0, is_public: false } })).body;
    expect(secret.is_public).toBe(false);
    const names = async (token: string) => (await t.call('GET', '/v1/flavors', { token })).body.flavors.map((f: any) => f.name);
    expect(await names(admin)).toContain('x1.secret');
    expect(await names(alice)).not.toContain('x1.secret');
    expectProblem(await t.call('GET', `/v1/flavors/${secret.id}`, { token: alice }), 404);
    expect((await t.call('GET', `/v1/flavors/${secret.id}`, { token: admin })).status).toBe(200);
  });

  test('admins delete flavors, except while a server uses one (409)', async () => {
    const f = (await t.call('POST', '/v1/flavors', { token: admin, body: { name: 'm1.doomed', vcpus: 1, ram_mb: 128, disk_gb: 1 } })).body;
    expectProblem(await t.call('DELETE', `/v1/flavors/${f.id}`, { token: alice }), 403);
    expect((await t.call('DELETE', `/v1/flavors/${f.id}`, { token: admin })).status).toBe(204);
    expectProblem(await t.call('GET', `/v1/flavors/${f.id}`, { token: admin }), 404);
    expectProblem(await t.call('DELETE', `/v1/flavors/${f.id}`, { token: admin }), 404);
    expectProblem(await t.call('GET', '/v1/flavors/not-a-uuid', { token: admin }), 400, 'path.flavor_id');

    const used = (await t.call('POST', '/v1/flavors', { token: admin, body: { name: 'm1.used', vcpus: 1, ram_mb: 128, disk_gb: 1 } })).body;
    await servers.create(db(), { id: randomUUID(), projectId: teamA.id, userId: null, name: 'vm', flavorId: used.id, imageId: null });
    expectProblem(await t.call('DELETE', `/v1/flavors/${used.id}`, { token: admin }), 409);
    expect((await t.call('GET', `/v1/flavors/${used.id}`, { token: admin })).status).toBe(200);
  });
});

describe('networks', () => {
  test('create, show, list with subnet ids, delete', async () => {
    const created = await t.call('POST', '/v1/networks', { token: alice, body: { name: 'net-crud' } });
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({ name: 'net-crud', project_id: teamA.id, subnets: [] });
    const id = created.body.id;
    const subnet = (await t.call('POST', '/v1/subnets', { token: alice, body: { network_id: id, cidr: '10.10.0.0/24' } })).body;

    const shown = await t.call('GET', `/v1/networks/${id}`, { token: rita });
    expect(shown.body).toMatchObject({ id, subnets: [subnet.id] });
    const listed = await t.call('GET', '/v1/networks', { token: alice });
    expect(listed.body.networks.find((n: any) => n.id === id)).toEqual(shown.body);

    expectProblem(await t.call('POST', '/v1/networks', { token: alice, body: { name: 'net-crud' } }), 409, 'body.name');
    expectProblem(await t.call('DELETE', `/v1/networks/${id}`, { token: rita }), 403);
    expect((await t.call('DELETE', `/v1/networks/${id}`, { token: alice })).status).toBe(204);
    expectProblem(await t.call('GET', `/v1/networks/${id}`, { token: alice }), 404);
    // Its subnets went with it.
    expectProblem(await t.call('GET', `/v1/subnets/${subnet.id}`, { token: alice }), 404);
  });

  test('readers cannot create; a bad body names the field', async () => {
    expectProblem(await t.call('POST', '/v1/networks', { token: rita, body: { name: 'nope' } }), 403);
    expectProblem(await t.call('POST', '/v1/networks', { token: alice, body: {} }), 400, 'body.name');
    expectProblem(await t.call('POST', '/v1/networks', { token: alice, body: { name: 'x', project_id: teamA.id } }), 400);
  });

  test("another project's networks are 404 and unlisted; admins see every project's", async () => {
    const mine = (await t.call('POST', '/v1/networks', { token: alice, body: { name: 'net-private' } })).body;
    expectProblem(await t.call('GET', `/v1/networks/${mine.id}`, { token: bob }), 404);
    expectProblem(await t.call('DELETE', `/v1/networks/${mine.id}`, { token: bob }), 404);
    const bobs = (await t.call('GET', '/v1/networks', { token: bob })).body.networks;
    expect(bobs.map((n: any) => n.id)).not.toContain(mine.id);
    const all = (await t.call('GET', '/v1/networks?limit=1000', { token: admin })).body.networks;
    expect(all.map((n: any) => n.id)).toContain(mine.id);
    expect((await t.call('GET', `/v1/networks/${mine.id}`, { token: admin })).status).toBe(200);
    expect((await t.call('GET', `/v1/networks/${mine.id}`, { token: alice })).status).toBe(200);
  });

  test('lists page with a next cursor', async () => {
    for (const name of ['page-1', 'page-2', 'page-3']) await t.call('POST', '/v1/networks', { token: bob, body: { name } });
    const seen: string[] = [];
    let marker: string | null = null;
    do {
      const query: string = marker ? `&marker=${encodeURIComponent(marker)}` : '';
      const page = await t.call('GET', `/v1/networks?limit=2${query}`, { token: bob });
      expect(page.status).toBe(200);
      expect(page.body.networks.length).toBeLessThanOrEqual(2);
      seen.push(...page.body.networks.map((n: { name: string }) => n.name));
      marker = page.body.next;
    } while (marker);
    expect(seen).toEqual(['page-1', 'page-2', 'page-3']);
  });
});

describe('subnets', () => {
  let net: { id: string };
  beforeAll(async () => {
    net = (await t.call('POST', '/v1/networks', { token: alice, body: { name: 'net-subnets' } })).body;
  });
  const subnetIdsOf = async (networkId: string) =>
    (await t.call('GET', `/v1/subnets?network_id=${networkId}`, { token: admin })).body.subnets.map((s: any) => s.id);

  test('defaults: gateway the first host, one pool of the rest; show, list, delete', async () => {
    const created = await t.call('POST', '/v1/subnets', {
      token: alice,
      body: { network_id: net.id, cidr: '192.168.10.0/24', dns_nameservers: ['1.1.1.1'] },
    });
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({
      network_id: net.id,
      project_id: teamA.id,
      ip_version: 4,
      cidr: '192.168.10.0/24',
      gateway_ip: '192.168.10.1',
      allocation_pools: [{ start: '192.168.10.2', end: '192.168.10.254' }],
      dns_nameservers: ['1.1.1.1'],
    });
    const id = created.body.id;
    expect((await t.call('GET', `/v1/subnets/${id}`, { token: rita })).body).toEqual(created.body);
    expect(await subnetIdsOf(net.id)).toEqual([id]);
    expectProblem(await t.call('DELETE', `/v1/subnets/${id}`, { token: rita }), 403);
    expect((await t.call('DELETE', `/v1/subnets/${id}`, { token: alice })).status).toBe(204);
    expectProblem(await t.call('GET', `/v1/subnets/${id}`, { token: alice }), 404);
    expect(await subnetIdsOf(net.id)).toEqual([]);
  });

  test('explicit gateway and pools are kept', async () => {
    const res = await t.call('POST', '/v1/subnets', {
      token: alice,
      body: {
        network_id: net.id,
        cidr: '172.16.0.0/24',
        gateway_ip: '172.16.0.254',
        allocation_pools: [
          { start: '172.16.0.100', end: '172.16.0.149' },
          { start: '172.16.0.10', end: '172.16.0.19' },
        ],
      },
    });
    expect(res.status).toBe(201);
    expect(res.body.gateway_ip).toBe('172.16.0.254');
    expect(res.body.allocation_pools).toEqual([
      { start: '172.16.0.10', end: '172.16.0.19' },
      { start: '172.16.0.100', end: '172.16.0.149' },
    ]);
    expect((await t.call('DELETE', `/v1/subnets/${res.body.id}`, { token: alice })).status).toBe(204);
  });

  test.each([
    ['a CIDR that is not one', { cidr: '10.0.0/24' }, 'body.cidr'],
    ['an octet over 255', { cidr: '10.0.300.0/24' }, 'body.cidr'],
    ['host bits set', { cidr: '10.0.0.1/24' }, 'body.cidr'],
    ['no room for hosts', { cidr: '10.0.0.0/31' }, 'body.cidr'],
    ['a gateway that is not an address', { cidr: '10.0.0.0/24', gateway_ip: 'gw' }, 'body.gateway_ip'],
    ['a gateway outside the CIDR', { cidr: '10.0.0.0/24', gateway_ip: '10.0.1.1' }, 'body.gateway_ip'],
    ['the broadcast address as gateway', { cidr: '10.0.0.0/24', gateway_ip: '10.0.0.255' }, 'body.gateway_ip'],
    [
      'overlapping pools',
      { cidr: '10.0.0.0/24', allocation_pools: [{ start: '10.0.0.10', end: '10.0.0.50' }, { start: '10.0.0.40', end: '10.0.0.60' }] },
      'body.allocation_pools',
    ],
    ['a pool outside the CIDR', { cidr: '10.0.0.0/24', allocation_pools: [{ start: '10.0.1.10', end: '10.0.1.20' }] }, 'body.allocation_pools'],
    ['a pool holding the gateway', { cidr: '10.0.0.0/24', allocation_pools: [{ start: '10.0.0.1', end: '10.0.0.20' }] }, 'body.allocation_pools'],
    ['a reversed pool', { cidr: '10.0.0.0/24', allocation_pools: [{ start: '10.0.0.20', end: '10.0.0.10' }] }, 'body.allocation_pools'],
    ['a bad nameserver', { cidr: '10.0.0.0/24', dns_nameservers: ['dns.example'] }, 'body.dns_nameservers.0'],
  ])('%s is 400 naming the field, and nothing is created', async (_case, change, field) => {
    const res = await t.call('POST', '/v1/subnets', { token: alice, body: { network_id: net.id, ...change } });
    expectProblem(res, 400, field);
    expect(await subnetIdsOf(net.id)).toEqual([]);
  });

  test('a CIDR overlapping another subnet of the network is 400 naming body.cidr', async () => {
    const first = (await t.call('POST', '/v1/subnets', { token: alice, body: { network_id: net.id, cidr: '10.20.0.0/16' } })).body;
    const res = await t.call('POST', '/v1/subnets', { token: alice, body: { network_id: net.id, cidr: '10.20.5.0/24' } });
    expectProblem(res, 400, 'body.cidr');
    expect(await subnetIdsOf(net.id)).toEqual([first.id]);
    expect((await t.call('DELETE', `/v1/subnets/${first.id}`, { token: alice })).status).toBe(204);
  });

  test("another project's network is 404 naming body.network_id; its subnets are 404 and unlisted", async () => {
    const res = await t.call('POST', '/v1/subnets', { token: bob, body: { network_id: net.id, cidr: '10.30.0.0/24' } });
    expectProblem(res, 404, 'body.network_id');
    expectProblem(await t.call('POST', '/v1/subnets', { token: alice, body: { network_id: randomUUID(), cidr: '10.30.0.0/24' } }), 404, 'body.network_id');
    expect(await subnetIdsOf(net.id)).toEqual([]);

    const mine = (await t.call('POST', '/v1/subnets', { token: alice, body: { network_id: net.id, cidr: '10.30.0.0/24' } })).body;
    expectProblem(await t.call('GET', `/v1/subnets/${mine.id}`, { token: bob }), 404);
    expectProblem(await t.call('DELETE', `/v1/subnets/${mine.id}`, { token: bob }), 404);
    expect((await t.call('GET', `/v1/subnets?network_id=${net.id}`, { token: bob })).body.subnets).toEqual([]);
    expect((await t.call('GET', '/v1/subnets', { token: bob })).body.subnets.map((s: any) => s.id)).not.toContain(mine.id);
    expect((await t.call('DELETE', `/v1/subnets/${mine.id}`, { token: alice })).status).toBe(204);
  });

  test('admins create subnets on a project network; the subnet belongs to that project', async () => {
    const res = await t.call('POST', '/v1/subnets', { token: admin, body: { network_id: net.id, cidr: '10.40.0.0/24' } });
    expect(res.status).toBe(201);
    expect(res.body.project_id).toBe(teamA.id);
    expect((await t.call('GET', `/v1/subnets/${res.body.id}`, { token: alice })).status).toBe(200);
    expect((await t.call('DELETE', `/v1/subnets/${res.body.id}`, { token: alice })).status).toBe(204);
  });
});

describe('ports', () => {
  const newNetwork = async (token: string, name: string, cidr?: string, extra: Record<string, unknown> = {}) => {
    const network = (await t.call('POST', '/v1/networks', { token, body: { name } })).body;
    const subnet = cidr ? (await t.call('POST', '/v1/subnets', { token, body: { network_id: network.id, cidr, ...extra } })).body : undefined;
    return { network, subnet };
  };
  const portsOn = async (networkId: string) =>
    (await t.call('GET', `/v1/ports?network_id=${networkId}&limit=1000`, { token: admin })).body.ports;

  test('create, show, list, delete; the lowest free address is taken first and freed on delete', async () => {
    const { network, subnet } = await newNetwork(alice, 'net-ports', '10.50.0.0/24');
    const created = await t.call('POST', '/v1/ports', { token: alice, body: { network_id: network.id } });
    expect(created.status).toBe(201);
    expect(created.body).toEqual({
      id: expect.any(String),
      project_id: teamA.id,
      network_id: network.id,
      subnet_id: subnet.id,
      mac_address: expect.stringMatching(/^fa:16:3e(:[0-9a-f]{2}){3}$/),
      fixed_ip: '10.50.0.2',
      device_id: null,
      device_owner: null,
      status: 'DOWN',
      created_at: expect.any(String),
    });
    const second = (await t.call('POST', '/v1/ports', { token: alice, body: { network_id: network.id } })).body;
    expect(second.fixed_ip).toBe('10.50.0.3');
    expect(second.mac_address).not.toBe(created.body.mac_address);

    expect((await t.call('GET', `/v1/ports/${created.body.id}`, { token: rita })).body).toEqual(created.body);
    const listed = await t.call('GET', `/v1/ports?network_id=${network.id}`, { token: alice });
    expect(listed.body.ports.map((p: any) => p.id)).toEqual([created.body.id, second.id]);

    expectProblem(await t.call('POST', '/v1/ports', { token: rita, body: { network_id: network.id } }), 403);
    expectProblem(await t.call('DELETE', `/v1/ports/${created.body.id}`, { token: rita }), 403);
    expect((await t.call('DELETE', `/v1/ports/${created.body.id}`, { token: alice })).status).toBe(204);
    expectProblem(await t.call('GET', `/v1/ports/${created.body.id}`, { token: alice }), 404);
    const again = (await t.call('POST', '/v1/ports', { token: alice, body: { network_id: network.id } })).body;
    expect(again.fixed_ip).toBe('10.50.0.2');
  });

  test('a fixed IP is honoured; taken → 409, outside the subnet or reserved → 400, naming body.fixed_ip', async () => {
    const { network } = await newNetwork(alice, 'net-fixed', '10.60.0.0/24');
    const fixed = await t.call('POST', '/v1/ports', { token: alice, body: { network_id: network.id, fixed_ip: '10.60.0.77' } });
    expect(fixed.status).toBe(201);
    expect(fixed.body.fixed_ip).toBe('10.60.0.77');
    expectProblem(await t.call('POST', '/v1/ports', { token: alice, body: { network_id: network.id, fixed_ip: '10.60.0.77' } }), 409, 'body.fixed_ip');
    expectProblem(await t.call('POST', '/v1/ports', { token: alice, body: { network_id: network.id, fixed_ip: '10.61.0.5' } }), 400, 'body.fixed_ip');
    expectProblem(await t.call('POST', '/v1/ports', { token: alice, body: { network_id: network.id, fixed_ip: '10.60.0.1' } }), 400, 'body.fixed_ip');
    expectProblem(await t.call('POST', '/v1/ports', { token: alice, body: { network_id: network.id, fixed_ip: '10.60.0.255' } }), 400, 'body.fixed_ip');
    expectProblem(await t.call('POST', '/v1/ports', { token: alice, body: { network_id: network.id, fixed_ip: 'ten' } }), 400, 'body.fixed_ip');
    expect((await portsOn(network.id)).map((p: any) => p.fixed_ip)).toEqual(['10.60.0.77']);
  });

  test('50 concurrent creates on one /24 get 50 distinct addresses from the pool', async () => {
    const { network } = await newNetwork(alice, 'net-race', '10.70.0.0/24');
    const results = await Promise.all(
      Array.from({ length: 50 }, () => t.call('POST', '/v1/ports', { token: alice, body: { network_id: network.id } })),
    );
    expect(results.map((r) => r.status)).toEqual(Array(50).fill(201));
    const ips = results.map((r) => r.body.fixed_ip as string);
    expect(new Set(ips).size).toBe(50);
    expect(new Set(results.map((r) => r.body.mac_address)).size).toBe(50);
    // The lowest 50 addresses of the pool: .2 … .51.
    const hosts = ips.map((ip) => Number(ip.split('.')[3])).sort((a, b) => a - b);
    expect(hosts).toEqual(Array.from({ length: 50 }, (_, i) => i + 2));
    expect((await portsOn(network.id)).length).toBe(50);
  });

  test('an exhausted /29 is 409 and creates nothing more; a network without subnets is 409', async () => {
    const { network } = await newNetwork(alice, 'net-small', '10.80.0.0/29'); // hosts .1-.6, gateway .1 → 5 addresses
    const results = await Promise.all(
      Array.from({ length: 7 }, () => t.call('POST', '/v1/ports', { token: alice, body: { network_id: network.id } })),
    );
    expect(results.map((r) => r.status).sort()).toEqual([201, 201, 201, 201, 201, 409, 409]);
    expectProblem(results.find((r) => r.status === 409)!, 409);
    expect((await portsOn(network.id)).map((p: any) => p.fixed_ip).sort()).toEqual(['10.80.0.2', '10.80.0.3', '10.80.0.4', '10.80.0.5', '10.80.0.6']);

    const { network: bare } = await newNetwork(alice, 'net-bare');
    expectProblem(await t.call('POST', '/v1/ports', { token: alice, body: { network_id: bare.id } }), 409);
  });

  test("another project's network and ports are 404", async () => {
    const { network } = await newNetwork(alice, 'net-cross', '10.90.0.0/24');
    const port = (await t.call('POST', '/v1/ports', { token: alice, body: { network_id: network.id } })).body;
    expectProblem(await t.call('POST', '/v1/ports', { token: bob, body: { network_id: network.id } }), 404, 'body.network_id');
    expectProblem(await t.call('GET', `/v1/ports/${port.id}`, { token: bob }), 404);
    expectProblem(await t.call('DELETE', `/v1/ports/${port.id}`, { token: bob }), 404);
    expect((await t.call('GET', `/v1/ports?network_id=${network.id}`, { token: bob })).body.ports).toEqual([]);
    expect((await t.call('GET', '/v1/ports', { token: bob })).body.ports.map((p: any) => p.id)).not.toContain(port.id);
    expect((await t.call('GET', `/v1/ports/${port.id}`, { token: admin })).status).toBe(200);
  });

  test('a port bound to a server is 409 to delete, and so are its network and subnet; unbound, all go', async () => {
    const { network, subnet } = await newNetwork(alice, 'net-bound', '10.100.0.0/24');
    const port = (await t.call('POST', '/v1/ports', { token: alice, body: { network_id: network.id } })).body;
    const serverId = randomUUID();
    await ports.bind(db(), port.id, serverId);

    const byDevice = await t.call('GET', `/v1/ports?device_id=${serverId}`, { token: alice });
    expect(byDevice.body.ports).toEqual([expect.objectContaining({ id: port.id, device_id: serverId, device_owner: 'compute' })]);
    expectProblem(await t.call('DELETE', `/v1/ports/${port.id}`, { token: alice }), 409);
    expect((await t.call('GET', `/v1/ports/${port.id}`, { token: alice })).body.device_id).toBe(serverId);
    expectProblem(await t.call('DELETE', `/v1/networks/${network.id}`, { token: alice }), 409);
    expectProblem(await t.call('DELETE', `/v1/subnets/${subnet.id}`, { token: alice }), 409);

    await ports.unbind(db(), port.id, serverId);
    expect((await t.call('DELETE', `/v1/ports/${port.id}`, { token: alice })).status).toBe(204);
    expect((await t.call('DELETE', `/v1/networks/${network.id}`, { token: alice })).status).toBe(204);
  });

  test('bad input names the field', async () => {
    expectProblem(await t.call('POST', '/v1/ports', { token: alice, body: {} }), 400, 'body.network_id');
    expectProblem(await t.call('POST', '/v1/ports', { token: alice, body: { network_id: 'nope' } }), 400, 'body.network_id');
    expectProblem(await t.call('GET', '/v1/ports?device_id=nope', { token: alice }), 400, 'query.device_id');
    expectProblem(await t.call('GET', '/v1/ports/nope', { token: alice }), 400, 'path.port_id');
  });
});
