/** Bearer-token authentication for every /v1 call except logging in. */
import type { RequestHandler } from 'express';
import { Unauthorized } from '../core/errors';
import { Forbidden } from '../core/errors';
import { hasRole, requireAdmin, type AuthContext, type IdentityService } from '../services/identity';

declare module 'express-serve-static-core' {
  interface Request {
    auth?: AuthContext;
  }
}

export function authenticate(identity: IdentityService): RequestHandler {
  return async (req, _res, next) => {
    if (req.auth) return next(); // already authenticated by authenticateFirst
    const header = req.get('authorization') ?? '';
    const match = /^Bearer\s+(\S+)$/i.exec(header);
    if (!match?.[1]) throw new Unauthorized('send a token: Authorization: Bearer <token> (get one from POST /v1/auth/tokens)');
    req.auth = await identity.resolveToken(match[1]);
    next();
  };
}

/**
 * Authenticates every /v1 call that needs a token before the request is validated, so a call
 * without a valid token is 401 whatever else is wrong with it (and the routers' own `authenticate`
 * finds the caller already resolved). Public: logging in, and image downloads by signed URL.
 */
export function authenticateFirst(identity: IdentityService): RequestHandler {
  const auth = authenticate(identity);
  return (req, res, next) => {
    if (!req.path.startsWith('/v1/')) return next();
    if (req.method === 'POST' && req.path === '/v1/auth/tokens') return next();
    const signed = req.query.expires !== undefined || req.query.signature !== undefined;
    if (signed && /^\/v1\/images\/[^/]+\/file$/.test(req.path)) return next();
    return auth(req, res, next);
  };
}

/** The caller, for handlers behind `authenticate`. */
export function callerOf(req: { auth?: AuthContext }): AuthContext {
  if (!req.auth) throw new Unauthorized('not authenticated');
  return req.auth;
}

export const adminOnly: RequestHandler = (req, _res, next) => {
  requireAdmin(callerOf(req));
  next();
};

/** Readers look; members and admins change things. */
export function requireWriter(auth: AuthContext): void {
  if (!hasRole(auth, 'admin', 'member')) throw new Forbidden('the reader role cannot change resources');
}
