/**
 * The fuzzed contract (issue 8) as part of `npm test`: scripts/fuzz-contract.sh — Schemathesis,
 * driven by openapi/stratus.yaml, against a real `stratus up` (random ports, a temporary data dir,
 * PGlite, libvirt's test driver), every operation, examples + coverage + fuzzing + stateful phases,
 * every check. Passes only when Schemathesis exits 0 having generated at least MIN_CASES cases.
 *
 * Quiet when green: one summary line (cases, operations, seed, seconds). Schemathesis's own report
 * (and its pytest-style closing line) is printed only when the test fails.
 * The tool itself lives in a git-ignored venv (.venv-fuzz); scripts/setup-fuzz.sh installs it when it
 * is missing (idempotent), so `npm test` works on a fresh machine with python3.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const ROOT = path.resolve(__dirname, '..', '..');
const MIN_CASES = 2000;

interface Run {
  code: number | null;
  output: string;
  seconds: number;
}

/** Runs a script of scripts/ with stdout and stderr together in one string. */
function script(name: string, env: Record<string, string> = {}): Promise<Run> {
  const started = Date.now();
  return new Promise((resolve, reject) => {
    const child = spawn(path.join(ROOT, 'scripts', name), [], { cwd: ROOT, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr.on('data', (d: Buffer) => (output += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, output, seconds: (Date.now() - started) / 1000 }));
  });
}

/** The numbers of Schemathesis's summary ("Test cases: N generated, N passed, …", "Selected: 78/79", "Seed: …"). */
function summaryOf(output: string): { generated: number; passed: number; failed: number; operations: string; seed: string } {
  const cases = /^\s*(\d+) generated(.*)$/m.exec(output);
  const count = (what: string): number => Number(new RegExp(`(\\d+) ${what}`).exec(cases?.[2] ?? '')?.[1] ?? 0);
  return {
    generated: Number(cases?.[1] ?? 0),
    passed: count('passed'),
    failed: count('failed'),
    operations: /^\s*Tested: (\d+)/m.exec(output)?.[1] ?? '?',
    seed: /^Seed: (\d+)/m.exec(output)?.[1] ?? '?',
  };
}

test('Schemathesis finds no server error, spec violation or undeclared status in ≥ 2,000 generated cases', async () => {
  const setup = await script('setup-fuzz.sh');
  if (setup.code !== 0) throw new Error(`scripts/setup-fuzz.sh exited ${setup.code}:\n${setup.output}`);

  const reportDir = fs.mkdtempSync(path.join(os.tmpdir(), 'stratus-fuzz-report-'));
  try {
    const run = await script('fuzz-contract.sh', { FUZZ_REPORT_DIR: reportDir });
    const s = summaryOf(run.output);
    const green = run.code === 0 && s.generated >= MIN_CASES && s.failed === 0;
    // The whole report only when something is wrong (it names the failing operation, the curl to reproduce, the seed).
    if (!green) throw new Error(`scripts/fuzz-contract.sh exited ${run.code} with ${s.generated} cases generated (need ≥ ${MIN_CASES}):\n${run.output}`);
    console.log(`fuzzed contract: ${s.generated} cases generated, ${s.passed} passed, 0 failed over ${s.operations} operations in ${run.seconds.toFixed(0)} s (seed ${s.seed})`);
    expect(run.code).toBe(0);
    expect(s.generated).toBeGreaterThanOrEqual(MIN_CASES);
  } finally {
    fs.rmSync(reportDir, { recursive: true, force: true });
  }
}, 900_000);
