/**
 * A console session across a conductor SIGKILL, against a cloud of separate processes
 * (test/chaos/cluster.ts: api, conductor, one agent on libvirtd's test driver, PostgreSQL, Temporal):
 * a live stream is open when the conductor that runs the session dies; the restarted conductor picks
 * the session up (its history replays), the stream goes on with nothing lost or repeated, and once
 * the stream is closed the session ends after its idle bound. No per-read workflow is ever started.
 *
 * Gate as the chaos suite's (test/support/gates.ts): needs libvirtd.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createLogger } from '../../core/log';
import { connectTemporal } from '../../temporal/connection';
import { consoleSessionWorkflowId } from '../../workflows/console-contract';
import { apiCaller } from '../support/cloud';
import { HOST_TESTS_REQUIRED, libvirtdPresent, LIBVIRTD_SOCKET } from '../support/gates';
import { createNetwork, flavorId, uploadRawImage, type ApiOf } from '../support/stratus-fixtures';
import { ChaosCluster, sleep } from './cluster';

const IDLE_SECONDS = 5;

if (!HOST_TESTS_REQUIRED && !libvirtdPresent()) {
  test.todo(`console chaos is off: no libvirtd at ${LIBVIRTD_SOCKET} (run scripts/setup-qemu.sh, then npm test -- test/chaos)`);
} else {
  const cluster = new ChaosCluster(createLogger(process.env.STRATUS_CHAOS_LOG_LEVEL ?? 'silent'), path.join(os.tmpdir(), 'stratus-chaos'), {
    STRATUS_CONSOLE_IDLE_SECONDS: String(IDLE_SECONDS),
  });
  let api: ApiOf;
  let token: string;
  let temporal: Awaited<ReturnType<typeof connectTemporal>> | undefined;
  let passed = false;

  beforeAll(async () => {
    await cluster.start(['h1']);
    api = { baseUrl: cluster.apiUrl, call: apiCaller(cluster.apiUrl) };
    const login = await api.call('POST', '/v1/auth/tokens', { body: { username: 'admin', password: cluster.adminPassword, project: 'admin' } });
    token = login.body.token as string;
    temporal = await connectTemporal(cluster.temporalAddress, 'stratus');
  }, 240_000);

  afterAll(async () => {
    await temporal?.connection.close();
    await cluster.stop();
    if (passed) fs.rmSync(cluster.dir, { recursive: true, force: true });
    else process.stderr.write(`console chaos logs: ${cluster.dir}\n`);
  }, 120_000);

  async function until<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs: number): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const value = await probe().catch(() => undefined);
      if (value !== undefined) return value;
      if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs / 1000} s (logs: ${cluster.dir})`);
      await sleep(250);
    }
  }

  test('conductor SIGKILL while a stream reads: the session is picked up again, the stream loses nothing, then it ends idle', async () => {
    const [imageId, tiny, net] = await Promise.all([uploadRawImage(api, token), flavorId(api, token), createNetwork(api, token, '10.78.0.0/24')]);
    const created = await api.call('POST', '/v1/servers', { token, body: { name: 'console-chaos', flavor_id: tiny, image_id: imageId, networks: [{ network_id: net.networkId }] } });
    expect(created.status).toBe(202);
    const id = created.body.server.id as string;
    await until('server ACTIVE', async () => ((await api.call('GET', `/v1/servers/${id}`, { token })).body.status === 'ACTIVE' ? true : undefined), 90_000);
    const log = path.join(cluster.dir, 'h1', 'hosts', cluster.hostName('h1'), 'console', `stratus-${id}.log`);
    fs.mkdirSync(path.dirname(log), { recursive: true });
    fs.appendFileSync(log, 'before the kill\n');

    const controller = new AbortController();
    const res = await fetch(`${api.baseUrl}/v1/servers/${id}/console/stream`, { headers: { authorization: `Bearer ${token}` }, signal: controller.signal });
    expect(res.status).toBe(200);
    const received = { data: '', errors: [] as string[] };
    const pump = (async () => {
      const reader = res.body!.getReader();
      const decoder = new TextDecoder();
      let buffer = '';
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return;
        buffer += decoder.decode(value, { stream: true });
        for (let cut = buffer.indexOf('\n\n'); cut >= 0; cut = buffer.indexOf('\n\n')) {
          const event = buffer.slice(0, cut);
          buffer = buffer.slice(cut + 2);
          const data = event.split('\n').find((l) => l.startsWith('data: '));
          if (data && event.startsWith('event: error')) received.errors.push(JSON.parse(data.slice(6)) as string);
          else if (data) received.data += JSON.parse(data.slice(6)) as string;
        }
      }
    })().catch(() => undefined);
    await until('the first line on the stream', async () => (received.data.includes('before the kill') ? true : undefined), 30_000);

    const session = temporal!.client.workflow.getHandle(consoleSessionWorkflowId(id));
    const runBefore = (await session.describe()).runId;
    await cluster.kill('conductor');
    const killedAt = Date.now();
    fs.appendFileSync(log, 'while the conductor is down\n');
    await sleep(3000);
    await cluster.startRole('conductor');
    await until('the line written while down', async () => (received.data.includes('while the conductor is down') ? true : undefined), 60_000);
    const resumedS = (Date.now() - killedAt) / 1000;
    fs.appendFileSync(log, 'after the restart\n');
    await until('the line written after', async () => (received.data.includes('after the restart') ? true : undefined), 30_000);
    process.stderr.write(`console chaos: the stream resumed ${resumedS.toFixed(1)} s after the SIGKILL (restart included); error events: ${JSON.stringify(received.errors)}\n`);
    expect(received.data).toBe('before the kill\nwhile the conductor is down\nafter the restart\n');
    // The same run went on (picked up by the new conductor), not a new session.
    expect((await session.describe()).runId).toBe(runBefore);

    controller.abort();
    await pump;
    const status = await until(
      'the session to end once idle',
      async () => {
        const s = (await session.describe()).status.name;
        return s === 'RUNNING' ? undefined : s;
      },
      (IDLE_SECONDS + 30) * 1000,
    );
    expect(status).toBe('COMPLETED');
    let perRead = 0;
    for await (const wf of temporal!.client.workflow.list({ query: 'WorkflowType="serverConsole"' })) if (wf.workflowId.includes(id)) perRead += 1;
    expect(perRead).toBe(0);

    expect((await api.call('DELETE', `/v1/servers/${id}`, { token })).status).toBe(202);
    await until('server gone', async () => ((await api.call('GET', `/v1/servers/${id}`, { token })).status === 404 ? true : undefined), 60_000);
    passed = true;
  }, 300_000);
}
