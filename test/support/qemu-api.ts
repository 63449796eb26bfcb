/**
 * A whole Stratus cloud on real QEMU (qemu:///system, TCG) for the API-level guest test and the boot
 * bench: the test guest (scripts/build-test-guest.sh) uploaded through the image API as three images —
 * kernel, initramfs and a raw root disk whose kernel_id / ramdisk_id / os_command_line properties name
 * the other two — and a network with a /24 no route of this host uses.
 */
import fs from 'node:fs';
import path from 'node:path';
import { startTestCloud, type TestCloud } from './cloud';
import { freeSubnet, GUEST_DIR, GUEST_FILES, QEMU_URI, TEST_POOL, TEST_POOL_DIR } from './qemu-guest';
import { flavorId } from './stratus-fixtures';

export interface QemuCloud {
  t: TestCloud;
  token: string;
  imageId: string;
  flavorId: string;
  networkId: string;
  cidr: string;
}

async function uploadFile(t: TestCloud, token: string, name: string, file: string, properties: Record<string, string> = {}): Promise<string> {
  const created = await t.call('POST', '/v1/images', { token, body: { name, disk_format: 'raw', properties } });
  if (created.status !== 201) throw new Error(`image ${name}: ${created.status} ${JSON.stringify(created.body)}`);
  const res = await fetch(`${t.baseUrl}/v1/images/${created.body.id}/file`, {
    method: 'PUT',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/octet-stream' },
    body: fs.readFileSync(path.join(GUEST_DIR, file)),
  });
  if (res.status >= 300) throw new Error(`upload ${name}: ${res.status} ${await res.text()}`);
  return created.body.id as string;
}

export async function startQemuCloud(options: { publicUrlOnLoopback?: boolean } = {}): Promise<QemuCloud> {
  const t = await startTestCloud({
    ...options,
    env: { STRATUS_LIBVIRT_URI: QEMU_URI, STRATUS_STORAGE_POOL: TEST_POOL, STRATUS_STORAGE_POOL_DIR: TEST_POOL_DIR, STRATUS_METER_INTERVAL: '1' },
  });
  try {
    const token = await t.login();
    const kernel = await uploadFile(t, token, 'guest-kernel', GUEST_FILES.kernel);
    const initrd = await uploadFile(t, token, 'guest-initrd', GUEST_FILES.initrd);
    const imageId = await uploadFile(t, token, 'guest-root', GUEST_FILES.root, {
      kernel_id: kernel,
      ramdisk_id: initrd,
      os_command_line: 'console=ttyS0 no_timer_check',
    });
    const cidr = `10.213.${freeSubnet()}.0/24`;
    const net = await t.call('POST', '/v1/networks', { token, body: { name: `guest-net-${Date.now()}` } });
    const sub = await t.call('POST', '/v1/subnets', { token, body: { network_id: net.body.id, cidr } });
    if (sub.status !== 201) throw new Error(`subnet: ${sub.status} ${JSON.stringify(sub.body)}`);
    return { t, token, imageId, flavorId: await flavorId(t, token), networkId: net.body.id, cidr };
  } catch (err) {
    await t.stop();
    throw err;
  }
}

/** Polls the server's console until `pattern` shows up; returns the console and when it was seen. */
export async function waitForConsole(
  q: QemuCloud,
  serverId: string,
  pattern: RegExp,
  timeoutMs = 120_000,
  /** Each read is a short workflow on the host: polling fast steals CPU from TCG guests. */
  pollMs = 200,
): Promise<{ text: string; seenAt: number }> {
  const deadline = Date.now() + timeoutMs;
  let text = '';
  while (Date.now() < deadline) {
    const res = await q.t.call('GET', `/v1/servers/${serverId}/console`, { token: q.token });
    text = res.status === 200 ? String(res.body.output) : text;
    if (pattern.test(text)) return { text, seenAt: performance.now() };
    await new Promise((r) => setTimeout(r, pollMs));
  }
  throw new Error(`console of ${serverId} never showed ${pattern} within ${timeoutMs / 1000} s; it shows:\n${text.slice(-2000)}`);
}

/** A whole console line (the guest's tty writes CRLF), the argument taken literally. */
export function consoleLine(line: string): RegExp {
  return new RegExp(`(^|\\n)${line.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\\r?\\n`);
}
