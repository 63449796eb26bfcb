import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { MissingDependency } from '../../core/errors';
import { PROJECT_LOCAL_TEMPORAL_CLI, resolveTemporalCli, TEMPORAL_CLI_NOT_FOUND } from '../../temporal/binary';

describe('resolveTemporalCli', () => {
  let dir: string;
  const savedPath = process.env.PATH;
  const noLocal = { projectLocalPath: '/nonexistent/.tools/temporal/temporal' };
  const cfg = (cliPath?: string) => ({ temporal: { cliPath } });

  function executable(rel: string): string {
    const file = path.join(dir, rel);
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.writeFileSync(file, '#!/bin/sh\nexit 0\n', { mode: 0o755 });
    return file;
  }

  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'stratus-bin-'));
  });
  afterEach(() => {
    process.env.PATH = savedPath;
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('uses TEMPORAL_CLI_PATH first when it points at an executable file', () => {
    const explicit = executable('explicit/temporal-custom');
    process.env.PATH = path.dirname(executable('onpath/temporal'));
    expect(resolveTemporalCli(cfg(explicit), noLocal)).toBe(explicit);
  });

  it('fails naming TEMPORAL_CLI_PATH when it points at a missing file, without falling back', () => {
    process.env.PATH = path.dirname(executable('onpath/temporal'));
    const missing = path.join(dir, 'nope', 'temporal');
    const attempt = () => resolveTemporalCli(cfg(missing), noLocal);
    expect(attempt).toThrow(MissingDependency);
    expect(attempt).toThrow(`TEMPORAL_CLI_PATH=${missing} does not exist`);
  });

  it('fails naming TEMPORAL_CLI_PATH when the file is not executable', () => {
    const file = path.join(dir, 'temporal');
    fs.writeFileSync(file, 'x', { mode: 0o644 });
    expect(() => resolveTemporalCli(cfg(file), noLocal)).toThrow(/TEMPORAL_CLI_PATH=.* is not executable/);
  });

  it('then looks for `temporal` on PATH (first match wins, directories and non-executables skipped)', () => {
    const notExec = path.join(dir, 'a', 'temporal');
    fs.mkdirSync(path.dirname(notExec), { recursive: true });
    fs.writeFileSync(notExec, 'x', { mode: 0o644 });
    fs.mkdirSync(path.join(dir, 'b', 'temporal'), { recursive: true }); // a directory named temporal
    const good = executable('c/temporal');
    executable('d/temporal');
    process.env.PATH = ['', path.join(dir, 'a'), path.join(dir, 'b'), path.join(dir, 'c'), path.join(dir, 'd')].join(
      path.delimiter,
    );
    expect(resolveTemporalCli(cfg(), noLocal)).toBe(good);
  });

  it('then falls back to the project-local copy', () => {
    process.env.PATH = path.join(dir, 'empty');
    const local = executable('.tools/temporal/1.9.1/temporal');
    expect(resolveTemporalCli(cfg(), { projectLocalPath: local })).toBe(local);
  });

  it('with nothing found, throws one line naming all three ways', () => {
    process.env.PATH = path.join(dir, 'empty');
    let caught: unknown;
    try {
      resolveTemporalCli(cfg(), noLocal);
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(MissingDependency);
    const message = (caught as Error).message;
    expect(message).toBe(TEMPORAL_CLI_NOT_FOUND);
    expect(message).not.toContain('\n');
    expect(message).toContain('scripts/install-temporal.sh');
    expect(message).toContain('PATH');
    expect(message).toContain('TEMPORAL_CLI_PATH');
  });

  it('the default project-local path is .tools/temporal/<version>/temporal at the repository root', () => {
    expect(PROJECT_LOCAL_TEMPORAL_CLI).toBe(path.resolve(__dirname, '../../.tools/temporal/1.9.1/temporal'));
  });
});
