/**
 * GET responses kept as rendered and sent again while the data they were read from is unchanged,
 * for the reads that dominate a busy cloud (server lists and shows: clients poll them). A page of
 * 100 servers costs one query plus decoding, presenting and serializing ~100 KB; sent again, it
 * costs a sync with the change feed. The feed's version (db/change-feed.ts) counts every committed
 * change to what a server's view reads, so a response is reused only when nothing it shows has
 * changed since it was rendered, and a write committed before a request arrived is always seen.
 *
 * Any change to those tables makes every kept response stale (one version for the whole cloud):
 * under a steady stream of writes most requests render afresh, as without this cache.
 */
import type { Response } from 'express';
import { metrics } from '../core/metrics';
import type { ChangeFeed } from '../services/compute';

/** What the cache may hold in all (bodies as UTF-8 JSON); the least recently used go first. */
const MAX_BYTES = 16 * 1024 * 1024;

export interface ResponseCache {
  /**
   * Answers 200 with a JSON body: the one rendered before under `key` if the data is unchanged since
   * then, else `render()`'s, which is kept. `key` must name everything else the body depends on
   * (the caller's view, the path and query). An error `render` throws (404, 400) passes through.
   */
  json(res: Response, key: string, render: () => Promise<unknown>): Promise<void>;
}

export function createResponseCache(changes: ChangeFeed | undefined, maxBytes = MAX_BYTES): ResponseCache {
  // Bodies are kept as the bytes sent, with their ETag: a kept response is sent again without being
  // encoded or hashed again (a page of 100 servers is ~100 KB: at 200 req/s, converting the text
  // again each time made 20 MB/s of buffers for the garbage collector).
  const kept = new Map<string, { version: string; body: Buffer; etag: string | undefined }>(); // in order of last use
  let bytes = 0;
  const counter = metrics().responseCache;

  const forget = (key: string) => {
    const old = kept.get(key);
    if (!old) return;
    kept.delete(key);
    bytes -= old.body.length;
  };
  const keep = (key: string, version: string, body: Buffer, etag: string | undefined) => {
    forget(key);
    if (body.length > maxBytes) return;
    for (const oldest of kept.keys()) {
      if (bytes + body.length <= maxBytes) break;
      forget(oldest);
    }
    kept.set(key, { version, body, etag });
    bytes += body.length;
  };

  return {
    async json(res, key, render) {
      const version = changes ? await changes.version() : null;
      const hit = version === null ? undefined : kept.get(key);
      if (hit && hit.version === version) {
        kept.delete(key);
        kept.set(key, hit);
        counter.inc({ result: 'hit' });
        if (hit.etag) res.set('ETag', hit.etag);
        res.type('json').send(hit.body);
        return;
      }
      const body = await render();
      counter.inc({ result: version === null ? 'uncached' : 'miss' });
      // res.json (not the text below) so that response validation, where on, sees the object; a body
      // it turned into an error is not kept, nor one that a change heard meanwhile made stale already
      // (under a stream of writes, most: keeping them would only cost a second serialization). The
      // ETag is the one Express computed for what it sent (JSON.stringify's text, as kept).
      res.json(body);
      if (version !== null && res.statusCode === 200 && changes?.lastHeard() === version) {
        keep(key, version, Buffer.from(JSON.stringify(body)), res.get('ETag'));
      }
    },
  };
}
