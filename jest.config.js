/** Jest: TypeScript through ts-jest (transpile only, as tsconfig sets isolatedModules; `npm run typecheck` type-checks).
 * Run through `npm test`: PGlite loads its WASM with dynamic import(), which jest allows only under
 * node --experimental-vm-modules.
 * Integration files share one Temporal dev server and one workflow bundle made in globalSetup, and run
 * serially: 2 cores cannot host several Temporal workers plus libvirt at once without flaky timeouts.
 * `npm test` is the whole suite: test/fuzz (the fuzzed contract) and test/chaos (the chaos suite) included. */
module.exports = {
  testEnvironment: 'node',
  transform: { '^.+\\.ts$': ['ts-jest', { diagnostics: false }] },
  testMatch: ['<rootDir>/test/**/*.test.ts'],
  globalSetup: '<rootDir>/test/support/global-setup.ts',
  globalTeardown: '<rootDir>/test/support/global-teardown.ts',
  maxWorkers: 1,
  testTimeout: 60000,
  reporters: ['default', '<rootDir>/test/support/summary-reporter.js'],
};
