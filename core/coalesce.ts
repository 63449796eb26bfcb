/**
 * Group commit for idempotent calls: at most one call per key is in flight; callers that arrive while
 * one runs share the next call, which starts when the running one ends. So every caller's promise
 * settles with a call that *started after* the caller asked: what the caller did before asking (a
 * committed row, say) is visible to that call. N concurrent callers cost at most 2 calls, not N.
 */
export class Coalescer {
  private readonly slots = new Map<string, { running: Promise<void> | null; queued: Promise<void> | null }>();

  run(key: string, call: () => Promise<void>): Promise<void> {
    let slot = this.slots.get(key);
    if (!slot) {
      slot = { running: null, queued: null };
      this.slots.set(key, slot);
    }
    const s = slot;
    const start = (): Promise<void> => {
      const p: Promise<void> = call().finally(() => {
        if (s.running === p) s.running = null;
        if (!s.running && !s.queued) this.slots.delete(key);
      });
      s.running = p;
      return p;
    };
    if (!s.running) return start();
    if (!s.queued) {
      s.queued = s.running
        .catch(() => undefined)
        .then(() => {
          s.queued = null;
          return start();
        });
    }
    return s.queued;
  }
}
