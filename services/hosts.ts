/** Hypervisor hosts as their agents last reported them (admins only), and whether any is alive. */
import type { Knex } from 'knex';
import { NotFound } from '../core/errors';
import * as hosts from '../db/repositories/hosts';
import type { Page, PageRequest } from '../db/types';
import { requireAdmin, type AuthContext } from './identity';

export type Host = hosts.Host;

export function createHostService(db: Knex, heartbeatSeconds: number) {
  return {
    isAlive: (host: Host) => hosts.isAlive(host, heartbeatSeconds),
    list(auth: AuthContext, page: PageRequest): Promise<Page<Host>> {
      requireAdmin(auth);
      return hosts.list(db, page);
    },
    async get(auth: AuthContext, name: string): Promise<Host> {
      requireAdmin(auth);
      const host = await hosts.get(db, name);
      if (!host) throw new NotFound(`host ${name} not found`);
      return host;
    },
    /** For readiness: throws unless some host agent heartbeats. */
    async assertSomeAlive(): Promise<void> {
      const page = await hosts.list(db, { limit: 1000 });
      if (!page.items.some((h) => hosts.isAlive(h, heartbeatSeconds))) {
        throw new Error(page.items.length === 0 ? 'no host agent has registered yet' : 'no host agent heartbeat is recent');
      }
    },
  };
}
