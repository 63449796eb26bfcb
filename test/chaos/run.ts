/**
 * The chaos suite from the command line, for a developer (`npm test` runs the same scenarios through
 * test/chaos/chaos.test.ts). Prints the table and exits 1 unless every scenario met the done-criteria
 * (test/chaos/suite.ts).
 *
 *   npm run test:chaos                       every scenario
 *   npm run test:chaos -- conductor api      some of them (keys in test/chaos/suite.ts)
 *   STRATUS_CHAOS_SERVERS=10 STRATUS_CHAOS_CONVERGE_S=120 npm run test:chaos
 */
import { ChaosSuite, SCENARIO_KEYS } from './suite';

async function main(): Promise<void> {
  const only = process.argv.slice(2);
  const unknown = only.filter((k) => !SCENARIO_KEYS.includes(k));
  if (unknown.length > 0) throw new Error(`unknown scenario ${unknown.join(', ')} (known: ${SCENARIO_KEYS.join(', ')})`);
  const suite = new ChaosSuite();
  try {
    for (const key of SCENARIO_KEYS.filter((k) => only.length === 0 || only.includes(k))) await suite.run(key);
  } finally {
    await suite.stop();
  }
  process.stdout.write(`\n${suite.table()}\n`);
  if (suite.failed.length > 0) {
    for (const r of suite.failed) process.stdout.write(`FAIL ${r.scenario}: ${r.problems.join('; ')}\n`);
    process.stdout.write(`logs: ${suite.logDir}\n`);
    process.exitCode = 1;
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`chaos: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
