/**
 * One console session per server (id `server:<id>:console`): the API's console reads (the one-shot
 * GET, each poll of the live stream, Nova's os-getConsoleOutput) are Temporal Updates of this one
 * workflow, started by the first read (update-with-start) instead of a workflow per read.
 *
 * - A read runs `readConsoleChunk` on the server's host (the host comes with each read, so a
 *   rescheduled server is followed) with the host profile's short bounds: a host that does not
 *   answer fails the read after 20 s with `HostUnavailable`, naming the host.
 * - Reads that arrive while one for the same host, domain and offset is on its way share its answer
 *   (a smaller `maxBytes` gets the tail of it): ten readers of one console cost one host round trip.
 * - The session ends `idleSeconds` after its last read (one timer per idle window, not per read), so
 *   a deleted server's session (the API answers 404 for its console) ends on its own, as does one
 *   whose readers went away. It continues as new after `readsPerRun` reads, or when Temporal
 *   suggests it, so its history stays small.
 *
 * No database, no Node: the API never reaches a host except through this workflow.
 */
import { allHandlersFinished, ApplicationFailure, condition, continueAsNew, setHandler, workflowInfo } from '@temporalio/workflow';
import { onHost } from './activity-proxies';
import { CONSOLE_HOST_UNAVAILABLE, CONSOLE_READ_FAILED, consoleReadUpdate, type ConsoleChunk, type ConsoleReadRequest, type ConsoleSessionInput } from './console-contract';
import { faultMessage, hostDidNotAnswer } from './progress';

/** Reads one run answers before it continues as new (each read adds ~10 history events). */
export const CONSOLE_READS_PER_RUN = 200;
/** The host activity's own bound (activities/compute/host.ts). */
const MAX_READ_BYTES = 1024 * 1024;

export async function serverConsoleSession(input: ConsoleSessionInput): Promise<void> {
  const idleMs = Math.max(1, input.idleSeconds) * 1000;
  const readsPerRun = Math.max(1, input.readsPerRun ?? CONSOLE_READS_PER_RUN);
  let lastReadAt = Date.now();
  let reads = 0;
  let active = 0;
  /** Host reads on their way, by host, domain and offset. */
  const inFlight = new Map<string, { maxBytes: number; chunk: Promise<ConsoleChunk> }>();

  setHandler(
    consoleReadUpdate,
    async (req) => {
      reads += 1;
      active += 1;
      try {
        const key = `${req.host}\n${req.domainName}\n${req.since ?? ''}`;
        const shared = inFlight.get(key);
        if (shared && shared.maxBytes >= req.maxBytes) {
          const chunk = await shared.chunk;
          return { output: utf8Tail(chunk.output, req.maxBytes), end: chunk.end };
        }
        const chunk = readChunk(input.serverId, req);
        inFlight.set(key, { maxBytes: req.maxBytes, chunk });
        try {
          return await chunk;
        } finally {
          if (inFlight.get(key)?.chunk === chunk) inFlight.delete(key);
        }
      } finally {
        active -= 1;
        lastReadAt = Date.now();
      }
    },
    { validator: validateRead },
  );

  const mustRoll = () => reads >= readsPerRun || workflowInfo().continueAsNewSuggested;
  for (;;) {
    if (mustRoll()) {
      await condition(allHandlersFinished);
      await continueAsNew<typeof serverConsoleSession>(input);
    }
    const idleLeft = lastReadAt + idleMs - Date.now();
    if (idleLeft > 0) await condition(mustRoll, idleLeft);
    else if (active > 0) await condition(() => active === 0 || mustRoll());
    else break;
  }
  await condition(allHandlersFinished);
}

async function readChunk(serverId: string, req: ConsoleReadRequest): Promise<ConsoleChunk> {
  try {
    return await onHost(req.host).readConsoleChunk({
      domainName: req.domainName,
      maxBytes: req.maxBytes,
      ...(req.since !== undefined ? { since: req.since } : {}),
    });
  } catch (err) {
    throw ApplicationFailure.create({
      message: `the console of server ${serverId} could not be read: ${faultMessage(err, req.host)}`,
      type: hostDidNotAnswer(err) ? CONSOLE_HOST_UNAVAILABLE : CONSOLE_READ_FAILED,
      nonRetryable: true,
    });
  }
}

/** Rejected reads leave no trace in the history. */
function validateRead(req: ConsoleReadRequest): void {
  if (typeof req?.host !== 'string' || req.host === '') throw new Error('read: host must be a host name');
  if (typeof req.domainName !== 'string' || req.domainName === '') throw new Error('read: domainName must be a domain name');
  if (!Number.isInteger(req.maxBytes) || req.maxBytes < 0 || req.maxBytes > MAX_READ_BYTES) throw new Error(`read: maxBytes must be an integer in 0..${MAX_READ_BYTES}`);
  if (req.since !== undefined && (!Number.isSafeInteger(req.since) || req.since < 0)) throw new Error('read: since must be a byte offset');
}

/** The last `maxBytes` bytes of `text` as UTF-8, not starting inside a character (as the host cuts a tail). */
export function utf8Tail(text: string, maxBytes: number): string {
  const bytes = new TextEncoder().encode(text);
  if (bytes.length <= maxBytes) return text;
  let start = bytes.length - maxBytes;
  for (let skipped = 0; skipped < 4 && start < bytes.length && ((bytes[start] ?? 0) & 0xc0) === 0x80; skipped++) start++;
  return new TextDecoder().decode(bytes.subarray(start));
}
