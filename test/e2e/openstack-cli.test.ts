/**
 * The unmodified `openstack` CLI (python-openstackclient 10.5.0, openstacksdk 4.22.0; pinned in
 * .venv-osc by scripts/setup-openstack-client.sh, which runs here when the venv is missing) and an
 * openstacksdk script (test/openstack/sdk_flow.py) drive a real cloud on libvirt's test driver, whose
 * Keystone catalog points at the port it listens on. Each command has a timeout, prints `-f json`
 * where it prints anything, and its answer is checked, mostly against what /v1 says of the same
 * resource (one cloud, two APIs).
 *
 * Each flow is its own test and brings its own prerequisites (made through /v1), so a service that
 * fails shows as its own failing test with the command, exit code and output.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { ADMIN_PASSWORD, startTestCloud, type TestCloud } from '../support/cloud';
import { describeRun, ensureOpenStackClient, openstackClient, REPO, type OpenStackClient } from '../support/openstack-cli';
import { createNetwork, uploadRawImage } from '../support/stratus-fixtures';

let t: TestCloud;
let cli: OpenStackClient;
let admin: string; // a /v1 token
let me: { userId: string; projectId: string };

/** A v1 GET, which must answer 200. */
async function v1(urlPath: string): Promise<any> {
  const res = await t.call('GET', urlPath, { token: admin });
  if (res.status !== 200) throw new Error(`GET ${urlPath}: ${res.status} ${JSON.stringify(res.body)}`);
  return res.body;
}

/** Polls /v1 (cheap) until `done`; the CLI then confirms the state. */
async function until<T>(what: string, read: () => Promise<T>, done: (value: T) => boolean, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: T | undefined;
  for (;;) {
    last = await read().catch(() => last);
    if (last !== undefined && done(last)) return last;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; last: ${JSON.stringify(last)}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

function noTraceback(r: { stdout: string; stderr: string }): void {
  expect(`${r.stdout}${r.stderr}`).not.toMatch(/Traceback|KeyError|NoneType/);
}

beforeAll(async () => {
  await ensureOpenStackClient();
  t = await startTestCloud({ publicUrlOnLoopback: true });
  admin = await t.login();
  const current = await v1('/v1/auth/tokens/current');
  me = { userId: current.user.id, projectId: current.project.id };
  cli = openstackClient(t.config.api.publicUrl, { username: 'admin', password: ADMIN_PASSWORD, project: 'admin' });
}, 600_000);

afterAll(async () => {
  cli?.cleanup();
  await t?.stop();
});

test('the cloud names itself on 127.0.0.1 and the client is the pinned one', async () => {
  expect(t.config.api.publicUrl).toBe(t.baseUrl);
  const version = await cli.run(['--version']);
  expect(version.stdout + version.stderr).toContain('openstack 10.5.0');
});

test('token issue', async () => {
  const token = await cli.json(['token', 'issue']);
  expect(token).toMatchObject({ id: expect.stringMatching(/^st_/), project_id: me.projectId, user_id: me.userId });
  expect(Date.parse(token.expires)).toBeGreaterThan(Date.now());
  // The token is Stratus's own: /v1 accepts it.
  expect((await t.call('GET', '/v1/auth/tokens/current', { token: token.id })).body.user.id).toBe(me.userId);
}, 60_000);

test('image create --file, list, show, delete', async () => {
  const file = path.join(cli.home, 'tiny.img');
  const bytes = crypto.randomBytes(256 * 1024);
  fs.writeFileSync(file, bytes);
  const md5 = crypto.createHash('md5').update(bytes).digest('hex');

  const created = await cli.json(['image', 'create', '--file', file, '--disk-format', 'raw', 'cli-img'], 120);
  expect(created).toMatchObject({ name: 'cli-img', disk_format: 'raw', container_format: 'bare' });
  const id = created.id as string;
  // The same image through /v1, active with the uploaded bytes.
  expect(await v1(`/v1/images/${id}`)).toMatchObject({ id, name: 'cli-img', status: 'active', size_bytes: bytes.length });

  const list = await cli.json(['image', 'list']);
  expect(list).toContainEqual(expect.objectContaining({ ID: id, Name: 'cli-img', Status: 'active' }));

  const shown = await cli.json(['image', 'show', 'cli-img']);
  expect(shown).toMatchObject({ id, name: 'cli-img', status: 'active', size: bytes.length, checksum: md5, disk_format: 'raw' });

  await cli.ok(['image', 'delete', 'cli-img']);
  expect((await t.call('GET', `/v1/images/${id}`, { token: admin })).status).toBe(404);
  const gone = await cli.run(['image', 'show', 'cli-img']);
  expect(gone.code).toBe(1);
  expect(gone.stderr).toMatch(/No Image found for cli-img/);
  noTraceback(gone);
}, 180_000);

test('network create, subnet create --network --subnet-range, port list', async () => {
  const net = await cli.json(['network', 'create', 'cli-net']);
  expect(net).toMatchObject({ name: 'cli-net', admin_state_up: true, project_id: me.projectId });
  expect(await v1(`/v1/networks/${net.id}`)).toMatchObject({ id: net.id, name: 'cli-net' });

  const subnet = await cli.json(['subnet', 'create', '--network', 'cli-net', '--subnet-range', '10.77.0.0/24', 'cli-subnet']);
  expect(subnet).toMatchObject({ name: 'cli-subnet', network_id: net.id, cidr: '10.77.0.0/24', ip_version: 4, gateway_ip: '10.77.0.1' });
  expect(await v1(`/v1/subnets/${subnet.id}`)).toMatchObject({ id: subnet.id, network_id: net.id, cidr: '10.77.0.0/24' });

  // A port made through /v1 is in the CLI's list, with its address.
  const port = await t.call('POST', '/v1/ports', { token: admin, body: { network_id: net.id } });
  expect(port.status).toBe(201);
  const ports = await cli.json(['port', 'list']);
  const listed = (ports as any[]).find((p) => p.ID === port.body.id);
  expect(listed).toBeDefined();
  expect(listed['MAC Address']).toBe(port.body.mac_address);
  expect(JSON.stringify(listed['Fixed IP Addresses'])).toContain(subnet.id);
  const v1Ports = (await v1('/v1/ports')).ports.map((p: any) => p.id).sort();
  expect((ports as any[]).map((p) => p.ID).sort()).toEqual(v1Ports);
}, 120_000);

test('volume create --size 1, list, delete', async () => {
  const created = await cli.json(['volume', 'create', '--size', '1', 'cli-vol']);
  expect(created).toMatchObject({ name: 'cli-vol', size: 1, status: 'creating', bootable: false });
  const id = created.id as string;
  await until('cli-vol available', () => v1(`/v1/volumes/${id}`), (v) => v.status === 'available');

  const list = await cli.json(['volume', 'list']);
  expect(list).toContainEqual(expect.objectContaining({ ID: id, Name: 'cli-vol', Status: 'available', Size: 1, 'Attached to': [] }));

  await cli.ok(['volume', 'delete', 'cli-vol']);
  await until('cli-vol deleted', () => t.call('GET', `/v1/volumes/${id}`, { token: admin }), (r) => r.status === 404);
  expect((await cli.json(['volume', 'list'])).map((v: any) => v.ID)).not.toContain(id);
}, 120_000);

describe('server lifecycle', () => {
  let imageName: string;
  let networkName: string;

  beforeAll(async () => {
    const imageId = await uploadRawImage(t, admin);
    imageName = (await v1(`/v1/images/${imageId}`)).name;
    const { networkId } = await createNetwork(t, admin, '10.78.0.0/24');
    networkName = (await v1(`/v1/networks/${networkId}`)).name;
  }, 60_000);

  test('flavor list', async () => {
    const flavors = (await cli.json(['flavor', 'list'])) as any[];
    const v1Flavors = (await v1('/v1/flavors')).flavors as any[];
    expect(flavors.map((f) => f.Name).sort()).toEqual(v1Flavors.map((f) => f.name).sort());
    const tiny = v1Flavors.find((f) => f.name === 'm1.tiny');
    expect(flavors).toContainEqual(expect.objectContaining({ ID: tiny.id, Name: 'm1.tiny', RAM: tiny.ram_mb, VCPUs: tiny.vcpus, Disk: tiny.disk_gb }));
  }, 60_000);

  test('server create --wait, list, show, stop, start, reboot, add/remove volume, console log show, delete --wait', async () => {
    const created = await cli.json(['server', 'create', '--flavor', 'm1.tiny', '--image', imageName, '--network', networkName, '--wait', 'cli-vm'], 180);
    expect(created).toMatchObject({ name: 'cli-vm', status: 'ACTIVE' });
    const id = created.id as string;
    expect(await v1(`/v1/servers/${id}`)).toMatchObject({ id, name: 'cli-vm', status: 'ACTIVE' });

    const list = await cli.json(['server', 'list']);
    expect(list).toContainEqual(expect.objectContaining({ ID: id, Name: 'cli-vm', Status: 'ACTIVE', Image: imageName, Flavor: 'm1.tiny' }));
    expect(JSON.stringify(list.find((s: any) => s.ID === id).Networks)).toContain(networkName);

    const shown = await cli.json(['server', 'show', 'cli-vm']);
    // -f json keeps Nova's key and number (the table shows "Running").
    expect(shown).toMatchObject({ id, name: 'cli-vm', status: 'ACTIVE', 'OS-EXT-STS:power_state': 1, 'OS-EXT-STS:vm_state': 'active' });
    expect(JSON.stringify(shown.addresses)).toMatch(/10\.78\.0\.\d+/);

    await cli.ok(['server', 'stop', 'cli-vm']);
    await until('cli-vm SHUTOFF', () => v1(`/v1/servers/${id}`), (s) => s.status === 'SHUTOFF' && s.task_state === null);
    expect(await cli.json(['server', 'show', 'cli-vm'])).toMatchObject({ status: 'SHUTOFF', 'OS-EXT-STS:power_state': 4, 'OS-EXT-STS:vm_state': 'stopped' });

    await cli.ok(['server', 'start', 'cli-vm']);
    await until('cli-vm ACTIVE', () => v1(`/v1/servers/${id}`), (s) => s.status === 'ACTIVE' && s.task_state === null);
    expect(await cli.json(['server', 'show', 'cli-vm'])).toMatchObject({ status: 'ACTIVE' });

    await cli.ok(['server', 'reboot', '--wait', 'cli-vm'], 120);
    expect(await cli.json(['server', 'show', 'cli-vm'])).toMatchObject({ status: 'ACTIVE' });

    const vol = await cli.json(['volume', 'create', '--size', '1', 'cli-data']);
    await until('cli-data available', () => v1(`/v1/volumes/${vol.id}`), (v) => v.status === 'available');
    const attached = await cli.json(['server', 'add', 'volume', 'cli-vm', 'cli-data']);
    expect(attached).toMatchObject({ 'Server ID': id, 'Volume ID': vol.id, Device: '/dev/vdb' });
    await until('cli-data in-use', () => v1(`/v1/volumes/${vol.id}`), (v) => v.status === 'in-use');
    const inUse = await cli.json(['volume', 'show', 'cli-data']);
    expect(inUse).toMatchObject({ status: 'in-use' });
    expect(inUse.attachments).toEqual([expect.objectContaining({ server_id: id, device: '/dev/vdb' })]);
    const volumes = await cli.json(['volume', 'list']);
    // -f json gives the attachments themselves; the table names the server (through Nova's servers/detail).
    expect(volumes.find((v: any) => v.ID === vol.id)['Attached to']).toEqual([expect.objectContaining({ server_id: id, device: '/dev/vdb' })]);
    expect(await cli.ok(['volume', 'list', '-f', 'table', '-c', 'Name', '-c', 'Attached to'])).toContain('Attached to cli-vm on /dev/vdb');

    await cli.ok(['server', 'remove', 'volume', 'cli-vm', 'cli-data']);
    await until('cli-data available again', () => v1(`/v1/volumes/${vol.id}`), (v) => v.status === 'available');
    expect(await cli.json(['volume', 'show', 'cli-data'])).toMatchObject({ status: 'available', attachments: [] });

    const consoleLog = await cli.ok(['console', 'log', 'show', 'cli-vm']);
    const v1Console = (await v1(`/v1/servers/${id}/console`)).output as string;
    expect(consoleLog.trim()).toBe(v1Console.trim());

    await cli.ok(['server', 'delete', '--wait', 'cli-vm'], 150);
    expect((await t.call('GET', `/v1/servers/${id}`, { token: admin })).status).toBe(404);
    const gone = await cli.run(['server', 'show', 'cli-vm']);
    expect(gone.code).toBe(1);
    expect(gone.stderr).toMatch(/No Server found for cli-vm/);
    noTraceback(gone);

    await cli.ok(['volume', 'delete', 'cli-data']);
  }, 600_000);

  test('a bad request prints the service’s readable error: server create --flavor nosuch', async () => {
    const r = await cli.run(['server', 'create', '--flavor', 'nosuch', '--image', imageName, '--network', networkName, 'bad-vm']);
    expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 1, stderr: expect.stringMatching(/nosuch/) });
    expect(r.stderr).toMatch(/No Flavor found for nosuch|Flavor nosuch could not be found/);
    noTraceback(r);
    expect((await v1('/v1/servers')).servers.map((s: any) => s.name)).not.toContain('bad-vm');
  }, 60_000);
});

test('openstacksdk: the core flow through the proxies (test/openstack/sdk_flow.py)', async () => {
  const image = path.join(cli.home, 'sdk.img');
  fs.writeFileSync(image, crypto.randomBytes(128 * 1024));
  const r = await cli.python(path.join(REPO, 'test', 'openstack', 'sdk_flow.py'), [], { SDK_FLOW_IMAGE_FILE: image, SDK_FLOW_FLAVOR: 'm1.tiny', SDK_FLOW_CIDR: '10.79.0.0/24' }, 480);
  if (r.code !== 0) throw new Error(describeRun(r));
  expect(r.stdout).toMatch(/^sdk_flow: ok/m);
  // Everything it made, it removed.
  for (const [urlPath, key] of [['/v1/servers', 'servers'], ['/v1/volumes', 'volumes'], ['/v1/images', 'images'], ['/v1/networks', 'networks']] as const) {
    expect((await v1(urlPath))[key].map((x: any) => x.name)).not.toContain('sdk-flow');
  }
}, 600_000);
