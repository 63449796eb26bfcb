/**
 * Many servers at once, written straight into the database (not through the API or workflows): each
 * ACTIVE on `host`, with one port on a /16 subnet, one attached volume and a finished create
 * operation, so list pages carry every relation they present. For the list-query test and bench:api.
 */
import { randomUUID } from 'node:crypto';
import type { Knex } from 'knex';
import * as networks from '../../db/repositories/networks';
import * as subnets from '../../db/repositories/subnets';

export interface SeedTarget {
  projectId: string;
  userId: string;
  flavorId: string;
  host: string;
}

const CHUNK = 500;

/** Inserts `count` servers (in chunks) and returns their ids, oldest first. */
export async function seedServers(db: Knex, target: SeedTarget, count: number): Promise<string[]> {
  const network = await networks.create(db, { projectId: target.projectId, name: `seed-${randomUUID().slice(0, 8)}` });
  const subnet = await subnets.create(db, { networkId: network.id, projectId: target.projectId, cidr: '10.128.0.0/16' });
  const ids: string[] = [];
  const start = Date.now() - count * 1000;
  for (let from = 0; from < count; from += CHUNK) {
    const rows = Array.from({ length: Math.min(CHUNK, count - from) }, (_, k) => {
      const i = from + k;
      const id = randomUUID();
      ids.push(id);
      const createdAt = new Date(start + i * 1000).toISOString();
      return { i, id, createdAt };
    });
    await db.transaction(async (trx) => {
      await trx('servers').insert(
        rows.map(({ i, id, createdAt }) => ({
          id,
          project_id: target.projectId,
          user_id: target.userId,
          name: `seed-${i}`,
          flavor_id: target.flavorId,
          image_id: null,
          status: 'ACTIVE',
          task_state: null,
          power_state: 'running',
          host: target.host,
          metadata: JSON.stringify({ seq: String(i) }),
          created_at: createdAt,
          updated_at: createdAt,
        })),
      );
      await trx('ports').insert(
        rows.map(({ i, id, createdAt }) => ({
          id: randomUUID(),
          project_id: target.projectId,
          network_id: network.id,
          subnet_id: subnet.id,
          mac: `fa:16:3e:${hex(i >> 16)}:${hex(i >> 8)}:${hex(i)}`,
          fixed_ip: `10.128.${((i + 2) >> 8) & 0xff}.${(i + 2) & 0xff}`,
          device_id: id,
          device_owner: 'compute',
          created_by_server: true,
          status: 'ACTIVE',
          created_at: createdAt,
        })),
      );
      await trx('volumes').insert(
        rows.map(({ i, id, createdAt }) => ({
          id: randomUUID(),
          project_id: target.projectId,
          name: `seed-${i}-vdb`,
          size_gb: 1,
          status: 'in-use',
          host: target.host,
          server_id: id,
          device: 'vdb',
          delete_on_termination: true,
          created_at: createdAt,
          updated_at: createdAt,
        })),
      );
      await trx('operations').insert(
        rows.map(({ id, createdAt }) => ({
          id: randomUUID(),
          kind: 'server.create',
          resource_type: 'server',
          resource_id: id,
          project_id: target.projectId,
          workflow_id: `server:${id}:create`,
          run_id: null,
          status: 'succeeded',
          created_at: createdAt,
          updated_at: createdAt,
        })),
      );
    });
  }
  await db.raw('analyze');
  return ids;
}

function hex(n: number): string {
  return (n & 0xff).toString(16).padStart(2, '0');
}
