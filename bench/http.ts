import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import pg from 'pg';
/** The benches' JSON client of the API: `call(method, path, token?, body?)` → `{ status, body }`. */
export function jsonCaller(api: string) {
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- answers of many shapes, read loosely by benches
  return async (method: string, url: string, token?: string, body?: unknown): Promise<{ status: number; body: any }> => {
    const res = await fetch(`${api}${url}`, {
      method,
      headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...(body ? { 'content-type': 'application/json' } : {}) },
      ...(body ? { body: JSON.stringify(body) } : {}),
    });
    const text = await res.text();
    return { status: res.status, body: text ? JSON.parse(text) : undefined };
  };
}

/**
 * What every server bench needs: an admin token, a 1 MiB raw image, a network with a /16 subnet
 * (room for thousands of ports) and the m1.tiny flavor; returns the token and a server create body.
 */
export async function seedServerTemplate(api: string, password: string, cidr: string) {
  const call = jsonCaller(api);
  const token = (await call('POST', '/v1/auth/tokens', undefined, { username: 'admin', password, project: 'admin' })).body.token as string;
  const image = (await call('POST', '/v1/images', token, { name: 'bench', disk_format: 'raw' })).body;
  const upload = await fetch(`${api}/v1/images/${image.id}/file`, {
    method: 'PUT',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/octet-stream' },
    body: randomBytes(1024 * 1024),
  });
  if (!upload.ok) throw new Error(`image upload: ${upload.status} ${await upload.text()}`);
  const network = (await call('POST', '/v1/networks', token, { name: 'bench' })).body;
  await call('POST', '/v1/subnets', token, { network_id: network.id, cidr });
  const flavor = (await call('GET', '/v1/flavors', token)).body.flavors.find((f: { name: string }) => f.name === 'm1.tiny');
  return { token, call, template: { name: 'bench', flavor_id: flavor.id as string, image_id: image.id as string, networks: [{ network_id: network.id as string }] } };
}

/** A fresh PostgreSQL database on STRATUS_TEST_PG_URL (default postgres://postgres@127.0.0.1:5432/postgres), and how to drop it. */
export async function freshPostgres(): Promise<{ url: string; drop: () => Promise<void> }> {
  const admin = process.env.STRATUS_TEST_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
  const name = `stratus_bench_${randomBytes(4).toString('hex')}`;
  const run = async (sql: string) => {
    const c = new pg.Client({ connectionString: admin });
    await c.connect();
    try {
      await c.query(sql);
    } finally {
      await c.end();
    }
  };
  await run(`create database "${name}"`);
  const u = new URL(admin);
  u.pathname = `/${name}`;
  return { url: u.toString(), drop: () => run(`drop database if exists "${name}" with (force)`) };
}

/** CPU seconds used so far, by pid, of this process, its child processes and the database's backends. */
export type CpuReading = Map<number, { kind: 'node' | 'temporal' | 'postgres'; seconds: number }>;

/**
 * CPU seconds used so far by this process, its child processes (the embedded Temporal server) and
 * the PostgreSQL backends serving `database` (when given), read from /proc. On 2 shared cores the
 * wall-clock rate moves with whatever else runs; CPU per unit of work moves much less.
 */
export function cpuSeconds(database?: string): CpuReading {
  const tick = 100; // USER_HZ on Linux
  const out: CpuReading = new Map();
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    let stat: string;
    let cmdline: string;
    try {
      stat = fs.readFileSync(`/proc/${entry}/stat`, 'utf8');
      cmdline = fs.readFileSync(`/proc/${entry}/cmdline`, 'utf8').replace(/\0/g, ' ');
    } catch {
      continue; // gone meanwhile
    }
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const pid = Number(entry);
    const seconds = (Number(fields[11]) + Number(fields[12])) / tick;
    if (pid === process.pid) out.set(pid, { kind: 'node', seconds });
    else if (Number(fields[1]) === process.pid && cmdline.includes('temporal')) out.set(pid, { kind: 'temporal', seconds });
    else if (database && cmdline.startsWith('postgres:') && cmdline.includes(` ${database} `)) out.set(pid, { kind: 'postgres', seconds });
  }
  return out;
}

/** CPU milliseconds per unit of work between two readings, by kind (a process that ended meanwhile is not counted). */
export function cpuPer(before: CpuReading, after: CpuReading, units: number): string {
  const ms = { node: 0, temporal: 0, postgres: 0 };
  for (const [pid, now] of after) ms[now.kind] += ((now.seconds - (before.get(pid)?.seconds ?? 0)) * 1000) / units;
  const total = ms.node + ms.temporal + ms.postgres;
  return `${total.toFixed(0)} ms (node ${ms.node.toFixed(0)}, temporal ${ms.temporal.toFixed(0)}, postgres ${ms.postgres.toFixed(0)})`;
}
