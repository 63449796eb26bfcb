/**
 * Idempotency keys (see migration 0008). `claim` decides, in the database, what a request with a key
 * does: run (it inserted or took over the row), replay a stored answer, wait for a concurrent first
 * attempt, or be refused because the key already stands for another request.
 */
import type { Queryable } from '../types';

/** Keys are kept at least this long; an older row no longer binds its key. */
export const KEY_TTL_MS = 24 * 60 * 60 * 1000;

export interface StoredResponse {
  status: number;
  contentType: string | null;
  body: string;
}

export type Claim =
  | { kind: 'run'; claimedAt: Date }
  | { kind: 'replay'; response: StoredResponse }
  | { kind: 'pending' }
  | { kind: 'mismatch' };

interface Row {
  request_hash: string;
  state: 'pending' | 'done';
  response_status: number | null;
  response_type: string | null;
  response_body: string | null;
  claimed_at: Date;
  created_at: Date;
}

/**
 * Claims `key` for a request. A pending row older than `staleAfterMs` belonged to an attempt that
 * died (an API crash): it is taken over with a conditional update, so of several retries one runs.
 */
export async function claim(
  db: Queryable,
  input: { projectId: string; key: string; requestHash: string; now: Date; staleAfterMs: number },
): Promise<Claim> {
  const { projectId, key, requestHash, now } = input;
  const inserted = await db.raw<{ rows: Array<{ claimed_at: Date }> }>(
    `insert into idempotency_keys (project_id, key, request_hash, state, claimed_at, created_at)
     values (?, ?, ?, 'pending', ?, ?)
     on conflict (project_id, key) do nothing
     returning claimed_at`,
    [projectId, key, requestHash, now, now],
  );
  if (inserted.rows[0]) return { kind: 'run', claimedAt: inserted.rows[0].claimed_at };

  const row = (await db('idempotency_keys').where({ project_id: projectId, key }).first()) as Row | undefined;
  if (!row) return claim(db, input); // expired and removed between the two statements: try again

  if (now.getTime() - new Date(row.created_at).getTime() > KEY_TTL_MS) {
    // An expired key binds nothing: start over with this request.
    await db('idempotency_keys').where({ project_id: projectId, key, created_at: row.created_at }).delete();
    return claim(db, input);
  }
  if (row.request_hash !== requestHash) return { kind: 'mismatch' };
  if (row.state === 'done') {
    return { kind: 'replay', response: { status: row.response_status ?? 200, contentType: row.response_type, body: row.response_body ?? '' } };
  }
  if (now.getTime() - new Date(row.claimed_at).getTime() < input.staleAfterMs) return { kind: 'pending' };
  const taken = await db('idempotency_keys')
    .where({ project_id: projectId, key, state: 'pending', claimed_at: row.claimed_at })
    .update({ claimed_at: now });
  return taken === 1 ? { kind: 'run', claimedAt: now } : { kind: 'pending' };
}

/** Stores the answer of the attempt that holds the claim (a later take-over makes this a no-op). */
export async function complete(db: Queryable, input: { projectId: string; key: string; claimedAt: Date; response: StoredResponse }): Promise<void> {
  await db('idempotency_keys')
    .where({ project_id: input.projectId, key: input.key, state: 'pending', claimed_at: input.claimedAt })
    .update({ state: 'done', response_status: input.response.status, response_type: input.response.contentType, response_body: input.response.body });
}

/** Gives the key back (the attempt failed without an answer worth pinning): a retry runs afresh. */
export async function release(db: Queryable, input: { projectId: string; key: string; claimedAt: Date }): Promise<void> {
  await db('idempotency_keys').where({ project_id: input.projectId, key: input.key, state: 'pending', claimed_at: input.claimedAt }).delete();
}

/** Removes keys past their lifetime; returns how many. */
export async function purgeExpired(db: Queryable, now: Date): Promise<number> {
  return db('idempotency_keys').where('created_at', '<', new Date(now.getTime() - KEY_TTL_MS)).delete();
}
