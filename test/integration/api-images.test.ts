/**
 * Images over HTTP against a whole in-process cloud, with response validation on: the catalog,
 * streamed uploads and downloads (byte-identical, format-checked, all-or-nothing), visibility across
 * projects, protection, signed download URLs for host agents, and memory that stays flat while
 * 50 MB pass through.
 */
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { Conflict, InvalidInput, NotFound } from '../../core/errors';
import * as images from '../../db/repositories/images';
import * as projects from '../../db/repositories/projects';
import { ImageUrlSigner } from '../../images/signed-url';
import { startTestCloud, type TestCloud } from '../support/cloud';
import { engines, useDatabase } from '../support/databases';

let t: TestCloud;
let admin: string;
let alice: string; // member of team-a
let bob: string; // member of team-b
let carol: string; // reader of team-a
let teamA: { id: string };
let signer: ImageUrlSigner;

const MiB = 1024 * 1024;
const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');

/**
 * A valid, empty qcow2 (version 2) image built by hand: header, a one-entry refcount table, one
 * refcount block and a one-entry L1 table, each in its own 64 KiB cluster; what `qemu-img create -f
 * qcow2 x.qcow2 <virtualSize>` lays out (qemu-img is not needed to run this test).
 */
function qcow2Image(virtualSize: number): Buffer {
  const cluster = 64 * 1024;
  const image = Buffer.alloc(4 * cluster);
  image.write('QFI\xfb', 0, 'latin1');
  image.writeUInt32BE(2, 4); // version
  image.writeBigUInt64BE(0n, 8); // backing_file_offset
  image.writeUInt32BE(0, 16); // backing_file_size
  image.writeUInt32BE(16, 20); // cluster_bits: 64 KiB
  image.writeBigUInt64BE(BigInt(virtualSize), 24); // size
  image.writeUInt32BE(0, 32); // crypt_method
  image.writeUInt32BE(Math.max(1, Math.ceil(virtualSize / (cluster * (cluster / 8)))), 36); // l1_size
  image.writeBigUInt64BE(BigInt(3 * cluster), 40); // l1_table_offset
  image.writeBigUInt64BE(BigInt(cluster), 48); // refcount_table_offset
  image.writeUInt32BE(1, 56); // refcount_table_clusters
  image.writeUInt32BE(0, 60); // nb_snapshots
  image.writeBigUInt64BE(0n, 64); // snapshots_offset
  image.writeBigUInt64BE(BigInt(2 * cluster), cluster); // refcount table[0] → refcount block
  for (let i = 0; i < 4; i += 1) image.writeUInt16BE(1, 2 * cluster + 2 * i); // clusters 0..3 in use
  return image;
}

function expectProblem(res: { status: number; body: any; headers: Headers }, status: number) {
  expect(res.status).toBe(status);
  expect(res.headers.get('content-type')).toMatch(/^application\/problem\+json/);
  expect(res.body).toMatchObject({ status, title: expect.any(String), detail: expect.any(String) });
}

async function createImage(token: string, body: Record<string, unknown>): Promise<any> {
  const res = await t.call('POST', '/v1/images', { token, body });
  if (res.status !== 201) throw new Error(`create image: ${res.status} ${JSON.stringify(res.body)}`);
  return res.body;
}

/** PUT the data (a Buffer, or a stream of chunks sent as they are produced). */
async function upload(
  token: string | undefined,
  id: string,
  data: Buffer | ReadableStream<Uint8Array>,
  contentType = 'application/octet-stream',
): Promise<{ status: number; body: any; headers: Headers }> {
  const res = await fetch(`${t.baseUrl}/v1/images/${id}/file`, {
    method: 'PUT',
    headers: { 'content-type': contentType, ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: data,
    ...(data instanceof ReadableStream ? { duplex: 'half' } : {}),
  } as RequestInit);
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : undefined, headers: res.headers };
}

/** GET the data, hashing it as it streams (never holding it whole unless `keep`). */
async function download(url: string, token?: string, keep = true) {
  const res = await fetch(url.startsWith('http') ? url : `${t.baseUrl}${url}`, { headers: token ? { authorization: `Bearer ${token}` } : {} });
  const hash = createHash('sha256');
  const parts: Buffer[] = [];
  let size = 0;
  if (res.body) {
    for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
      hash.update(chunk);
      size += chunk.length;
      if (keep) parts.push(Buffer.from(chunk));
    }
  }
  const bytes = Buffer.concat(parts);
  let body: any;
  if (!res.ok) body = JSON.parse(bytes.toString('utf8'));
  return { status: res.status, headers: res.headers, bytes, size, sha256: hash.digest('hex'), body };
}

/**
 * `count` MiB produced chunk by chunk as the upload pulls them: the same 1 MiB buffer each time (so
 * the sender allocates nothing per chunk), starting with a byte that rules out the qcow2 magic.
 */
function generated(count: number, seed: Buffer): { stream: ReadableStream<Uint8Array>; sha256: () => string } {
  const chunk = Buffer.alloc(MiB);
  for (let i = 0; i < MiB; i += seed.length) seed.copy(chunk, i);
  chunk[0] = 0;
  const hash = createHash('sha256');
  for (let i = 0; i < count; i += 1) hash.update(chunk);
  const digest = hash.digest('hex');
  let sent = 0;
  const stream = new ReadableStream<Uint8Array>({
    pull(controller) {
      if (sent === count) return controller.close();
      sent += 1;
      controller.enqueue(chunk);
    },
  });
  return { stream, sha256: () => digest };
}

function storeFiles(): string[] {
  return fs.existsSync(t.config.images.storeDir) ? fs.readdirSync(t.config.images.storeDir).sort() : [];
}

beforeAll(async () => {
  t = await startTestCloud();
  admin = await t.login();
  teamA = (await t.call('POST', '/v1/projects', { token: admin, body: { name: 'img-team-a' } })).body;
  const teamB = (await t.call('POST', '/v1/projects', { token: admin, body: { name: 'img-team-b' } })).body;
  for (const [name, project, role] of [
    ['img-alice', teamA, 'member'],
    ['img-bob', teamB, 'member'],
    ['img-carol', teamA, 'reader'],
  ] as const) {
    const user = (await t.call('POST', '/v1/users', { token: admin, body: { name, password: `${name}-password` } })).body;
    expect((await t.call('PUT', `/v1/projects/${project.id}/users/${user.id}/roles/${role}`, { token: admin })).status).toBe(204);
  }
  alice = await t.login('img-alice', 'img-alice-password', 'img-team-a');
  bob = await t.login('img-bob', 'img-bob-password', 'img-team-b');
  carol = await t.login('img-carol', 'img-carol-password', 'img-team-a');
  // `stratus up` generated the URL-signing key into the data dir; the conductor would sign with it.
  signer = new ImageUrlSigner(fs.readFileSync(path.join(t.config.dataDir, 'secret.key'), 'utf8').trim());
}, 90_000);

afterAll(async () => {
  await t?.stop();
});

describe('upload and download', () => {
  test('a raw image of a few MB and a qcow2 image go up and come back byte-identical', async () => {
    const raw = randomBytes(5 * MiB);
    raw[0] = 0; // certainly not the qcow2 magic
    const qcow2 = qcow2Image(64 * MiB);
    for (const [data, format] of [
      [raw, 'raw'],
      [qcow2, 'qcow2'],
    ] as const) {
      const image = await createImage(alice, { name: `up-${format}`, disk_format: format, properties: { os_distro: 'cirros' } });
      expect(image).toMatchObject({
        name: `up-${format}`,
        status: 'queued',
        disk_format: format,
        visibility: 'private',
        protected: false,
        min_disk_gb: 0,
        min_ram_mb: 0,
        size_bytes: null,
        checksum_sha256: null,
        project_id: teamA.id,
        properties: { os_distro: 'cirros' },
        file: `/v1/images/${image.id}/file`,
      });

      const uploaded = await upload(alice, image.id, data);
      expect(uploaded.status).toBe(200);
      expect(uploaded.body).toMatchObject({ id: image.id, status: 'active', size_bytes: data.length, checksum_sha256: sha256(data) });
      expect((await t.call('GET', `/v1/images/${image.id}`, { token: alice })).body.status).toBe('active');

      const got = await download(`/v1/images/${image.id}/file`, alice);
      expect(got.status).toBe(200);
      expect(got.bytes.equals(data)).toBe(true);
      expect(got.headers.get('content-type')).toBe('application/octet-stream');
      expect(got.headers.get('content-length')).toBe(String(data.length));
      expect(got.headers.get('x-checksum-sha256')).toBe(sha256(data));
      expect(got.headers.get('digest')).toBe(`sha-256=${createHash('sha256').update(data).digest('base64')}`);
      expect(fs.readFileSync(path.join(t.config.images.storeDir, image.id)).equals(data)).toBe(true);
    }
  });

  test('a second upload to an active image is 409, and the data stays as it was', async () => {
    const data = Buffer.from('first version of the disk');
    const image = await createImage(alice, { name: 'twice', disk_format: 'raw' });
    expect((await upload(alice, image.id, data)).status).toBe(200);
    expectProblem(await upload(alice, image.id, Buffer.from('second version')), 409);
    expect((await download(`/v1/images/${image.id}/file`, alice)).bytes.equals(data)).toBe(true);
  });

  test('data of the wrong format is 400 naming body; the image stays queued and nothing is stored', async () => {
    const asRaw = await createImage(alice, { name: 'raw-but-qcow2', disk_format: 'raw' });
    const rejected = await upload(alice, asRaw.id, qcow2Image(MiB));
    expectProblem(rejected, 400);
    expect(rejected.body.fields).toEqual([{ field: 'body', message: expect.stringMatching(/is a qcow2 image/) }]);
    expect((await t.call('GET', `/v1/images/${asRaw.id}`, { token: alice })).body).toMatchObject({ status: 'queued', size_bytes: null });

    const asQcow2 = await createImage(alice, { name: 'qcow2-but-raw', disk_format: 'qcow2' });
    const big = await upload(alice, asQcow2.id, generated(8, Buffer.from('not a qcow2 header')).stream);
    expectProblem(big, 400);
    expect(big.body.fields[0].field).toBe('body');
    expect(big.body.detail).toMatch(/not a qcow2 image/);
    expectProblem(await upload(alice, asQcow2.id, Buffer.alloc(0)), 400);
    expect((await t.call('GET', `/v1/images/${asQcow2.id}`, { token: alice })).body.status).toBe('queued');
    expect(storeFiles()).not.toEqual(expect.arrayContaining([asRaw.id]));
    expect(storeFiles().filter((f) => f.startsWith('.tmp-') || f === asQcow2.id)).toEqual([]);

    // Still queued, so the right data is accepted afterwards.
    const qcow2 = qcow2Image(MiB);
    expect((await upload(alice, asQcow2.id, qcow2)).body).toMatchObject({ status: 'active', checksum_sha256: sha256(qcow2) });
  });

  test('a body that is not application/octet-stream is 415; downloading an image without data is 409', async () => {
    const image = await createImage(alice, { name: 'no-data', disk_format: 'raw' });
    expectProblem(await upload(alice, image.id, Buffer.from('{"a":1}'), 'application/json'), 415);
    expectProblem(await upload(alice, image.id, Buffer.from('plain'), 'text/plain'), 415);
    const got = await download(`/v1/images/${image.id}/file`, alice);
    expect(got.status).toBe(409);
    expect(got.body.detail).toMatch(/no data \(status queued\)/);
  });

  test('a client that aborts mid-upload leaves the image queued and no partial file', async () => {
    const image = await createImage(alice, { name: 'aborted', disk_format: 'raw' });
    const url = new URL(`${t.baseUrl}/v1/images/${image.id}/file`);
    await new Promise<void>((resolve) => {
      const req = http.request({
        host: url.hostname,
        port: url.port,
        path: url.pathname,
        method: 'PUT',
        headers: { authorization: `Bearer ${alice}`, 'content-type': 'application/octet-stream', 'content-length': String(20 * MiB) },
      });
      req.on('error', () => resolve());
      req.write(Buffer.alloc(2 * MiB, 1), () => {
        // Let the server start saving, then cut the connection.
        setTimeout(() => {
          req.destroy();
          resolve();
        }, 200);
      });
    });
    const settled = await t.waitFor(`/v1/images/${image.id}`, alice, (res) => res.body.status === 'queued', 10_000);
    expect(settled.body).toMatchObject({ status: 'queued', size_bytes: null, checksum_sha256: null });
    expect(storeFiles().filter((f) => f.includes(image.id))).toEqual([]);
    // And it can be uploaded properly afterwards.
    expect((await upload(alice, image.id, Buffer.from('complete'))).body.status).toBe('active');
  });

  test('an upload is written to disk as it arrives, not after', async () => {
    const image = await createImage(alice, { name: 'streamed', disk_format: 'raw' });
    let release: () => void = () => undefined;
    const held = new Promise<void>((resolve) => (release = resolve));
    const seed = randomBytes(MiB);
    seed[0] = 0;
    let sent = 0;
    const body = new ReadableStream<Uint8Array>({
      async pull(controller) {
        if (sent === 8) await held; // half sent: hold the rest back until the check below
        if (sent === 16) return controller.close();
        sent += 1;
        controller.enqueue(seed);
      },
    });
    const uploading = upload(alice, image.id, body);
    const temp = () => storeFiles().find((f) => f.startsWith(`.tmp-${image.id}`));
    const deadline = Date.now() + 10_000;
    let written = 0;
    while (Date.now() < deadline && written < 6 * MiB) {
      const name = temp();
      written = name ? fs.statSync(path.join(t.config.images.storeDir, name)).size : 0;
      await new Promise((r) => setTimeout(r, 20));
    }
    expect((await t.call('GET', `/v1/images/${image.id}`, { token: alice })).body.status).toBe('saving');
    release();
    expect(written).toBeGreaterThanOrEqual(6 * MiB); // most of the first half is on disk while the second half waits
    expect((await uploading).body).toMatchObject({ status: 'active', size_bytes: 16 * MiB });
  });

  test('50 MB pass through without the process RSS growing by anything near 50 MB', async () => {
    const image = await createImage(alice, { name: 'fifty', disk_format: 'raw' });
    // Warm up (undici, the first request's allocations), then measure from a settled baseline.
    const warm = await createImage(alice, { name: 'warm', disk_format: 'raw' });
    await upload(alice, warm.id, generated(4, randomBytes(4096)).stream);
    await download(`/v1/images/${warm.id}/file`, alice, false);
    const baseline = process.memoryUsage().rss;
    let peak = baseline;
    const sampler = setInterval(() => {
      peak = Math.max(peak, process.memoryUsage().rss);
    }, 5);
    try {
      const data = generated(50, randomBytes(4096));
      const uploaded = await upload(alice, image.id, data.stream);
      expect(uploaded.status).toBe(200);
      expect(uploaded.body).toMatchObject({ size_bytes: 50 * MiB, checksum_sha256: data.sha256() });
      const got = await download(`/v1/images/${image.id}/file`, alice, false);
      expect(got.size).toBe(50 * MiB);
      expect(got.sha256).toBe(data.sha256());
    } finally {
      clearInterval(sampler);
    }
    const growth = (Math.max(peak, process.memoryUsage().rss) - baseline) / MiB;
    // Client and server share this process, so the data crossed it twice (in and out of the API);
    // garbage from the streams' chunks comes and goes with V8's collections, but nothing holds the image.
    expect(growth).toBeLessThan(40);
  });
});

describe('catalog and visibility', () => {
  let privateImage: any;
  let publicImage: any;
  beforeAll(async () => {
    privateImage = await createImage(alice, { name: 'alice-private', disk_format: 'raw', min_disk_gb: 1, min_ram_mb: 256 });
    await upload(alice, privateImage.id, Buffer.from('alice private disk'));
    publicImage = await createImage(admin, { name: 'Public Cirros 0.6', disk_format: 'raw', visibility: 'public' });
    await upload(admin, publicImage.id, Buffer.from('public disk'));
  });

  test("another project's private image does not exist for it; public images are everyone's to read", async () => {
    expectProblem(await t.call('GET', `/v1/images/${privateImage.id}`, { token: bob }), 404);
    expect((await download(`/v1/images/${privateImage.id}/file`, bob)).status).toBe(404);
    expectProblem(await t.call('PATCH', `/v1/images/${privateImage.id}`, { token: bob, body: { name: 'mine' } }), 404);
    expectProblem(await t.call('DELETE', `/v1/images/${privateImage.id}`, { token: bob }), 404);

    expect((await t.call('GET', `/v1/images/${publicImage.id}`, { token: bob })).body).toMatchObject({ visibility: 'public', status: 'active' });
    const got = await download(`/v1/images/${publicImage.id}/file`, bob);
    expect(got.bytes.toString()).toBe('public disk');
    expectProblem(await t.call('PATCH', `/v1/images/${publicImage.id}`, { token: bob, body: { name: 'mine' } }), 403);
    expectProblem(await t.call('DELETE', `/v1/images/${publicImage.id}`, { token: bob }), 403);
    expectProblem(await upload(bob, publicImage.id, Buffer.from('x')), 403);

    const bobs = (await t.call('GET', '/v1/images?limit=1000', { token: bob })).body.images.map((i: { id: string }) => i.id);
    expect(bobs).toContain(publicImage.id);
    expect(bobs).not.toContain(privateImage.id);
    const alices = (await t.call('GET', '/v1/images?limit=1000', { token: alice })).body.images.map((i: { id: string }) => i.id);
    expect(alices).toEqual(expect.arrayContaining([publicImage.id, privateImage.id]));
  });

  test('public needs admin (403 naming body.visibility); readers read but do not write', async () => {
    const res = await t.call('POST', '/v1/images', { token: alice, body: { name: 'mine', disk_format: 'raw', visibility: 'public' } });
    expectProblem(res, 403);
    expect(res.body.fields).toEqual([{ field: 'body.visibility', message: expect.any(String) }]);
    expectProblem(await t.call('PATCH', `/v1/images/${privateImage.id}`, { token: alice, body: { visibility: 'public' } }), 403);
    expect((await t.call('GET', `/v1/images/${privateImage.id}`, { token: alice })).body.visibility).toBe('private');

    expect((await t.call('GET', `/v1/images/${privateImage.id}`, { token: carol })).status).toBe(200);
    expectProblem(await t.call('POST', '/v1/images', { token: carol, body: { name: 'x', disk_format: 'raw' } }), 403);
    expectProblem(await t.call('PATCH', `/v1/images/${privateImage.id}`, { token: carol, body: { name: 'x' } }), 403);
  });

  test('the owner patches name, protection and properties (replaced whole); an admin may publish', async () => {
    const patched = await t.call('PATCH', `/v1/images/${privateImage.id}`, {
      token: alice,
      body: { name: 'alice renamed', properties: { hw_disk_bus: 'virtio' } },
    });
    expect(patched.status).toBe(200);
    expect(patched.body).toMatchObject({ name: 'alice renamed', properties: { hw_disk_bus: 'virtio' }, status: 'active' });
    const published = await t.call('PATCH', `/v1/images/${privateImage.id}`, { token: admin, body: { visibility: 'public' } });
    expect(published.body.visibility).toBe('public');
    expect((await t.call('GET', `/v1/images/${privateImage.id}`, { token: bob })).status).toBe(200);
    await t.call('PATCH', `/v1/images/${privateImage.id}`, { token: alice, body: { visibility: 'private' } });
    expectProblem(await t.call('GET', `/v1/images/${privateImage.id}`, { token: bob }), 404);
  });

  test('bad input names the field', async () => {
    const badFormat = await t.call('POST', '/v1/images', { token: alice, body: { name: 'x', disk_format: 'vmdk' } });
    expectProblem(badFormat, 400);
    expect(badFormat.body.fields[0].field).toBe('body.disk_format');
    const badProps = await t.call('POST', '/v1/images', { token: alice, body: { name: 'x', disk_format: 'raw', properties: { n: 1 } } });
    expectProblem(badProps, 400);
    expect(badProps.body.fields[0].field).toMatch(/^body\.properties/);
    const badId = await t.call('GET', '/v1/images/not-a-uuid', { token: alice });
    expect(badId.body.fields[0].field).toBe('path.image_id');
    expectProblem(await t.call('PATCH', `/v1/images/${privateImage.id}`, { token: alice, body: {} }), 400);
    expectProblem(await t.call('PATCH', `/v1/images/${privateImage.id}`, { token: alice, body: { status: 'active' } }), 400);
  });

  test('lists page with a next cursor, each image once', async () => {
    for (let i = 0; i < 3; i += 1) await createImage(bob, { name: `bob-${i}`, disk_format: 'raw' });
    const seen: string[] = [];
    let marker: string | null = null;
    do {
      const query: string = marker ? `&marker=${encodeURIComponent(marker)}` : '';
      const page = await t.call('GET', `/v1/images?limit=2${query}`, { token: bob });
      expect(page.status).toBe(200);
      expect(page.body.images.length).toBeLessThanOrEqual(2);
      seen.push(...page.body.images.map((i: { id: string }) => i.id));
      marker = page.body.next;
    } while (marker);
    expect(new Set(seen).size).toBe(seen.length);
    expect(seen).toContain(publicImage.id);
    expect(seen.length).toBeGreaterThanOrEqual(4);
  });
});

describe('protection and deletion', () => {
  test('a protected image cannot be deleted (409) until unprotected; deleting removes its data', async () => {
    const image = await createImage(alice, { name: 'precious', disk_format: 'raw', protected: true });
    await upload(alice, image.id, Buffer.from('precious bytes'));
    expect(storeFiles()).toContain(image.id);
    const refused = await t.call('DELETE', `/v1/images/${image.id}`, { token: alice });
    expectProblem(refused, 409);
    expect(refused.body.detail).toMatch(/protected/);
    expect((await t.call('PATCH', `/v1/images/${image.id}`, { token: alice, body: { protected: false } })).body.protected).toBe(false);
    expect((await t.call('DELETE', `/v1/images/${image.id}`, { token: alice })).status).toBe(204);
    expectProblem(await t.call('GET', `/v1/images/${image.id}`, { token: alice }), 404);
    expect(storeFiles()).not.toContain(image.id);
  });
});

describe('signed download URLs (host agents: no token)', () => {
  let image: any;
  const data = randomBytes(300 * 1024);
  beforeAll(async () => {
    data[0] = 1;
    image = await createImage(alice, { name: 'for-hosts', disk_format: 'raw' });
    await upload(alice, image.id, data);
  });

  test('a valid signed URL downloads without a token', async () => {
    const url = signer.signedImageUrl(t.baseUrl, image.id, 60);
    const got = await download(url);
    expect(got.status).toBe(200);
    expect(got.bytes.equals(data)).toBe(true);
    expect(got.headers.get('x-checksum-sha256')).toBe(sha256(data));
  });

  test('tampered or expired signatures are 403; no token and no signature is 401', async () => {
    const url = new URL(signer.signedImageUrl(t.baseUrl, image.id, 60));
    const signature = url.searchParams.get('signature') ?? '';
    const expires = Number(url.searchParams.get('expires'));

    const flipped = `${signature.slice(0, 10)}${signature[10] === 'A' ? 'B' : 'A'}${signature.slice(11)}`;
    const tampered = await download(`/v1/images/${image.id}/file?expires=${expires}&signature=${flipped}`);
    expect(tampered.status).toBe(403);
    expect(tampered.body.detail).toMatch(/signature/);
    // Extending the expiry breaks the signature too.
    expect((await download(`/v1/images/${image.id}/file?expires=${expires + 3600}&signature=${signature}`)).status).toBe(403);
    // Another image's URL does not open this one.
    const other = new URL(signer.signedImageUrl(t.baseUrl, '00000000-0000-4000-8000-000000000000', 60));
    expect((await download(`/v1/images/${image.id}/file${other.search}`)).status).toBe(403);

    const past = Math.floor(Date.now() / 1000) - 10;
    const expired = await download(`/v1/images/${image.id}/file?expires=${past}&signature=${signer.sign(image.id, past)}`);
    expect(expired.status).toBe(403);
    expect(expired.body.detail).toMatch(/expired/);

    const anonymous = await download(`/v1/images/${image.id}/file`);
    expect(anonymous.status).toBe(401);
    expect((await download(`/v1/images/${image.id}/file?expires=${expires}`)).status).toBe(401);
    // A signature opens the data only, nothing else (a call without a token is 401 before its query is looked at).
    expectProblem(await t.call('GET', `/v1/images/${image.id}${url.search}`), 401);
  });
});

describe.each(engines)('images repository on $name', (engine) => {
  const database = useDatabase(engine);

  test('transition is atomic: of 5 racing queued → saving moves, exactly one wins; the rest are Conflict', async () => {
    const db = database();
    const project = await projects.create(db, { name: `repo-${engine.name}-${randomBytes(3).toString('hex')}` });
    const image = await images.create(db, { projectId: project.id, name: 'race', diskFormat: 'qcow2', properties: { a: 'b' } });
    expect(image).toMatchObject({ status: 'queued', visibility: 'private', protected: false, properties: { a: 'b' }, sizeBytes: null });
    const results = await Promise.allSettled(Array.from({ length: 5 }, () => images.transition(db, image.id, ['queued'], 'saving')));
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
    for (const r of results.filter((x): x is PromiseRejectedResult => x.status === 'rejected')) expect(r.reason).toBeInstanceOf(Conflict);

    const big = 6 * 1024 ** 3; // past 2^32: bigint comes back as a number on both engines
    const active = await images.transition(db, image.id, ['saving'], 'active', { sizeBytes: big, checksumSha256: 'a'.repeat(64) });
    expect(active).toMatchObject({ status: 'active', sizeBytes: big, checksumSha256: 'a'.repeat(64) });
    expect(await images.get(db, image.id)).toEqual(active);
    await expect(images.transition(db, '00000000-0000-4000-8000-000000000000', ['queued'], 'saving')).rejects.toBeInstanceOf(NotFound);
    // The schema refuses an active image without size or checksum.
    const bare = await images.create(db, { projectId: project.id, name: 'bare', diskFormat: 'raw' });
    await expect(images.transition(db, bare.id, ['queued'], 'active')).rejects.toBeInstanceOf(InvalidInput);
  });

  test('listVisible: own and public only; remove refuses protected images; a missing project is NotFound', async () => {
    const db = database();
    const mine = await projects.create(db, { name: `mine-${engine.name}-${randomBytes(3).toString('hex')}` });
    const theirs = await projects.create(db, { name: `theirs-${engine.name}-${randomBytes(3).toString('hex')}` });
    const own = await images.create(db, { projectId: mine.id, name: 'own', diskFormat: 'raw' });
    const hidden = await images.create(db, { projectId: theirs.id, name: 'hidden', diskFormat: 'raw' });
    const shared = await images.create(db, { projectId: theirs.id, name: 'shared', diskFormat: 'raw', visibility: 'public', protected: true });
    const ids = (await images.listVisible(db, { limit: 1000, projectId: mine.id })).items.map((i) => i.id);
    expect(ids).toEqual(expect.arrayContaining([own.id, shared.id]));
    expect(ids).not.toContain(hidden.id);
    expect(await images.getVisible(db, hidden.id, mine.id)).toBeNull();
    expect((await images.getVisible(db, shared.id, mine.id))?.id).toBe(shared.id);

    await expect(images.remove(db, shared.id)).rejects.toBeInstanceOf(Conflict);
    await images.update(db, shared.id, { protected: false, name: 'unprotected' });
    expect((await images.remove(db, shared.id)).name).toBe('unprotected');
    await expect(images.remove(db, shared.id)).rejects.toBeInstanceOf(NotFound);
    await expect(images.create(db, { projectId: '00000000-0000-4000-8000-000000000000', name: 'x', diskFormat: 'raw' })).rejects.toBeInstanceOf(NotFound);
    // Deleting the project deletes its images.
    await projects.remove(db, theirs.id);
    expect(await images.get(db, hidden.id)).toBeNull();
  });
});
