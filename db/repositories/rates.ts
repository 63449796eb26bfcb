/**
 * Rates: the price of one unit of usage, in force from `effective_from` until `effective_to` (null:
 * still in force). Per unit and currency the rates form one timeline without overlaps: a new rate
 * must start after the latest one started, and ends it. Writers of one timeline are serialized by a
 * transaction-scoped advisory lock, so two concurrent creations cannot both end the same rate.
 * Prices are numeric(30, 9) in the database and decimal strings here: never floats.
 */
import { Conflict, InvalidInput, NotFound } from '../../core/errors';
import { insertedRow } from '../errors';
import { isUuid, newId } from '../ids';
import type { Knex } from 'knex';
import type { Queryable } from '../types';

export const RATE_UNITS = ['vcpu_hour', 'ram_gb_hour', 'disk_gb_hour', 'volume_gb_hour', 'cpu_second', 'io_gb'] as const;
export type RateUnit = (typeof RATE_UNITS)[number];

export interface Rate {
  id: string;
  unit: RateUnit;
  currency: string;
  /** Decimal string, up to 9 fractional digits, e.g. '0.012500000'. */
  price: string;
  effectiveFrom: Date;
  effectiveTo: Date | null;
  createdAt: Date;
}

interface RateRow {
  id: string;
  unit: RateUnit;
  currency: string;
  price: string;
  effective_from: Date;
  effective_to: Date | null;
  created_at: Date;
}

const COLUMNS = ['id', 'unit', 'currency', 'price', 'effective_from', 'effective_to', 'created_at'];
const RATES_LOCK_CLASS = 0x5241; // 'RA'

function toRate(r: RateRow): Rate {
  return {
    id: r.id,
    unit: r.unit,
    currency: r.currency,
    price: String(r.price),
    effectiveFrom: r.effective_from,
    effectiveTo: r.effective_to,
    createdAt: r.created_at,
  };
}

const select = (db: Queryable) => db('rates').select([...COLUMNS.filter((c) => c !== 'price'), db.raw('price::text as price')]);

export const PRICE_RE = /^\d{1,21}(\.\d{1,9})?$/;

/**
 * When a rate may start: from 1970 through 9999. Earlier years are no price anyone means, and not
 * every one comes back as stored (node-pg reads the year 17 as 1917; PGlite as an Invalid Date).
 */
const EARLIEST_START = Date.UTC(1970, 0, 1);
const END_OF_9999 = Date.UTC(10_000, 0, 1);

export async function create(db: Knex, input: { unit: RateUnit; currency: string; price: string; effectiveFrom: Date }): Promise<Rate> {
  if (!PRICE_RE.test(input.price)) {
    throw new InvalidInput('price must be a decimal string with at most 9 fractional digits', [{ field: 'price', message: 'e.g. "0.0125"' }]);
  }
  const start = input.effectiveFrom.getTime();
  if (!(start >= EARLIEST_START && start < END_OF_9999)) {
    throw new InvalidInput('effective_from must be from 1970-01-01T00:00:00Z through 9999-12-31T23:59:59Z', [{ field: 'effective_from', message: 'a date-time from 1970 through 9999' }]);
  }
  return db.transaction(async (trx) => {
    await trx.raw('select pg_advisory_xact_lock(?::int, hashtext(?))', [RATES_LOCK_CLASS, `${input.unit}/${input.currency}`]);
    const latest = (await select(trx).where({ unit: input.unit, currency: input.currency }).orderBy('effective_from', 'desc').first()) as RateRow | undefined;
    if (latest && latest.effective_from.getTime() >= input.effectiveFrom.getTime()) {
      throw new Conflict(`a ${input.unit} rate in ${input.currency} already starts at or after ${input.effectiveFrom.toISOString()}`, [
        { field: 'effective_from', message: `must be after ${latest.effective_from.toISOString()}` },
      ]);
    }
    if (latest && (latest.effective_to === null || latest.effective_to > input.effectiveFrom)) {
      await trx('rates').where({ id: latest.id }).update({ effective_to: input.effectiveFrom });
    }
    const rows = (await trx('rates')
      .insert({ id: newId(), unit: input.unit, currency: input.currency, price: input.price, effective_from: input.effectiveFrom })
      .returning('id')) as Array<{ id: string }>;
    return (await get(trx, insertedRow(rows).id))!;
  });
}

export async function get(db: Queryable, id: string): Promise<Rate | null> {
  if (!isUuid(id)) return null;
  const row = (await select(db).where({ id }).first()) as RateRow | undefined;
  return row ? toRate(row) : null;
}

/** Every rate, by unit, currency and start. */
export async function list(db: Queryable): Promise<Rate[]> {
  return ((await select(db).orderBy(['unit', 'currency', 'effective_from'])) as RateRow[]).map(toRate);
}

/** Rates in force at some instant of [from, to). */
export async function overlapping(db: Queryable, from: Date, to: Date): Promise<Rate[]> {
  const rows = (await select(db)
    .where('effective_from', '<', to)
    .where((w) => {
      void w.whereNull('effective_to').orWhere('effective_to', '>', from);
    })
    .orderBy(['unit', 'currency', 'effective_from'])) as RateRow[];
  return rows.map(toRate);
}

export async function remove(db: Queryable, id: string): Promise<void> {
  const n = isUuid(id) ? await db('rates').where({ id }).del() : 0;
  if (n === 0) throw new NotFound(`rate ${id} not found`);
}
