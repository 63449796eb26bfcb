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

/** A TCP port that is free on 127.0.0.1 right now (the OS picks it; tiny race until it is bound). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.once('error', reject);
    server.listen({ host: '127.0.0.1', port: 0 }, () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : undefined;
      server.close(() => (port ? resolve(port) : reject(new Error('no port from listen(0)'))));
    });
  });
}
