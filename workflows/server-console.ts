/**
 * Read a server's serial console on its host, one workflow per read. Superseded by the per-server
 * console session (console-session.ts), which the API uses; still registered so that the histories
 * of runs started before it replay (docs/workflow-versioning.md: remove once none is kept).
 */
import { onHost } from './activity-proxies';

export async function serverConsole(input: { host: string; domainName: string; maxBytes: number }): Promise<string> {
  return onHost(input.host).readConsole({ domainName: input.domainName, maxBytes: input.maxBytes });
}
