/** pino JSON logs. Every component takes a child logger (`log.child({ component })`). */
import pino, { type Logger } from 'pino';

export type { Logger };

export function createLogger(level: string = process.env.LOG_LEVEL ?? 'info'): Logger {
  return pino({ level, base: { service: 'stratus' }, timestamp: pino.stdTimeFunctions.isoTime });
}

/** A logger that drops everything: for tests that do not look at logs. */
export const silentLogger: Logger = pino({ level: 'silent' });
