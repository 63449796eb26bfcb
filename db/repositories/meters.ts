/** Server meters (Ceilometer): which meterServer workflow meters a server, and since when. */
import { InvalidInput } from '../../core/errors';
import { insertedRow } from '../errors';
import { isUuid } from '../ids';
import type { Queryable } from '../types';

export interface ServerMeter {
  serverId: string;
  workflowId: string;
  startedAt: Date;
  stoppedAt: Date | null;
}

interface ServerMeterRow {
  server_id: string;
  workflow_id: string;
  started_at: Date;
  stopped_at: Date | null;
}

const COLUMNS = ['server_id', 'workflow_id', 'started_at', 'stopped_at'];

function toMeter(row: ServerMeterRow): ServerMeter {
  return { serverId: row.server_id, workflowId: row.workflow_id, startedAt: row.started_at, stoppedAt: row.stopped_at };
}

/**
 * Records that metering started. Idempotent: when the server already has a meter, returns it
 * unchanged (same workflow id and start time, stopped or not).
 */
export async function start(db: Queryable, input: { serverId: string; workflowId: string }): Promise<ServerMeter> {
  if (!isUuid(input.serverId)) throw new InvalidInput(`'${input.serverId}' is not a server id`, [{ field: 'server_id', message: 'not a uuid' }]);
  const rows = (await db('server_meters')
    .insert({ server_id: input.serverId, workflow_id: input.workflowId })
    .onConflict('server_id')
    .ignore()
    .returning(COLUMNS)) as ServerMeterRow[];
  if (rows.length > 0) return toMeter(insertedRow(rows));
  const existing = await get(db, input.serverId);
  if (!existing) throw new Error(`meter of server '${input.serverId}' vanished while starting`);
  return existing;
}

/** Records that metering stopped (the first stop time is kept). Returns the meter, or null when the server has none. */
export async function stop(db: Queryable, serverId: string): Promise<ServerMeter | null> {
  if (!isUuid(serverId)) return null;
  const [row] = (await db('server_meters')
    .where({ server_id: serverId })
    .update({ stopped_at: db.raw('coalesce(stopped_at, now())') })
    .returning(COLUMNS)) as ServerMeterRow[];
  return row ? toMeter(row) : null;
}

export async function get(db: Queryable, serverId: string): Promise<ServerMeter | null> {
  if (!isUuid(serverId)) return null;
  const row = (await db('server_meters').select(COLUMNS).where({ server_id: serverId }).first()) as ServerMeterRow | undefined;
  return row ? toMeter(row) : null;
}
