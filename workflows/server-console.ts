/** Reads a server's serial console on its host: the API's only way to reach a host is through Temporal. */
import { onHost } from './activity-proxies';

export async function serverConsole(input: { host: string; domainName: string; maxBytes: number }): Promise<string> {
  return onHost(input.host).readConsole({ domainName: input.domainName, maxBytes: input.maxBytes });
}
