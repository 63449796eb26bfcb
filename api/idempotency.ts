/**
 * Idempotency-Key on every POST (Stripe's and the IETF draft's semantics): the same key with the
 * same request returns the same answer, also when the requests race; the same key with another
 * request is a 422; keys are scoped per project and kept at least 24 hours. Only successful answers
 * (2xx) are pinned: a failed attempt releases the key so a retry runs again.
 *
 * It runs before the routers, so it resolves the caller's project from the token itself; a request
 * without a valid token passes through untouched (the router answers 401).
 */
import { createHash } from 'node:crypto';
import type { RequestHandler } from 'express';
import type { Knex } from 'knex';
import { Conflict, UnprocessableRequest } from '../core/errors';
import * as keys from '../db/repositories/idempotency-keys';
import type { IdentityService } from '../services/identity';

export interface IdempotencyOptions {
  db: Knex;
  identity: IdentityService;
  /** How long a concurrent request waits for the first attempt's answer before a 409. */
  waitMs?: number;
  /** A pending claim this old belonged to an attempt that died; a retry takes it over. */
  staleAfterMs?: number;
  now?: () => Date;
}

const PURGE_EVERY_MS = 60 * 60 * 1000;

/** The request a key stands for: method, path and the body as parsed (key order does not matter). */
export function requestHash(method: string, path: string, body: unknown): string {
  return createHash('sha256').update(`${method} ${path}\n${canonicalJson(body)}`).digest('hex');
}

function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value && typeof value === 'object') {
    const entries = Object.keys(value as object)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonicalJson((value as Record<string, unknown>)[k])}`);
    return `{${entries.join(',')}}`;
  }
  return JSON.stringify(value ?? null);
}

export function idempotency({ db, identity, waitMs = 30_000, staleAfterMs = 60_000, now = () => new Date() }: IdempotencyOptions): RequestHandler {
  let lastPurge = 0;
  return async (req, res, next) => {
    const key = req.get('idempotency-key');
    if (req.method !== 'POST' || !key) return next();
    if (Date.now() - lastPurge > PURGE_EVERY_MS) {
      // Expired keys bind nothing (claim ignores them); this only keeps the table small.
      lastPurge = Date.now();
      keys.purgeExpired(db, now()).catch((err: unknown) => req.log.warn({ err }, 'purging expired idempotency keys failed'));
    }
    const token = /^Bearer\s+(\S+)$/i.exec(req.get('authorization') ?? '')?.[1];
    const auth = token ? await identity.resolveToken(token).catch(() => null) : null;
    if (!auth) return next();

    const projectId = auth.project.id;
    const hash = requestHash(req.method, req.path, req.body);
    const deadline = Date.now() + waitMs;
    let claim: keys.Claim;
    for (;;) {
      claim = await keys.claim(db, { projectId, key, requestHash: hash, now: now(), staleAfterMs });
      if (claim.kind !== 'pending') break;
      if (Date.now() > deadline) throw new Conflict(`a request with Idempotency-Key "${key}" is still in progress; retry later`, [{ field: 'header.idempotency-key', message: 'in progress' }]);
      await new Promise((r) => setTimeout(r, 50));
    }

    if (claim.kind === 'mismatch') {
      throw new UnprocessableRequest(`Idempotency-Key "${key}" was already used for a different request in this project`, [
        { field: 'header.idempotency-key', message: 'reused with a different request' },
      ]);
    }
    if (claim.kind === 'replay') {
      const { status, contentType, body } = claim.response;
      res.set('Idempotent-Replayed', 'true');
      if (contentType) res.type(contentType);
      res.status(status).send(body);
      return;
    }

    // This attempt runs: capture what it answers, pin it when it is a success, release the key otherwise.
    const { claimedAt } = claim;
    let sent: string | undefined;
    const send = res.send.bind(res);
    res.send = (body?: unknown) => {
      if (sent === undefined) sent = typeof body === 'string' ? body : Buffer.isBuffer(body) ? body.toString('utf8') : JSON.stringify(body ?? '');
      return send(body);
    };
    let settled = false;
    const settle = (finished: boolean) => {
      if (settled) return;
      settled = true;
      const ok = finished && res.statusCode >= 200 && res.statusCode < 300;
      const work = ok
        ? keys.complete(db, { projectId, key, claimedAt, response: { status: res.statusCode, contentType: res.get('content-type') ?? null, body: sent ?? '' } })
        : keys.release(db, { projectId, key, claimedAt });
      work.catch((err: unknown) => req.log.warn({ err, key }, 'idempotency key bookkeeping failed'));
    };
    res.on('finish', () => settle(true));
    res.on('close', () => settle(res.writableFinished));
    next();
  };
}
