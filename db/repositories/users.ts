/** Users. Passwords arrive already hashed; only getByName returns the hash (for authentication). */
import { NotFound } from '../../core/errors';
import { atDbEdge, conflict, insertedRow, missing } from '../errors';
import { isUuid, newId } from '../ids';
import { byName, paginate } from '../pagination';
import type { Page, PageRequest, Queryable } from '../types';

export interface User {
  id: string;
  name: string;
  enabled: boolean;
  defaultProjectId: string | null;
  createdAt: Date;
  updatedAt: Date;
}

/** A user with the stored password hash: only for checking a password. */
export interface UserWithPasswordHash extends User {
  passwordHash: string;
}

interface UserRow {
  id: string;
  name: string;
  enabled: boolean;
  default_project_id: string | null;
  created_at: Date;
  updated_at: Date;
}

interface UserRowWithHash extends UserRow {
  password_hash: string;
}

const COLUMNS = ['id', 'name', 'enabled', 'default_project_id', 'created_at', 'updated_at'];

function toUser(row: UserRow): User {
  return {
    id: row.id,
    name: row.name,
    enabled: row.enabled,
    defaultProjectId: row.default_project_id,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
  };
}

const constraintErrors = (name: string | undefined, defaultProjectId: string | null | undefined) => ({
  users_name_key: conflict('name', `a user named '${name ?? ''}' already exists`),
  users_default_project_id_fkey: missing('defaultProjectId', `project '${defaultProjectId ?? ''}' not found`),
});
const notFound = (id: string) => new NotFound(`user '${id}' not found`);

export interface NewUser {
  id?: string;
  name: string;
  /** Already hashed by the caller (identity activities own the hashing scheme). */
  passwordHash: string;
  enabled?: boolean;
  defaultProjectId?: string | null;
}

/** Throws Conflict when the name is taken, NotFound when the default project does not exist. */
export async function create(db: Queryable, input: NewUser): Promise<User> {
  const rows = await atDbEdge<UserRow[]>(
    () =>
      db('users')
        .insert({
          id: input.id ?? newId(),
          name: input.name,
          password_hash: input.passwordHash,
          enabled: input.enabled ?? true,
          default_project_id: input.defaultProjectId ?? null,
        })
        .returning(COLUMNS),
    constraintErrors(input.name, input.defaultProjectId),
  );
  return toUser(insertedRow(rows));
}

export async function getById(db: Queryable, id: string): Promise<User | null> {
  if (!isUuid(id)) return null;
  const row = (await db('users').select(COLUMNS).where({ id }).first()) as UserRow | undefined;
  return row ? toUser(row) : null;
}

/** With the password hash, for authentication. Disabled users are returned too: the caller decides. */
export async function getByName(db: Queryable, name: string): Promise<UserWithPasswordHash | null> {
  const row = (await db('users')
    .select([...COLUMNS, 'password_hash'])
    .where({ name })
    .first()) as UserRowWithHash | undefined;
  return row ? { ...toUser(row), passwordHash: row.password_hash } : null;
}

/** Ordered by name. */
export function list(db: Queryable, page: PageRequest): Promise<Page<User>> {
  return paginate(db, db('users').select(COLUMNS), byName, page, toUser);
}

export interface UserChanges {
  name?: string;
  passwordHash?: string;
  enabled?: boolean;
  defaultProjectId?: string | null;
}

/** Throws NotFound (user or default project), or Conflict when renaming onto a taken name. */
export async function update(db: Queryable, id: string, changes: UserChanges): Promise<User> {
  if (!isUuid(id)) throw notFound(id);
  const set: Record<string, unknown> = { updated_at: db.fn.now() };
  if (changes.name !== undefined) set.name = changes.name;
  if (changes.passwordHash !== undefined) set.password_hash = changes.passwordHash;
  if (changes.enabled !== undefined) set.enabled = changes.enabled;
  if (changes.defaultProjectId !== undefined) set.default_project_id = changes.defaultProjectId;
  const [row] = await atDbEdge<UserRow[]>(
    () => db('users').where({ id }).update(set).returning(COLUMNS),
    constraintErrors(changes.name, changes.defaultProjectId),
  );
  if (!row) throw notFound(id);
  return toUser(row);
}

/** Deletes the user with its role assignments and tokens (cascade). Throws NotFound. */
export async function remove(db: Queryable, id: string): Promise<void> {
  const count = isUuid(id) ? await db('users').where({ id }).delete() : 0;
  if (count === 0) throw notFound(id);
}

export { remove as delete };
