/**
 * `stratus up|api|conductor|agent`: the cloud, or one part of it (bin/stratus.ts dispatches here).
 *
 *   stratus up        [--libvirt URI] [--host NAME]   the whole cloud in one process
 *   stratus api                                       the HTTP API
 *   stratus conductor                                 a conductor worker
 *   stratus agent     [--host NAME] [--libvirt URI]   a host agent
 *
 * Configuration comes from the environment (README, "Configuration"); flags override it.
 * A missing dependency or a bad setting prints one line naming it and exits 1.
 */
import { ConfigError, loadConfig } from '../core/config';
import { MissingDependency } from '../core/errors';
import { createLogger } from '../core/log';
import { startCloud, type Role } from '../workers/cloud';

const USAGE = `usage: stratus <up|api|conductor|agent> [--host NAME] [--libvirt URI] [--data-dir DIR]`;
const FLAGS: Record<string, string> = {
  '--host': 'STRATUS_HOST_NAME',
  '--libvirt': 'STRATUS_LIBVIRT_URI',
  '--data-dir': 'STRATUS_DATA_DIR',
};
const SHUTDOWN_DEADLINE_MS = 9000;

function parseArgs(argv: string[]): { role: Role; env: NodeJS.ProcessEnv } {
  const [command, ...rest] = argv;
  if (command !== 'up' && command !== 'api' && command !== 'conductor' && command !== 'agent') {
    throw new ConfigError(command ? `unknown command "${command}"; ${USAGE}` : USAGE);
  }
  const env = { ...process.env };
  for (let i = 0; i < rest.length; i += 1) {
    const [flag, inlineValue] = (rest[i] ?? '').split(/=(.*)/s, 2);
    const variable = FLAGS[flag ?? ''];
    const value = inlineValue ?? rest[++i];
    if (!variable || value === undefined) throw new ConfigError(`bad argument "${rest[i - 1] ?? flag}"; ${USAGE}`);
    env[variable] = value;
  }
  return { role: command, env };
}

function printBanner(apiUrl: string, uiUrl: string, readyMs: number, generatedPassword: string | undefined): void {
  const lines = [
    `Stratus is ready (${(readyMs / 1000).toFixed(1)} s)`,
    `  API          ${apiUrl}/v1`,
    `  API docs     ${apiUrl}/docs`,
    `  Temporal UI  ${uiUrl}`,
    generatedPassword
      ? `  Log in       user admin, project admin, password ${generatedPassword}   (shown only this once)`
      : `  Log in       user admin, project admin, password from STRATUS_ADMIN_PASSWORD or the first start`,
  ];
  process.stderr.write(`${lines.join('\n')}\n`);
}

async function main(): Promise<void> {
  const { role, env } = parseArgs(process.argv.slice(2));
  const config = loadConfig(env);
  const log = createLogger(config.logLevel);
  const cloud = await startCloud(role, config, log);
  log.info({ role, readyMs: cloud.readyMs }, 'stratus ready');
  if (cloud.apiUrl) printBanner(cloud.apiUrl, config.temporal.uiUrl, cloud.readyMs, cloud.generatedAdminPassword);

  let stopping = false;
  const shutdown = (reason: string, code: number) => {
    if (stopping) {
      log.warn('second signal: exiting now');
      process.exit(1);
    }
    stopping = true;
    log.info({ reason }, 'shutting down');
    setTimeout(() => {
      log.error('shutdown took too long: exiting');
      process.exit(1);
    }, SHUTDOWN_DEADLINE_MS).unref();
    cloud.stop().then(
      () => process.exit(code),
      () => process.exit(1),
    );
  };
  process.on('SIGTERM', () => shutdown('SIGTERM', 0));
  process.on('SIGINT', () => shutdown('SIGINT', 0));
  void cloud.failed.then((err) => {
    log.error({ err }, 'a part of the cloud failed');
    process.stderr.write(`stratus: ${err.message}\n`);
    shutdown('failure', 1);
  });
}

main().catch((err: unknown) => {
  if (err instanceof MissingDependency || err instanceof ConfigError) {
    process.stderr.write(`stratus: ${err.message}\n`);
  } else {
    const message = err instanceof Error ? err.message : String(err);
    process.stderr.write(`stratus: failed to start: ${message}\n`);
    if (process.env.LOG_LEVEL === 'debug' && err instanceof Error) process.stderr.write(`${err.stack}\n`);
  }
  process.exit(1);
});
