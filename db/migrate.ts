/** Runs the migrations listed in db/migrations/index.ts (an in-code knex migration source). */
import type { Knex } from 'knex';
import { migrations, type NamedMigration } from './migrations';

const source: Knex.MigrationSource<NamedMigration> = {
  getMigrations: () => Promise.resolve([...migrations]),
  getMigrationName: (m) => m.name,
  getMigration: (m) => Promise.resolve(m.migration),
};

const migratorConfig: Knex.MigratorConfig = {
  migrationSource: source,
  tableName: 'knex_migrations',
  disableTransactions: false,
};

/** Key of the advisory lock that serializes migration runs (any constant shared by all Stratus processes). */
const MIGRATION_LOCK_KEY = 0x5354_5241; // 'STRA'

export interface MigrationResult {
  /** The batch number knex recorded (0 when there was nothing to do). */
  batch: number;
  /** Names of the migrations applied (or rolled back), in the order they ran. */
  names: string[];
}

/**
 * Runs `work` with a migrator inside one transaction holding an advisory lock. knex's own bookkeeping
 * (creating knex_migrations and its lock row) is check-then-create, so two processes starting at once
 * could both create it; the lock makes the second wait and then find nothing to do. One transaction
 * also means a failing migration leaves nothing half-applied (PostgreSQL DDL is transactional).
 */
function withMigrator<T>(db: Knex, work: (migrator: Knex.Migrator) => Promise<T>): Promise<T> {
  return db.transaction(async (trx) => {
    await trx.raw('select pg_advisory_xact_lock(?)', [MIGRATION_LOCK_KEY]);
    return work(trx.migrate);
  });
}

/** Applies every pending migration. Running it again is a no-op. */
export async function migrateLatest(db: Knex): Promise<MigrationResult> {
  const [batch, names] = (await withMigrator(db, (m) => m.latest(migratorConfig))) as [number, string[]];
  return { batch: names.length > 0 ? batch : 0, names };
}

/** Rolls back the last batch, or every migration with `{ all: true }`. */
export async function migrateRollback(db: Knex, options: { all?: boolean } = {}): Promise<MigrationResult> {
  const [batch, names] = (await withMigrator(db, (m) => m.rollback(migratorConfig, options.all ?? false))) as [number, string[]];
  return { batch, names };
}

/** Which migrations have run and which are pending. */
export async function migrationStatus(db: Knex): Promise<{ applied: string[]; pending: string[] }> {
  const [applied, pending] = (await db.migrate.list(migratorConfig)) as [Array<{ name: string }>, NamedMigration[]];
  return { applied: applied.map((m) => m.name), pending: pending.map((m) => m.name) };
}
