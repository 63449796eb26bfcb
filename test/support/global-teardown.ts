/** Stops the shared Temporal dev server that global-setup.ts started (if it started one). */
export default async function globalTeardown(): Promise<void> {
  const server = globalThis.__STRATUS_TEST_TEMPORAL__;
  globalThis.__STRATUS_TEST_TEMPORAL__ = undefined;
  if (server) await server.stop();
}
