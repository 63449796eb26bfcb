/** Flavors (Nova): the sizes a server can have. Migration 0003 seeds m1.tiny, m1.small, m1.medium. */
import { Conflict, InvalidInput, NotFound } from '../../core/errors';
import { atDbEdge, conflict, insertedRow } from '../errors';
import { isUuid, newId } from '../ids';
import { byName, encodeCursor, paginate } from '../pagination';
import type { Page, PageRequest, Queryable } from '../types';

export interface Flavor {
  id: string;
  name: string;
  vcpus: number;
  ramMb: number;
  diskGb: number;
  isPublic: boolean;
  createdAt: Date;
}

interface FlavorRow {
  id: string;
  name: string;
  vcpus: number;
  ram_mb: number;
  disk_gb: number;
  is_public: boolean;
  created_at: Date;
}

const COLUMNS = ['id', 'name', 'vcpus', 'ram_mb', 'disk_gb', 'is_public', 'created_at'];

function toFlavor(row: FlavorRow): Flavor {
  return {
    id: row.id,
    name: row.name,
    vcpus: row.vcpus,
    ramMb: row.ram_mb,
    diskGb: row.disk_gb,
    isPublic: row.is_public,
    createdAt: row.created_at,
  };
}

const invalid = (field: string, rule: string) => () => new InvalidInput(`${field} must be ${rule}`, [{ field, message: `must be ${rule}` }]);
const notFound = (id: string) => new NotFound(`flavor '${id}' not found`);

export interface NewFlavor {
  id?: string;
  name: string;
  vcpus: number;
  ramMb: number;
  diskGb: number;
  isPublic?: boolean;
}

/** Throws Conflict when the name is taken, InvalidInput (field vcpus, ram_mb or disk_gb) for a bad size. */
export async function create(db: Queryable, input: NewFlavor): Promise<Flavor> {
  for (const [field, value, min] of [['vcpus', input.vcpus, 1], ['ram_mb', input.ramMb, 1], ['disk_gb', input.diskGb, 0]] as const) {
    if (!Number.isSafeInteger(value) || value < min) throw invalid(field, min === 0 ? 'an integer >= 0' : 'an integer > 0')();
  }
  const rows = await atDbEdge<FlavorRow[]>(
    () =>
      db('flavors')
        .insert({
          id: input.id ?? newId(),
          name: input.name,
          vcpus: input.vcpus,
          ram_mb: input.ramMb,
          disk_gb: input.diskGb,
          is_public: input.isPublic ?? true,
        })
        .returning(COLUMNS),
    {
      flavors_name_key: conflict('name', `a flavor named '${input.name}' already exists`),
      flavors_pkey: conflict('id', `flavor '${input.id ?? ''}' already exists`),
      flavors_vcpus_check: invalid('vcpus', '> 0'),
      flavors_ram_mb_check: invalid('ram_mb', '> 0'),
      flavors_disk_gb_check: invalid('disk_gb', '>= 0'),
    },
  );
  return toFlavor(insertedRow(rows));
}

export async function get(db: Queryable, id: string): Promise<Flavor | null> {
  if (!isUuid(id)) return null;
  const row = (await db('flavors').select(COLUMNS).where({ id }).first()) as FlavorRow | undefined;
  return row ? toFlavor(row) : null;
}

/** The list cursor that continues after flavor `id` (flavors are listed by their unique name); null when there is none. */
export async function cursorAfter(db: Queryable, id: string): Promise<string | null> {
  const flavor = await get(db, id);
  return flavor ? encodeCursor([flavor.name]) : null;
}

export async function getByName(db: Queryable, name: string): Promise<Flavor | null> {
  const row = (await db('flavors').select(COLUMNS).where({ name }).first()) as FlavorRow | undefined;
  return row ? toFlavor(row) : null;
}

/** Ordered by name. */
export function list(db: Queryable, page: PageRequest & { isPublic?: boolean }): Promise<Page<Flavor>> {
  const q = db('flavors').select(COLUMNS);
  if (page.isPublic !== undefined) q.where('is_public', page.isPublic);
  return paginate(db, q, byName, page, toFlavor);
}

/**
 * Deletes the flavor. Throws NotFound, or Conflict while a server that is not DELETED uses it
 * (DELETED servers keep naming it). The flavor row is locked first (FOR UPDATE, against the
 * FOR KEY SHARE of servers.create), so a server being created with this flavor meanwhile either
 * commits first and is counted here, or waits and then finds the flavor gone.
 */
export async function remove(db: Queryable, id: string): Promise<void> {
  if (!isUuid(id)) throw notFound(id);
  await db.transaction(async (trx) => {
    const flavor = (await trx('flavors').select('name').where({ id }).forUpdate().first()) as { name: string } | undefined;
    if (!flavor) throw notFound(id);
    const inUse = (await trx('servers').where({ flavor_id: id }).whereNot('status', 'DELETED').count<Array<{ count: number }>>('* as count'))[0]
      ?.count;
    if (inUse) throw new Conflict(`flavor '${flavor.name}' is used by ${inUse} server(s)`);
    await trx('flavors').where({ id }).delete();
  });
}

export { remove as delete };
