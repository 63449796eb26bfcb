/**
 * OpenStack list paging: `?limit=&marker=<id of the last item seen>`. The clients page until a short
 * (or empty) page, so every list must honour both, or the SDK aborts with "Endless pagination loop".
 * Nova, Cinder and Neutron link the next page absolutely in `<collection>_links`; Glance's `next`
 * is relative to its version root (`/v2/images?…`), never carrying the mount prefix.
 */
import type { Request } from 'express';
import { MAX_PAGE_SIZE } from '../../services/pages';
import { OpenStackError } from './errors';

export interface OsPage {
  limit: number;
  /** The id of the last item of the previous page. */
  marker?: string;
}

/** `limit` (default and cap: MAX_PAGE_SIZE) and `marker` of a list request; a bad limit is a 400 naming it. */
export function osPage(req: Request): OsPage {
  const raw = req.query.limit;
  let limit = MAX_PAGE_SIZE;
  if (raw !== undefined && raw !== '') {
    const n = Number(raw);
    if (typeof raw !== 'string' || !Number.isInteger(n) || n < 0) throw new OpenStackError(400, `limit must be a non-negative integer, got ${JSON.stringify(raw)}.`);
    limit = Math.min(Math.max(n, 1), MAX_PAGE_SIZE);
  }
  const marker = typeof req.query.marker === 'string' && req.query.marker !== '' ? req.query.marker : undefined;
  return { limit, ...(marker ? { marker } : {}) };
}

/** The request's query with `marker` set to `lastId` (and `limit` kept), for a next-page link. */
export function nextQuery(req: Request, lastId: string, limit: number): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(req.query)) {
    if (k === 'marker' || k === 'limit') continue;
    for (const item of Array.isArray(v) ? v : [v]) if (typeof item === 'string') q.append(k, item);
  }
  q.set('limit', String(limit));
  q.set('marker', lastId);
  return q.toString();
}

/** Nova/Cinder/Neutron `<collection>_links` for a page: a `next` link when the page is full. */
export function pageLinks(req: Request, publicUrl: string, items: ReadonlyArray<{ id: string }>, page: OsPage): Array<{ rel: 'next'; href: string }> {
  const last = items[items.length - 1];
  if (!last || items.length < page.limit) return [];
  const path = req.originalUrl.split('?')[0];
  return [{ rel: 'next', href: `${publicUrl}${path}?${nextQuery(req, last.id, page.limit)}` }];
}
