/**
 * The one error middleware: every failure leaves the API as application/problem+json (RFC 9457).
 * Domain errors carry their status and fields; the OpenAPI validator's errors are turned into
 * `fields` naming the input (`body.name`, `query.limit`); a dependency that is down (the database,
 * Temporal) is a 503 with Retry-After; anything else is a logged 500 that leaks no internals.
 */
import type { ErrorRequestHandler, RequestHandler, Response } from 'express';
import { DomainError, type FieldErrors } from '../core/errors';
import { allowedMethods } from './allow';

/** Seconds a client is asked to wait when a dependency is down. */
export const RETRY_AFTER_SECONDS = 5;

/** Socket-level and server-side codes that mean "the database is not there right now". */
const DB_DOWN_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENOTFOUND', 'EPIPE', '57P01', '57P02', '57P03', '08000', '08001', '08003', '08006', '53300']);
/** gRPC status codes of a Temporal frontend that is down or too slow: UNAVAILABLE, DEADLINE_EXCEEDED. */
const GRPC_DOWN_CODES = new Set([14, 4]);

/** Which dependency `err` (or an error in its cause chain) says is unreachable, if any. */
export function unreachableDependency(err: unknown): 'database' | 'Temporal' | null {
  for (let e = err as { name?: unknown; code?: unknown; message?: unknown; cause?: unknown } | undefined, depth = 0; e && depth < 6; e = e.cause as typeof e, depth += 1) {
    if (e instanceof DependencyUnavailable) return e.dependency;
    const message = typeof e.message === 'string' ? e.message : '';
    if (e.name === 'KnexTimeoutError' || /Timeout acquiring a connection|Connection terminated/.test(message)) return 'database';
    if (typeof e.code === 'string' && DB_DOWN_CODES.has(e.code)) return 'database';
    if (typeof e.code === 'number' && GRPC_DOWN_CODES.has(e.code)) return 'Temporal';
  }
  return null;
}

/** A dependency is down: 503 with Retry-After. */
export class DependencyUnavailable extends Error {
  constructor(
    readonly dependency: 'database' | 'Temporal',
    message: string,
  ) {
    super(message);
    this.name = 'DependencyUnavailable';
  }

  /** `err` as a DependencyUnavailable when it says a dependency is down (else `err` unchanged). */
  static from(err: unknown, fallback: 'database' | 'Temporal', note?: string): unknown {
    const dep = unreachableDependency(err) ?? (err instanceof Error && err.name === 'ServiceError' ? fallback : null);
    if (!dep) return err;
    return new DependencyUnavailable(dep, `${dep} is unavailable; try again in a few seconds${note ? ` (${note})` : ''}`);
  }
}
import type { components } from '../openapi/types';

type Problem = components['schemas']['Problem'];

const TITLES: Record<number, string> = {
  400: 'Invalid input',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not found',
  405: 'Method not allowed',
  409: 'Conflict',
  413: 'Payload too large',
  415: 'Unsupported media type',
  422: 'Unprocessable request',
  500: 'Internal server error',
  503: 'Service unavailable',
};

export function sendProblem(res: Response, status: number, detail: string, fields: FieldErrors = []): void {
  const title = TITLES[status] ?? 'Error';
  const body: Problem = {
    type: `https://stratus.dev/problems/${title.toLowerCase().replace(/ /g, '-')}`,
    title,
    status,
    detail,
    instance: res.req.originalUrl,
    request_id: String(res.req.id ?? ''),
    ...(fields.length > 0 ? { fields } : {}),
  };
  res.status(status).type('application/problem+json').send(JSON.stringify(body));
}

/** Validator paths look like `/body/name`, `/query/limit` or `/params/id`; users read `body.name`, `path.id`. */
function fieldName(path: string): string {
  return path.replace(/^\//, '').replace(/\//g, '.').replace(/^params\./, 'path.');
}

interface HttpishError {
  status?: number;
  statusCode?: number;
  message?: string;
  type?: string;
  errors?: Array<{ path?: string; message?: string }>;
}

export const problemMiddleware: ErrorRequestHandler = (err: unknown, req, res, next) => {
  if (res.headersSent) return next(err);
  if (err instanceof DomainError) {
    if (err.status === 503) res.setHeader('Retry-After', String(RETRY_AFTER_SECONDS));
    return sendProblem(res, err.status, err.message, err.fields);
  }

  const e = (err ?? {}) as HttpishError;
  const status = e.status ?? e.statusCode;
  if (typeof status === 'number' && status >= 400 && status < 500) {
    if (e.type === 'entity.parse.failed') {
      return sendProblem(res, 400, 'the request body is not valid JSON', [{ field: 'body', message: 'malformed JSON' }]);
    }
    const fields = (e.errors ?? []).map((x) => ({
      field: fieldName(x.path ?? ''),
      message: x.message ?? 'invalid',
    }));
    const detail =
      status === 404
        ? `no such resource: ${req.method} ${req.path}`
        : fields.length > 0
          ? fields.map((f) => `${f.field} ${f.message}`).join('; ')
          : (e.message ?? 'invalid request');
    if (status === 405) {
      const allow = allowedMethods(req.path);
      if (allow) res.setHeader('Allow', allow);
    }
    return sendProblem(res, status, detail, status === 404 ? [] : fields);
  }
  const down = unreachableDependency(err);
  if (down) {
    req.log.warn({ err }, `${down} unavailable`);
    res.setHeader('Retry-After', String(RETRY_AFTER_SECONDS));
    const detail = err instanceof DependencyUnavailable ? err.message : `${down} is unavailable; try again in a few seconds`;
    return sendProblem(res, 503, detail);
  }
  req.log.error({ err }, 'unhandled error');
  return sendProblem(res, 500, 'an internal error occurred; the request id identifies it in the logs');
};

/** Anything no route claimed. */
export const notFoundHandler: RequestHandler = (req, res) =>
  sendProblem(res, 404, `no such resource: ${req.method} ${req.path}`);
