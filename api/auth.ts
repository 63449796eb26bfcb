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
    const header = req.get('authorization') ?? '';
    const match = /^Bearer\s+(\S+)$/i.exec(header);
    if (!match?.[1]) throw new Unauthorized('send a token: Authorization: Bearer <token> (get one from POST /v1/auth/tokens)');
    req.auth = await identity.resolveToken(match[1]);
    req.log = req.log.child({ user: req.auth.user.name, project: req.auth.project.name });
    next();
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
