/** Driving the OpenStack-compatible surface from tests: a Keystone v3 login and X-Auth-Token calls. */
import { ADMIN_PASSWORD, type TestCloud } from './cloud';

export function passwordAuth(username: string, password: string, project?: { name?: string; id?: string }) {
  return {
    auth: {
      identity: { methods: ['password'], password: { user: { name: username, password, domain: { name: 'Default' } } } },
      ...(project ? { scope: { project: { ...project, ...(project.name ? { domain: { name: 'Default' } } : {}) } } } : {}),
    },
  };
}

/** A Keystone v3 token (X-Subject-Token) for `username` scoped to `project` (by name). */
export async function keystoneLogin(t: TestCloud, username = 'admin', password = ADMIN_PASSWORD, project = 'admin'): Promise<string> {
  const res = await t.call('POST', '/identity/v3/auth/tokens', { body: passwordAuth(username, password, { name: project }) });
  const token = res.headers.get('x-subject-token');
  if (res.status !== 201 || !token) throw new Error(`keystone login as ${username} failed: ${res.status} ${JSON.stringify(res.body)}`);
  return token;
}

/** TestCloud.call with X-Auth-Token (what OpenStack clients send) instead of a bearer header. */
export function osCall(t: TestCloud, token: string) {
  return (method: string, urlPath: string, options: { body?: unknown; headers?: Record<string, string> } = {}) =>
    t.call(method, urlPath, { ...options, headers: { 'x-auth-token': token, ...options.headers } });
}
