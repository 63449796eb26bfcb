/**
 * Where the CLI finds the API and its token: `stratus login` saves both in a config file readable by
 * its owner only (0600); STRATUS_URL and STRATUS_TOKEN override the saved login, as OS_* variables do
 * for the openstack CLI.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export interface SavedLogin {
  url: string;
  token: string;
  username?: string;
  project?: string;
  expiresAt?: string;
}

export function configPath(env: NodeJS.ProcessEnv = process.env): string {
  if (env.STRATUS_CONFIG) return env.STRATUS_CONFIG;
  const base = env.XDG_CONFIG_HOME || path.join(os.homedir(), '.config');
  return path.join(base, 'stratus', 'config.json');
}

export function readLogin(env: NodeJS.ProcessEnv = process.env): Partial<SavedLogin> {
  try {
    return JSON.parse(fs.readFileSync(configPath(env), 'utf8')) as Partial<SavedLogin>;
  } catch {
    return {};
  }
}

/** Writes the login with mode 0600 (also when the file already existed with looser permissions). */
export function saveLogin(login: SavedLogin, env: NodeJS.ProcessEnv = process.env): string {
  const file = configPath(env);
  fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
  const tmp = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, `${JSON.stringify(login, null, 2)}\n`, { mode: 0o600 });
  fs.chmodSync(tmp, 0o600);
  fs.renameSync(tmp, file);
  return file;
}

export function forgetLogin(env: NodeJS.ProcessEnv = process.env): void {
  fs.rmSync(configPath(env), { force: true });
}

/** The API base URL and token to use: the environment first, then the saved login. */
export function currentSession(env: NodeJS.ProcessEnv = process.env): { url: string | undefined; token: string | undefined } {
  const saved = readLogin(env);
  return { url: env.STRATUS_URL || saved.url, token: env.STRATUS_TOKEN || saved.token };
}
