/**
 * The data layer: open the database, run migrations, and one repository module per table group.
 *   const db = await openDatabase(config.database, log); await migrateLatest(db);
 *   await db.transaction(async (trx) => { const p = await projects.create(trx, { name }); … });
 */
export { openDatabase, redactUrl, type Database, type DatabaseConfig, type Engine } from './connect';
export { migrateLatest, migrateRollback, migrationStatus, type MigrationResult } from './migrate';
export { atDbEdge, isUniqueViolation, translateDbError } from './errors';
export { MAX_PAGE_SIZE } from './pagination';
export type { Page, PageRequest, Queryable } from './types';
export { newId, isUuid } from './ids';
export * as projects from './repositories/projects';
export * as users from './repositories/users';
export * as roles from './repositories/roles';
export * as tokens from './repositories/tokens';
export * as hosts from './repositories/hosts';
export type { Project } from './repositories/projects';
export type { User, UserWithPasswordHash } from './repositories/users';
export type { RoleAssignment, RoleName } from './repositories/roles';
export type { Token, ValidToken } from './repositories/tokens';
export type { Host, HostStatus, Heartbeat } from './repositories/hosts';
