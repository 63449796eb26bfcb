/** Jest: TypeScript through ts-jest (transpile only; `npm run typecheck` does the type checking).
 * Integration files share one Temporal dev server started in globalSetup, and run serially:
 * 2 cores cannot host several Temporal workers plus libvirt at once without flaky timeouts. */
module.exports = {
  testEnvironment: 'node',
  transform: { '^.+\\.ts$': ['ts-jest', { isolatedModules: true, diagnostics: false }] },
  testMatch: ['<rootDir>/test/**/*.test.ts'],
  globalSetup: '<rootDir>/test/support/global-setup.ts',
  globalTeardown: '<rootDir>/test/support/global-teardown.ts',
  maxWorkers: 1,
  testTimeout: 60000,
  reporters: ['default', '<rootDir>/test/support/summary-reporter.js'],
};
