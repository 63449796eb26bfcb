import path from 'node:path';
import { ConfigError, loadConfig } from '../../core/config';

describe('loadConfig', () => {
  test('defaults: embedded PGlite and Temporal under ./.stratus, API on 8080, test driver', () => {
    const c = loadConfig({});
    expect(c.dataDir).toBe(path.resolve('.stratus'));
    expect(c.database).toEqual({ kind: 'pglite', dir: path.resolve('.stratus', 'db') });
    expect(c.api).toMatchObject({ port: 8080, publicUrl: 'http://localhost:8080' });
    expect(c.temporal).toMatchObject({ address: undefined, namespace: 'stratus', port: 7233, uiPort: 8233, uiUrl: 'http://localhost:8233' });
    expect(c.host.libvirtUri).toBe('test:///default');
    expect(c.identity.tokenTtlSeconds).toBe(3600);
  });

  test('the conductor task queue: stratus-conductor by default (empty is unset), or the one named', () => {
    expect(loadConfig({}).temporal.conductorTaskQueue).toBe('stratus-conductor');
    expect(loadConfig({ STRATUS_CONDUCTOR_TASK_QUEUE: '' }).temporal.conductorTaskQueue).toBe('stratus-conductor');
    expect(loadConfig({ STRATUS_CONDUCTOR_TASK_QUEUE: 'staging.conductor-2' }).temporal.conductorTaskQueue).toBe('staging.conductor-2');
  });

  test('DATABASE_URL selects PostgreSQL; TEMPORAL_ADDRESS an existing server; empty strings are unset', () => {
    const c = loadConfig({ DATABASE_URL: 'postgres://u@db:5432/stratus', TEMPORAL_ADDRESS: 'temporal:7233', STRATUS_ADMIN_PASSWORD: '' });
    expect(c.database).toEqual({ kind: 'postgres', url: 'postgres://u@db:5432/stratus' });
    expect(c.temporal.address).toBe('temporal:7233');
    expect(c.identity.adminPassword).toBeUndefined();
  });

  test.each([
    ['STRATUS_API_PORT', 'eighty'],
    ['STRATUS_API_PORT', '70000'],
    ['DATABASE_URL', 'mysql://x'],
    ['TEMPORAL_ADDRESS', 'http://temporal:7233'],
    ['STRATUS_HOST_NAME', 'bad name!'],
    ['STRATUS_ADMIN_PASSWORD', 'short'],
    ['LOG_LEVEL', 'loud'],
    ['STRATUS_CONDUCTOR_TASK_QUEUE', 'my queue'],
    ['STRATUS_CONDUCTOR_TASK_QUEUE', '  '],
    ['STRATUS_CONDUCTOR_TASK_QUEUE', 'host.compute1'],
  ])('a bad %s=%s stops start-up with a message naming it', (name, value) => {
    expect(() => loadConfig({ [name]: value })).toThrow(ConfigError);
    expect(() => loadConfig({ [name]: value })).toThrow(new RegExp(`^invalid configuration: ${name}=`));
  });
});
