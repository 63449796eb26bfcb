/**
 * bench:api's floor under the floor: a bare Node HTTP server (no Express, no middleware) answering
 * every request with a constant JSON body, in a process of its own. What the machine and Node cost
 * per request, whatever Stratus does; its port goes to the parent over IPC.
 */
import http from 'node:http';

const server = http.createServer((_req, res) => {
  res.setHeader('content-type', 'application/json');
  res.end('{"status":"ok"}');
});
server.listen(0, '127.0.0.1', () => process.send!((server.address() as { port: number }).port));
process.on('disconnect', () => process.exit(0));
