/**
 * A version of everything a server's view reads (the tables of migration 0012, whose triggers NOTIFY
 * on every committed change): equal versions mean nothing those tables hold changed in between, so
 * a response rendered at one may be served again at the other (api/response-cache.ts).
 *
 * The version is a counter of notifications received on a connection of its own, read after a sync
 * on that connection (Listener.sync), so it counts every change committed before the read began: a
 * client that wrote (through this API or any other process) and then reads sees its write. When the
 * listening connection is lost there is no version (null: nothing is served from a cache) until it
 * listens again, under a new epoch, so no version from before the loss ever matches one after.
 */
import { Coalescer } from '../core/coalesce';
import type { Logger } from '../core/log';
import type { Database, Listener } from './connect';
import { CHANGES_CHANNEL } from './migrations/0012_change_notifications';

const RELISTEN_MS = 1000;
/** A sync unanswered this long means the listening connection is dead (it is then replaced). */
const SYNC_TIMEOUT_MS = 2000;

export interface ChangeFeed {
  /** The current version (after a sync), or null when changes cannot be followed right now. */
  version(): Promise<string | null>;
  /**
   * The version as last heard, without a sync: only to see that a version read before has moved
   * since (then a response rendered at it is already stale), never to decide that nothing changed.
   */
  lastHeard(): string | null;
  close(): Promise<void>;
}

export async function openChangeFeed(db: Database, log: Logger, options: { syncTimeoutMs?: number } = {}): Promise<ChangeFeed> {
  const syncTimeoutMs = options.syncTimeoutMs ?? SYNC_TIMEOUT_MS;
  let epoch = 0;
  let changes = 0;
  let feed: Heard | undefined;
  let closed = false;
  let retry: NodeJS.Timeout | undefined;

  /** Stops using `lost` (if still the one listening), says why, and listens again soon. */
  const drop = (lost: Heard, why: string) => {
    if (feed !== lost) return;
    feed = undefined;
    log.warn({ err: why }, 'change feed: listening connection lost; cached responses unused until it is back');
    lost.listener.close().catch(() => undefined);
    schedule();
  };
  const listen = async (): Promise<void> => {
    const opened: { heard?: Heard } = {};
    const listener = await db.listen(
      CHANGES_CHANNEL,
      () => {
        changes += 1;
      },
      (err) => {
        if (opened.heard) drop(opened.heard, err.message);
      },
    );
    if (closed) return void (await listener.close());
    epoch += 1;
    // One sync in flight; callers arriving meanwhile share the next one (one sent before a caller
    // arrived would not cover what committed just before it).
    const syncs = new Coalescer();
    opened.heard = { listener, sync: () => syncs.run('sync', () => listener.sync()) };
    feed = opened.heard;
  };
  const schedule = () => {
    if (closed) return;
    retry = setTimeout(() => {
      listen().catch((err: Error) => {
        log.warn({ err: err.message }, 'change feed: cannot listen yet');
        schedule();
      });
    }, RELISTEN_MS);
    retry.unref();
  };

  // Not listening yet (the database refused a connection of its own) costs only the cache: retried.
  await listen().catch((err: Error) => {
    log.warn({ err: err.message }, 'change feed: cannot listen yet; cached responses unused until it can');
    schedule();
  });
  return {
    async version() {
      const heard = feed;
      if (!heard) return null;
      const at = epoch;
      let timer: NodeJS.Timeout | undefined;
      try {
        // A connection that stopped answering without closing (no RST) would hold every read: past
        // the deadline it counts as lost.
        const late = new Promise<'late'>((resolve) => (timer = setTimeout(() => resolve('late'), syncTimeoutMs)));
        if ((await Promise.race([heard.sync(), late])) === 'late') {
          drop(heard, `no answer to a sync in ${syncTimeoutMs} ms`);
          return null;
        }
      } catch {
        return null;
      } finally {
        clearTimeout(timer);
      }
      return feed === heard && epoch === at ? `${at}.${changes}` : null;
    },
    lastHeard() {
      return feed ? `${epoch}.${changes}` : null;
    },
    async close() {
      closed = true;
      clearTimeout(retry);
      const heard = feed;
      feed = undefined;
      await heard?.listener.close();
    },
  };
}

/** A listening connection and its syncs (state of its own: a new connection never waits on an old one's). */
interface Heard {
  listener: Listener;
  sync: () => Promise<void>;
}
