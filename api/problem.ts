/**
 * The one error middleware: every failure leaves the API as application/problem+json (RFC 9457).
 * Domain errors carry their status and fields; the OpenAPI validator's errors are turned into
 * `fields` naming the input (`body.name`, `query.limit`); anything else is a logged 500 that
 * leaks no internals.
 */
import type { ErrorRequestHandler, RequestHandler, Response } from 'express';
import { DomainError, type FieldErrors } from '../core/errors';
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
  if (err instanceof DomainError) return sendProblem(res, err.status, err.message, err.fields);

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
    return sendProblem(res, status, detail, status === 404 ? [] : fields);
  }
  req.log.error({ err }, 'unhandled error');
  return sendProblem(res, 500, 'an internal error occurred; the request id identifies it in the logs');
};

/** Anything no route claimed. */
export const notFoundHandler: RequestHandler = (req, res) =>
  sendProblem(res, 404, `no such resource: ${req.method} ${req.path}`);
