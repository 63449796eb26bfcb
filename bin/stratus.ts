/**
 * The `stratus` command: one executable for the cloud and its client.
 *
 *   stratus up|api|conductor|agent …   runs (a part of) the cloud   (bin/serve.ts)
 *   stratus login|server|image|…       the client of the public API (cli/main.ts)
 *
 * Each side is loaded only when used, so the client starts without loading Temporal or libvirt.
 */
const DAEMON_ROLES = new Set(['up', 'api', 'conductor', 'agent']);

const [command] = process.argv.slice(2);
if (command && DAEMON_ROLES.has(command)) {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  require('./serve');
} else {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { runCli } = require('../cli/main') as typeof import('../cli/main');
  void runCli(process.argv.slice(2));
}
