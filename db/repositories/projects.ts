/** Projects (Keystone projects / tenants). */
import { NotFound } from '../../core/errors';
import { atDbEdge, conflict, insertedRow } from '../errors';
import { isUuid, newId } from '../ids';
import { byName, paginate } from '../pagination';
import type { Page, PageRequest, Queryable } from '../types';

export interface Project {
  id: string;
  name: string;
  description: string;
  enabled: boolean;
  createdAt: Date;
  updatedAt: Date;
}

interface ProjectRow {
  id: string;
  name: string;
  description: string;
  enabled: boolean;
  created_at: Date;
  updated_at: Date;
}

const COLUMNS = ['id', 'name', 'description', 'enabled', 'created_at', 'updated_at'];

function toProject(row: ProjectRow): Project {
  return {
    id: row.id,
    name: row.name,
    description: row.description,
    enabled: row.enabled,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
  };
}

const nameTaken = (name: string) => ({ projects_name_key: conflict('name', `a project named '${name}' already exists`) });
const notFound = (id: string) => new NotFound(`project '${id}' not found`);

export interface NewProject {
  /** Defaults to a new uuid; pass one to make a retried create land on the same id. */
  id?: string;
  name: string;
  description?: string;
  enabled?: boolean;
}

/** Throws Conflict when the name is taken. */
export async function create(db: Queryable, input: NewProject): Promise<Project> {
  const rows = await atDbEdge<ProjectRow[]>(
    () =>
      db('projects')
        .insert({
          id: input.id ?? newId(),
          name: input.name,
          description: input.description ?? '',
          enabled: input.enabled ?? true,
        })
        .returning(COLUMNS),
    nameTaken(input.name),
  );
  return toProject(insertedRow(rows));
}

export async function getById(db: Queryable, id: string): Promise<Project | null> {
  if (!isUuid(id)) return null;
  const row = (await db('projects').select(COLUMNS).where({ id }).first()) as ProjectRow | undefined;
  return row ? toProject(row) : null;
}

export async function getByName(db: Queryable, name: string): Promise<Project | null> {
  const row = (await db('projects').select(COLUMNS).where({ name }).first()) as ProjectRow | undefined;
  return row ? toProject(row) : null;
}

/** Ordered by name. */
export function list(db: Queryable, page: PageRequest): Promise<Page<Project>> {
  return paginate(db, db('projects').select(COLUMNS), byName, page, toProject);
}

export interface ProjectChanges {
  name?: string;
  description?: string;
  enabled?: boolean;
}

/** Throws NotFound, or Conflict when renaming onto a taken name. */
export async function update(db: Queryable, id: string, changes: ProjectChanges): Promise<Project> {
  if (!isUuid(id)) throw notFound(id);
  const set: Record<string, unknown> = { updated_at: db.fn.now() };
  if (changes.name !== undefined) set.name = changes.name;
  if (changes.description !== undefined) set.description = changes.description;
  if (changes.enabled !== undefined) set.enabled = changes.enabled;
  const [row] = await atDbEdge<ProjectRow[]>(
    () => db('projects').where({ id }).update(set).returning(COLUMNS),
    nameTaken(changes.name ?? ''),
  );
  if (!row) throw notFound(id);
  return toProject(row);
}

/** Deletes the project with its role assignments and tokens (cascade). Throws NotFound. */
export async function remove(db: Queryable, id: string): Promise<void> {
  // Servers, volumes, networks and ports of the project still referencing it make this a Conflict.
  const count = isUuid(id)
    ? await atDbEdge(() => db('projects').where({ id }).delete())
    : 0;
  if (count === 0) throw notFound(id);
}

export { remove as delete };
