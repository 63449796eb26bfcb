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
import type { Logger } from '../core/log';
import type { Database, Listener } from './connect';
import { CHANGES_CHANNEL } from './migrations/0012_change_notifications';

const RELISTEN_MS = 1000;

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

export async function openChangeFeed(db: Database, log: Logger): Promise<ChangeFeed> {
  let epoch = 0;
  let changes = 0;
  let listener: Listener | undefined;
  let closed = false;
  let retry: NodeJS.Timeout | undefined;

  const listen = async (): Promise<void> => {
    const opened = await db.listen(
      CHANGES_CHANNEL,
      () => {
        changes += 1;
      },
      (err) => {
        if (listener !== opened) return;
        listener = undefined;
        log.warn({ err: err.message }, 'change feed: listening connection lost; cached responses unused until it is back');
        schedule();
      },
    );
    if (closed) return void (await opened.close());
    epoch += 1;
    listener = opened;
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

  // One sync in flight at a time; callers that arrive meanwhile share the next one (a sync sent
  // before a caller arrived would not cover what committed just before it).
  let current: Promise<void> | undefined;
  let queued: Promise<void> | undefined;
  const send = (l: Listener): Promise<void> => {
    const sent: Promise<void> = l.sync().finally(() => {
      if (current === sent) current = undefined;
    });
    current = sent;
    return sent;
  };
  const sync = (l: Listener): Promise<void> => {
    if (!current) return send(l);
    queued ??= current
      .catch(() => undefined)
      .then(() => {
        queued = undefined;
        return send(l);
      });
    return queued;
  };

  // Not listening yet (the database refused a connection of its own) costs only the cache: retried.
  await listen().catch((err: Error) => {
    log.warn({ err: err.message }, 'change feed: cannot listen yet; cached responses unused until it can');
    schedule();
  });
  return {
    async version() {
      const l = listener;
      if (!l) return null;
      const at = epoch;
      try {
        await sync(l);
      } catch {
        return null;
      }
      return listener === l && epoch === at ? `${at}.${changes}` : null;
    },
    lastHeard() {
      return listener ? `${epoch}.${changes}` : null;
    },
    async close() {
      closed = true;
      clearTimeout(retry);
      const l = listener;
      listener = undefined;
      await l?.close();
    },
  };
}
