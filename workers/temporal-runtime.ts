/**
 * The Temporal worker Runtime, installed once per process: its logs (SDK and, outside tests, the
 * native core's) go through pino, and it does not swallow SIGTERM/SIGINT — Stratus's own shutdown
 * handler (workers/up.ts) stops workers in order.
 */
import { DefaultLogger, Runtime, type LogEntry } from '@temporalio/worker';
import type { Logger } from '../core/log';

let installed = false;

const LEVELS = { TRACE: 'trace', DEBUG: 'debug', INFO: 'info', WARN: 'warn', ERROR: 'error' } as const;

export function installTemporalRuntime(log: Logger, options: { forwardCoreLogs: boolean }): void {
  if (installed) return;
  installed = true;
  const temporalLog = log.child({ component: 'temporal-sdk' });
  Runtime.install({
    logger: new DefaultLogger('INFO', (entry: LogEntry) => {
      temporalLog[LEVELS[entry.level]](entry.meta ?? {}, entry.message);
    }),
    shutdownSignals: [],
    telemetryOptions: {
      // Forwarding native logs keeps a handle open, which stops jest from exiting: tests log to console.
      logging: options.forwardCoreLogs
        ? { filter: { core: 'WARN', other: 'ERROR' }, forward: {} }
        : { filter: { core: 'ERROR', other: 'ERROR' }, console: {} },
    },
  });
}
