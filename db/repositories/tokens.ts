/** Issued tokens. Only a hash of each token is stored; the caller hashes what the client presents. */
import type { Project } from './projects';
import type { User } from './users';
import { atDbEdge, conflict, insertedRow, missing } from '../errors';
import { isUuid, newId } from '../ids';
import type { Queryable } from '../types';

export interface Token {
  id: string;
  userId: string;
  projectId: string;
  expiresAt: Date;
  revokedAt: Date | null;
  createdAt: Date;
}

/** A token that authenticates: with its (enabled) user and (enabled) project, and the user's roles there. */
export interface ValidToken {
  token: Token;
  user: User;
  project: Project;
  /** Role names the user holds on the project now, sorted; may be empty (the caller decides). */
  roles: string[];
}

interface TokenRow {
  id: string;
  user_id: string;
  project_id: string;
  expires_at: Date;
  revoked_at: Date | null;
  created_at: Date;
}

const COLUMNS = ['id', 'user_id', 'project_id', 'expires_at', 'revoked_at', 'created_at'];

function toToken(row: TokenRow): Token {
  return {
    id: row.id,
    userId: row.user_id,
    projectId: row.project_id,
    expiresAt: row.expires_at,
    revokedAt: row.revoked_at,
    createdAt: row.created_at,
  };
}

export interface NewToken {
  id?: string;
  tokenHash: string;
  userId: string;
  projectId: string;
  expiresAt: Date;
}

/** Throws NotFound when the user or project does not exist. */
export async function insert(db: Queryable, input: NewToken): Promise<Token> {
  const rows = await atDbEdge<TokenRow[]>(
    () =>
      db('tokens')
        .insert({
          id: input.id ?? newId(),
          token_hash: input.tokenHash,
          user_id: input.userId,
          project_id: input.projectId,
          expires_at: input.expiresAt,
        })
        .returning(COLUMNS),
    {
      tokens_token_hash_key: conflict('tokenHash', 'a token with this hash already exists'),
      tokens_user_id_fkey: missing('userId', `user '${input.userId}' not found`),
      tokens_project_id_fkey: missing('projectId', `project '${input.projectId}' not found`),
    },
  );
  return toToken(insertedRow(rows));
}

interface ValidTokenRow extends TokenRow {
  u_name: string;
  u_enabled: boolean;
  u_default_project_id: string | null;
  u_created_at: Date;
  u_updated_at: Date;
  p_name: string;
  p_description: string;
  p_enabled: boolean;
  p_created_at: Date;
  p_updated_at: Date;
  roles: string[];
}

/**
 * The token with this hash if it authenticates at `now`: not revoked, not expired, its user and its
 * project both exist and are enabled. Otherwise null (the caller does not learn which rule failed).
 */
export async function findValidByHash(db: Queryable, tokenHash: string, now: Date = new Date()): Promise<ValidToken | null> {
  const row = (await db('tokens as t')
    .join('users as u', 'u.id', 't.user_id')
    .join('projects as p', 'p.id', 't.project_id')
    .select([
      't.id', 't.user_id', 't.project_id', 't.expires_at', 't.revoked_at', 't.created_at',
      'u.name as u_name', 'u.enabled as u_enabled', 'u.default_project_id as u_default_project_id',
      'u.created_at as u_created_at', 'u.updated_at as u_updated_at',
      'p.name as p_name', 'p.description as p_description', 'p.enabled as p_enabled',
      'p.created_at as p_created_at', 'p.updated_at as p_updated_at',
      db.raw(
        `coalesce((select array_agg(ra.role order by ra.role) from role_assignments ra
                   where ra.user_id = t.user_id and ra.project_id = t.project_id), '{}') as roles`,
      ),
    ])
    .where('t.token_hash', tokenHash)
    .whereNull('t.revoked_at')
    .where('t.expires_at', '>', now)
    .where('u.enabled', true)
    .where('p.enabled', true)
    .first()) as ValidTokenRow | undefined;
  if (!row) return null;
  return {
    token: toToken(row),
    user: {
      id: row.user_id,
      name: row.u_name,
      enabled: row.u_enabled,
      defaultProjectId: row.u_default_project_id,
      createdAt: row.u_created_at,
      updatedAt: row.u_updated_at,
    },
    project: {
      id: row.project_id,
      name: row.p_name,
      description: row.p_description,
      enabled: row.p_enabled,
      createdAt: row.p_created_at,
      updatedAt: row.p_updated_at,
    },
    roles: row.roles,
  };
}

/** Marks the token revoked; true when it was live (not yet revoked). */
export async function revoke(db: Queryable, id: string): Promise<boolean> {
  if (!isUuid(id)) return false;
  const count = await db('tokens').where({ id }).whereNull('revoked_at').update({ revoked_at: db.fn.now() });
  return count > 0;
}

/** Deletes tokens that expired at or before `now`; returns how many. */
export async function deleteExpired(db: Queryable, now: Date = new Date()): Promise<number> {
  return db('tokens').where('expires_at', '<=', now).delete();
}
