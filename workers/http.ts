/** Starting and stopping the API's HTTP listener, with a one-line error when the port is taken. */
import http from 'node:http';
import type { Express } from 'express';
import { MissingDependency } from '../core/errors';

export function listen(app: Express, host: string, port: number): Promise<http.Server> {
  return new Promise((resolve, reject) => {
    const server = http.createServer(app);
    server.once('error', (err: NodeJS.ErrnoException) => {
      reject(
        err.code === 'EADDRINUSE'
          ? new MissingDependency(`port ${port} (STRATUS_API_PORT) is in use: stop what holds it or set STRATUS_API_PORT`)
          : err,
      );
    });
    server.listen(port, host, () => resolve(server));
  });
}

export function close(server: http.Server): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => resolve());
    server.closeIdleConnections();
    // Requests still in flight get 2 s, then their sockets are cut.
    setTimeout(() => server.closeAllConnections(), 2000).unref();
  });
}
