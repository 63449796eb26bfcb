/** `X-Auth-Token` (what every OpenStack client sends): the same tokens as `/v1`'s bearer tokens. */
import type { RequestHandler } from 'express';
import { Unauthorized } from '../../core/errors';
import type { IdentityService } from '../../services/identity';

export function tokenAuth(identity: IdentityService): RequestHandler {
  return async (req, _res, next) => {
    const token = req.get('x-auth-token') ?? /^Bearer\s+(\S+)$/i.exec(req.get('authorization') ?? '')?.[1];
    if (!token) throw new Unauthorized('The request you have made requires authentication (send X-Auth-Token).');
    req.auth = await identity.resolveToken(token);
    next();
  };
}
