/**
 * What one server's show costs the database layer, in this process: `getWithRelations` as the API
 * runs it (a prepared statement, Database.prepared), against the same statement sent through knex
 * (parsed and planned by the database every time, as every show was before), on PostgreSQL and
 * PGlite, with 2,000 seeded servers, one show after another. Prints wall time and this process's
 * CPU per show (PGlite's thread included).
 *
 *   npm run bench:show
 *   BENCH_ENGINES=pglite BENCH_SHOWS=3000 npm run bench:show
 */
import * as flavors from '../db/repositories/flavors';
import * as projects from '../db/repositories/projects';
import * as servers from '../db/repositories/servers';
import * as users from '../db/repositories/users';
import { engines } from '../test/support/databases';
import { seedServers } from '../test/support/seed-servers';
import { runBench } from './run';

const ENGINES = (process.env.BENCH_ENGINES ?? 'postgres,pglite').split(',');
const SHOWS = Number(process.env.BENCH_SHOWS ?? 1500);
const WARM = 300;

async function main(): Promise<void> {
  console.log(`bench:show — ${SHOWS} shows of 2,000 seeded servers, one after another, after ${WARM} to warm up`);
  for (const engine of engines.filter((e) => ENGINES.includes(e.name))) {
    const t = await engine.create();
    try {
      const db = t.db;
      const project = await projects.create(db, { name: 'bench' });
      const user = await users.create(db, { name: 'bench', passwordHash: 'x' });
      const flavor = await flavors.create(db, { name: 'bench', vcpus: 1, ramMb: 64, diskGb: 1 });
      const ids = await seedServers(db, { projectId: project.id, userId: user.id, flavorId: flavor.id, host: 'bench' }, 2000);
      // The statement's text, as getWithRelations sends it.
      let sql = '';
      const capture = (q: { sql: string }) => void (sql ||= q.sql);
      db.on('query', capture);
      await servers.getWithRelations(db, ids[0]!);
      db.off('query', capture);
      const ways: Array<[string, (id: string) => Promise<unknown>]> = [
        ['through knex, planned every time (before)', (id) => db.raw(sql.replace('$1', '?'), [id])],
        ['getWithRelations, prepared (now)', (id) => servers.getWithRelations(db, id)],
      ];
      for (const [name, show] of ways) {
        for (let i = 0; i < WARM; i++) await show(ids[(i * 7919) % ids.length]!);
        const cpu = process.cpuUsage();
        const started = performance.now();
        for (let i = 0; i < SHOWS; i++) await show(ids[(i * 104729) % ids.length]!);
        const used = process.cpuUsage(cpu);
        console.log(`${engine.name.padEnd(9)} ${name.padEnd(42)} ${((performance.now() - started) / SHOWS).toFixed(3)} ms a show, CPU ${((used.user + used.system) / 1000 / SHOWS).toFixed(3)} ms`);
      }
    } finally {
      await t.dispose();
    }
  }
}

runBench(main);
