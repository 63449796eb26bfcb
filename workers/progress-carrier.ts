/**
 * The conductor's half of workflows/carried-progress.ts: an activity interceptor that strips the
 * progress write a workflow appended to a conductor activity's arguments and writes it, beside the
 * activity (both start together; the activity's result waits for both). The write is best effort,
 * as the local activity it replaces was: a failed write never fails the step.
 */
import type { ActivityInterceptorsFactory } from '@temporalio/worker';
import type { Logger } from '../core/log';
import { takeCarried, type ProgressWrite } from '../workflows/carried-progress';

export function progressCarrier(record: (write: ProgressWrite) => Promise<void>, log: Logger): ActivityInterceptorsFactory {
  return () => ({
    inbound: {
      async execute(input, next) {
        const { args, write } = takeCarried(input.args);
        if (!write) return next(input);
        const written = record(write).catch((err: unknown) => log.warn({ err, operation: write.operationId }, 'could not write the progress a step carried'));
        try {
          return await next({ ...input, args });
        } finally {
          await written;
        }
      },
    },
  });
}
