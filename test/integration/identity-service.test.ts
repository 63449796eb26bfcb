/** The identity service on both engines: token lifetime, bootstrap, password rules. */
import { hashPassword, verifyPassword } from '../../services/passwords';
import { createIdentityService, TOKEN_CACHE_MS } from '../../services/identity';
import { engines, useDatabase } from '../support/databases';

describe.each(engines)('identity service on $name', (engine) => {
  const db = useDatabase(engine);
  let clock = new Date('2026-11-27T12:00:00Z');
  const service = () => createIdentityService({ db: db(), tokenTtlSeconds: 60, now: () => clock });

  test('bootstrap creates admin once; a second run changes nothing', async () => {
    const first = await service().bootstrapAdmin(undefined);
    expect(first.generatedPassword).toMatch(/^[A-Za-z0-9_-]{16}$/);
    expect(await service().bootstrapAdmin('another-password')).toEqual({});
    const { auth } = await service().issueToken({ username: 'admin', password: first.generatedPassword!, project: 'admin' });
    expect(auth.roles).toEqual(['admin']);
  });

  test('concurrent bootstraps make exactly one admin', async () => {
    const results = await Promise.all(Array.from({ length: 5 }, () => service().bootstrapAdmin('x-password')));
    expect(results.every((r) => r.generatedPassword === undefined)).toBe(true);
    const count = await db()('users').where({ name: 'admin' }).count<{ count: number }[]>({ count: '*' });
    expect(Number(count[0]!.count)).toBe(1);
  });

  test('a token works until it expires, and not one second after', async () => {
    const password = (await db()('users').where({ name: 'admin' }).first()) ? undefined : 'unused';
    expect(password).toBeUndefined();
    await db()('users').where({ name: 'admin' }).update({ password_hash: await hashPassword('known-password') });
    clock = new Date('2026-11-27T12:00:00Z');
    const { token } = await service().issueToken({ username: 'admin', password: 'known-password', project: 'admin' });
    clock = new Date('2026-11-27T12:00:59Z');
    expect((await service().resolveToken(token)).user.name).toBe('admin');
    clock = new Date('2026-11-27T12:01:01Z');
    await expect(service().resolveToken(token)).rejects.toThrow('the token is invalid, expired or revoked');
  });

  test('a resolved token is remembered at most TOKEN_CACHE_MS; a change through the service takes effect at once', async () => {
    clock = new Date();
    const s = service();
    const login = () => s.issueToken({ username: 'admin', password: 'known-password', project: 'admin' });

    // Revoked by another process (straight in the database): answered from memory for at most TOKEN_CACHE_MS.
    const first = await login();
    await s.resolveToken(first.token);
    await db()('tokens').where({ id: first.auth.tokenId }).update({ revoked_at: new Date() });
    await new Promise((r) => setTimeout(r, TOKEN_CACHE_MS + 50));
    await expect(s.resolveToken(first.token)).rejects.toThrow('the token is invalid, expired or revoked');

    // Revoked through the service: at once.
    const second = await login();
    await s.resolveToken(second.token);
    await s.revokeToken(second.auth.tokenId);
    await expect(s.resolveToken(second.token)).rejects.toThrow('the token is invalid, expired or revoked');

    // A user disabled, a role revoked through the service: at once.
    const user = await s.createUser({ name: `cache-${Date.now()}`, password: 'user-password' });
    const projectId = first.auth.project.id;
    await s.assignRole(projectId, user.id, 'member');
    const theirs = await s.issueToken({ username: user.name, password: 'user-password', project: 'admin' });
    expect((await s.resolveToken(theirs.token)).roles).toEqual(['member']);
    await s.assignRole(projectId, user.id, 'reader');
    expect((await s.resolveToken(theirs.token)).roles).toEqual(['member', 'reader']);
    await s.revokeRole(projectId, user.id, 'member');
    await s.revokeRole(projectId, user.id, 'reader');
    await expect(s.resolveToken(theirs.token)).rejects.toThrow('the token no longer grants any role on its project');
    await s.assignRole(projectId, user.id, 'member');
    await s.resolveToken(theirs.token);
    await s.updateUser(first.auth, user.id, { enabled: false });
    await expect(s.resolveToken(theirs.token)).rejects.toThrow('the token is invalid, expired or revoked');
  });

  test('tokens are stored only as hashes', async () => {
    clock = new Date();
    const { token } = await service().issueToken({ username: 'admin', password: 'known-password', project: 'admin' });
    const rows = await db()('tokens').select('token_hash');
    expect(rows.some((r: { token_hash: string }) => r.token_hash.includes(token) || token.includes(r.token_hash))).toBe(false);
  });
});

describe('passwords', () => {
  test('scrypt hashes verify, differ per salt, and reject a wrong or malformed hash', async () => {
    const a = await hashPassword('correct horse');
    const b = await hashPassword('correct horse');
    expect(a).not.toBe(b);
    expect(a).toMatch(/^scrypt\$32768\$8\$1\$/);
    expect(await verifyPassword('correct horse', a)).toBe(true);
    expect(await verifyPassword('wrong horse', a)).toBe(false);
    expect(await verifyPassword('correct horse', 'md5$abc')).toBe(false);
  });
});
