/**
 * OpenStack-shaped errors. Each service has its own error body, and the clients print its message
 * (openstacksdk reads `message` from the one object inside the body), so a bad request through the
 * compat surface is a readable line in `openstack …`, never a stack trace:
 *   Nova, Cinder  {"itemNotFound": {"code": 404, "message": "…"}}   (the key names the fault)
 *   Neutron       {"NeutronError": {"type": "HTTPNotFound", "message": "…", "detail": ""}}
 *   Keystone      {"error": {"code": 401, "title": "Unauthorized", "message": "…"}}
 *   Glance        the same as Keystone's
 * Domain errors (core/errors.ts) thrown by the services keep their status and message.
 */
import type { ErrorRequestHandler, RequestHandler, Response } from 'express';
import { DomainError } from '../../core/errors';
import { RETRY_AFTER_SECONDS, unreachableDependency } from '../problem';

export type ServiceKind = 'identity' | 'compute' | 'image' | 'network' | 'volume';

/** An error that exists only on the compat surface (e.g. 406 for an unsupported microversion). */
export class OpenStackError extends Error {
  constructor(
    readonly status: number,
    message: string,
    /** Neutron's `type` (e.g. `NetworkNotFound`); other services ignore it. */
    readonly neutronType?: string,
  ) {
    super(message);
    this.name = 'OpenStackError';
  }
}

const TITLES: Record<number, string> = {
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  405: 'Method Not Allowed',
  406: 'Not Acceptable',
  409: 'Conflict',
  413: 'Request Entity Too Large',
  415: 'Unsupported Media Type',
  422: 'Unprocessable Entity',
  500: 'Internal Server Error',
  503: 'Service Unavailable',
};

/** Nova's and Cinder's fault names (nova/api/openstack/wsgi.py `Fault`). */
const FAULTS: Record<number, string> = {
  400: 'badRequest',
  401: 'unauthorized',
  403: 'forbidden',
  404: 'itemNotFound',
  405: 'badMethod',
  406: 'notAcceptable',
  409: 'conflictingRequest',
  413: 'overLimit',
  415: 'badMediaType',
  422: 'unprocessableEntity',
  501: 'notImplemented',
  503: 'serviceUnavailable',
};

export function openstackErrorBody(kind: ServiceKind, status: number, message: string, neutronType?: string): unknown {
  const title = TITLES[status] ?? 'Error';
  switch (kind) {
    case 'compute':
    case 'volume':
      return { [FAULTS[status] ?? (status >= 500 ? 'computeFault' : 'badRequest')]: { code: status, message } };
    case 'network':
      return { NeutronError: { type: neutronType ?? `HTTP${title.replace(/ /g, '')}`, message, detail: '' } };
    case 'identity':
    case 'image':
      return { error: { code: status, title, message } };
  }
}

export function sendOpenStackError(res: Response, kind: ServiceKind, status: number, message: string, neutronType?: string): void {
  res.status(status).type('application/json').send(JSON.stringify(openstackErrorBody(kind, status, message, neutronType)));
}

interface HttpishError {
  status?: number;
  statusCode?: number;
  type?: string;
  message?: string;
}

/** The error handler of one service's router: everything leaves as that service's error body. */
export function openstackErrors(kind: ServiceKind): ErrorRequestHandler {
  return (err: unknown, req, res, next) => {
    if (res.headersSent) return next(err);
    if (err instanceof OpenStackError) return sendOpenStackError(res, kind, err.status, err.message, err.neutronType);
    if (err instanceof DomainError) {
      if (err.status === 503) res.setHeader('Retry-After', String(RETRY_AFTER_SECONDS));
      return sendOpenStackError(res, kind, err.status, err.message);
    }
    const e = (err ?? {}) as HttpishError;
    const status = e.status ?? e.statusCode;
    if (typeof status === 'number' && status >= 400 && status < 500) {
      const message = e.type === 'entity.parse.failed' ? 'The request body is not valid JSON.' : (e.message ?? 'Invalid request.');
      return sendOpenStackError(res, kind, status, message);
    }
    const down = unreachableDependency(err);
    if (down) {
      req.log.warn({ err }, `${down} unavailable`);
      res.setHeader('Retry-After', String(RETRY_AFTER_SECONDS));
      return sendOpenStackError(res, kind, 503, `${down} is unavailable; try again in a few seconds`);
    }
    req.log.error({ err }, 'unhandled error');
    return sendOpenStackError(res, kind, 500, `An unexpected error occurred (request ${req.id}); the request id identifies it in the logs.`);
  };
}

/** Anything a service's router did not claim. */
export function openstackNotFound(kind: ServiceKind): RequestHandler {
  return (req, res) => sendOpenStackError(res, kind, 404, `The resource could not be found: ${req.method} ${req.originalUrl}`);
}
