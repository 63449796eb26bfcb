/** Measures how long the event loop was blocked while some work ran (libvirt calls must not block it). */
export async function withEventLoopLag<T>(work: () => Promise<T>, tickMs = 5): Promise<{ result: T; maxLagMs: number }> {
  let maxLagMs = 0;
  let last = performance.now();
  const timer = setInterval(() => {
    const now = performance.now();
    maxLagMs = Math.max(maxLagMs, now - last - tickMs);
    last = now;
  }, tickMs);
  try {
    return { result: await work(), maxLagMs };
  } finally {
    clearInterval(timer);
  }
}
