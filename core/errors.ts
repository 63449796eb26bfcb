/**
 * Domain errors. Services and repositories throw these; the API's error middleware maps each to an
 * application/problem+json response (api/problem.ts), so no route builds error bodies by hand.
 */
export type FieldErrors = Array<{ field: string; message: string }>;

export abstract class DomainError extends Error {
  abstract readonly status: number;
  abstract readonly title: string;
  constructor(
    message: string,
    /** Which input fields were at fault, e.g. `[{ field: 'body.name', message: 'already taken' }]`. */
    readonly fields: FieldErrors = [],
  ) {
    super(message);
    this.name = new.target.name;
  }
}

export class InvalidInput extends DomainError {
  readonly status = 400;
  readonly title = 'Invalid input';
}
export class Unauthorized extends DomainError {
  readonly status = 401;
  readonly title = 'Unauthorized';
}
export class Forbidden extends DomainError {
  readonly status = 403;
  readonly title = 'Forbidden';
}
export class NotFound extends DomainError {
  readonly status = 404;
  readonly title = 'Not found';
}
export class Conflict extends DomainError {
  readonly status = 409;
  readonly title = 'Conflict';
}

/** A part the request needs (e.g. the server's host) does not answer now; worth trying again later. */
export class ServiceUnavailable extends DomainError {
  readonly status = 503;
  readonly title = 'Service unavailable';
}

/** Well-formed, but cannot be done as asked (e.g. an Idempotency-Key reused for another request). */
export class UnprocessableRequest extends DomainError {
  readonly status = 422;
  readonly title = 'Unprocessable request';
}

/** A dependency that start-up needs is missing or unreachable. The message says what and how to fix it. */
export class MissingDependency extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'MissingDependency';
  }
}
