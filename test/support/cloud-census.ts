/**
 * Everything a server can hold, in the database (ports, host claims, live volumes) and on the host
 * (domains, pool volumes, networks, DHCP reservations), so "nothing leaked" is one assertion:
 * `expect(await cloudCensus(t, hv)).toEqual(before)`.
 */
import { openHypervisor, type Hypervisor } from '../../libvirt';
import { startTestCloud, type TestCloud } from './cloud';
import { census } from './libvirt-census';
import { createNetwork, flavorId, uploadRawImage } from './stratus-fixtures';

export async function cloudCensus(t: TestCloud, hv: Hypervisor) {
  const db = t.cloud.db!;
  const rows = async (table: string) => (await db(table).select('*')).map((r: Record<string, unknown>) => JSON.stringify(r)).sort();
  return {
    ports: await rows('ports'),
    claims: await rows('host_claims'),
    volumes: (await db('volumes').whereNot({ status: 'deleted' }).select('id', 'status', 'server_id')).map((r: unknown) => JSON.stringify(r)).sort(),
    host: await census(hv, t.config.host.storagePool),
  };
}

/** What most server tests start from: a cloud, an admin token, the test driver, an image, m1.tiny and a network. */
export interface ServerFixture {
  t: TestCloud;
  admin: string;
  hv: Hypervisor;
  imageId: string;
  tiny: string;
  net: { networkId: string; subnetId: string };
}

export async function startServerFixture(
  options: Pick<NonNullable<Parameters<typeof startTestCloud>[0]>, 'faults' | 'env' | 'hosts'> & { cidr: string },
): Promise<ServerFixture> {
  const { cidr, ...cloudOptions } = options;
  const t = await startTestCloud(cloudOptions);
  const admin = await t.login();
  const hv = await openHypervisor('test:///default');
  return { t, admin, hv, imageId: await uploadRawImage(t, admin), tiny: await flavorId(t, admin), net: await createNetwork(t, admin, cidr) };
}

export async function stopServerFixture(f: Partial<ServerFixture>): Promise<void> {
  await f.hv?.close();
  await f.t?.stop();
}
