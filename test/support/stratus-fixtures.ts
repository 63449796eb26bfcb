/** Resources most server tests need, made through the API like a user would. */
import { randomBytes } from 'node:crypto';
import type { TestCloud } from './cloud';

/** What the fixtures below need of a cloud: its API (a TestCloud, or any Stratus API: test/chaos). */
export type ApiOf = Pick<TestCloud, 'call' | 'baseUrl'>;

/** Uploads a small raw image and returns its id once it is active. */
export async function uploadRawImage(t: ApiOf, token: string, sizeBytes = 64 * 1024): Promise<string> {
  const created = await t.call('POST', '/v1/images', { token, body: { name: `img-${randomBytes(3).toString('hex')}`, disk_format: 'raw' } });
  if (created.status !== 201) throw new Error(`image create: ${created.status} ${JSON.stringify(created.body)}`);
  const res = await fetch(`${t.baseUrl}/v1/images/${created.body.id}/file`, {
    method: 'PUT',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/octet-stream' },
    body: randomBytes(sizeBytes),
  });
  if (res.status >= 300) throw new Error(`image upload: ${res.status} ${await res.text()}`);
  return created.body.id as string;
}

/** A network with one IPv4 subnet; returns both ids. */
export async function createNetwork(t: ApiOf, token: string, cidr = '10.20.0.0/24'): Promise<{ networkId: string; subnetId: string }> {
  const net = await t.call('POST', '/v1/networks', { token, body: { name: `net-${randomBytes(3).toString('hex')}` } });
  if (net.status !== 201) throw new Error(`network create: ${net.status} ${JSON.stringify(net.body)}`);
  const sub = await t.call('POST', '/v1/subnets', { token, body: { network_id: net.body.id, cidr } });
  if (sub.status !== 201) throw new Error(`subnet create: ${sub.status} ${JSON.stringify(sub.body)}`);
  return { networkId: net.body.id, subnetId: sub.body.id };
}

export async function flavorId(t: ApiOf, token: string, name = 'm1.tiny'): Promise<string> {
  const res = await t.call('GET', '/v1/flavors', { token });
  const flavor = (res.body.flavors as Array<{ id: string; name: string }>).find((f) => f.name === name);
  if (!flavor) throw new Error(`no flavor ${name}`);
  return flavor.id;
}

/** Waits until the server leaves BUILD (or a task): returns its final body. */
export async function waitSettled(t: TestCloud, token: string, serverId: string, timeoutMs = 60_000): Promise<any> {
  const res = await t.waitFor(`/v1/servers/${serverId}`, token, (r) => r.status === 200 && r.body.status !== 'BUILD' && r.body.task_state === null, timeoutMs);
  return res.body;
}

/** Waits until GET on the server answers 404 (deleted). */
export async function waitGone(t: TestCloud, token: string, serverId: string, timeoutMs = 60_000): Promise<void> {
  await t.waitFor(`/v1/servers/${serverId}`, token, (r) => r.status === 404, timeoutMs);
}
