/** Reads a password from the terminal without echoing it. */
import readline from 'node:readline';
import { CliError } from './api-client';

export function readPassword(prompt: string): Promise<string> {
  if (!process.stdin.isTTY) {
    return Promise.reject(new CliError('no password: set STRATUS_PASSWORD or run from a terminal to be prompted'));
  }
  return new Promise((resolve) => {
    const rl = readline.createInterface({ input: process.stdin, output: process.stderr, terminal: true });
    const rlWithOutput = rl as unknown as { _writeToOutput: (s: string) => void };
    process.stderr.write(prompt);
    rlWithOutput._writeToOutput = () => undefined; // echo nothing while typing
    rl.question('', (answer) => {
      rl.close();
      process.stderr.write('\n');
      resolve(answer);
    });
  });
}
