/** List pages: `?limit=&marker=` in, `{ <plural>: [...], next }` out. */
import type { Request } from 'express';

export interface PageQuery {
  limit: number;
  marker?: string;
}

export function pageQuery(req: Request): PageQuery {
  const limit = Number(req.query.limit ?? 100);
  const marker = typeof req.query.marker === 'string' && req.query.marker !== '' ? req.query.marker : undefined;
  return { limit, ...(marker ? { marker } : {}) };
}
