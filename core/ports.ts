/** Checking a TCP port before a long start-up, so a taken port fails in a second with one clear line. */
import net from 'node:net';
import { MissingDependency } from './errors';

export async function assertPortFree(host: string, port: number, variable: string): Promise<void> {
  const problem = await new Promise<string | undefined>((resolve) => {
    const server = net.createServer();
    server.once('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
    server.listen({ host, port, exclusive: true }, () => server.close(() => resolve(undefined)));
  });
  if (problem === 'EADDRINUSE') {
    throw new MissingDependency(`port ${port} (${variable}) is in use: stop what holds it or set ${variable}`);
  }
  if (problem !== undefined) {
    throw new MissingDependency(`port ${port} (${variable}) cannot be bound on ${host} (${problem}): set ${variable}`);
  }
}
