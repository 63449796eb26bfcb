/**
 * The one Temporal dev server shared by the whole jest run (started in global-setup.ts).
 * Test files connect to it; they never start their own unless they test the dev server itself.
 */
export const TEMPORAL_ADDRESS_ENV = 'STRATUS_TEST_TEMPORAL_ADDRESS';
export const TEMPORAL_NAMESPACE_ENV = 'STRATUS_TEST_TEMPORAL_NAMESPACE';

export function testTemporal(): { address: string; namespace: string } {
  const address = process.env[TEMPORAL_ADDRESS_ENV];
  const namespace = process.env[TEMPORAL_NAMESPACE_ENV];
  if (!address || !namespace) {
    throw new Error(
      `${TEMPORAL_ADDRESS_ENV} / ${TEMPORAL_NAMESPACE_ENV} are not set: run tests through jest (its globalSetup, test/support/global-setup.ts, starts the shared Temporal dev server)`,
    );
  }
  return { address, namespace };
}
