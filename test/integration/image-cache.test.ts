/**
 * From the conductor to the host, against a running test API: `selectImage` checks the image and
 * signs a download URL; `ensureImageCached` pulls the bytes through that URL into the host cache once,
 * verifies them, serves later calls from the cache, rejects corrupted downloads, and shares one
 * download among concurrent calls. The cloud runs on a fresh PostgreSQL database that this file also
 * opens, as a conductor would.
 */
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ApplicationFailure } from '@temporalio/common';
import { createImageControlActivities } from '../../activities/image/control';
import { assertImageUsable } from '../../services/images';
import { createImageHostActivities } from '../../activities/image/host';
import type { ImageForHost } from '../../activities/compute/types';
import { InvalidInput, NotFound } from '../../core/errors';
import { silentLogger } from '../../core/log';
import { ImageUrlSigner } from '../../images/signed-url';
import { startTestCloud, type TestCloud } from '../support/cloud';
import { engines, type TestDatabase } from '../support/databases';

const MiB = 1024 * 1024;
const flavor = { vcpus: 1, ramMb: 512, diskGb: 1 };

let database: TestDatabase;
let t: TestCloud;
let admin: string;
let adminProjectId: string;
let signer: ImageUrlSigner;
let conductor: ReturnType<typeof createImageControlActivities>;
let data: Buffer;
let imageId: string;
let cacheRoot: string;

async function createImage(body: Record<string, unknown>, bytes?: Buffer): Promise<{ id: string }> {
  const created = await t.call('POST', '/v1/images', { token: admin, body });
  expect(created.status).toBe(201);
  if (bytes) {
    const res = await fetch(`${t.baseUrl}/v1/images/${created.body.id}/file`, {
      method: 'PUT',
      headers: { authorization: `Bearer ${admin}`, 'content-type': 'application/octet-stream' },
      body: bytes,
    });
    expect(res.status).toBe(200);
  }
  return created.body;
}

/** fetch that counts calls and can corrupt the body on its way (one byte flipped in the middle). */
function countingFetch(options: { corrupt?: boolean } = {}) {
  const calls: string[] = [];
  const impl = async (input: string | URL | Request, init?: RequestInit): Promise<Response> => {
    calls.push(String(input));
    const res = await fetch(input, init);
    if (!options.corrupt || !res.body) return res;
    let offset = 0;
    const flip = new TransformStream<Uint8Array, Uint8Array>({
      transform(chunk, controller) {
        const copy = new Uint8Array(chunk);
        const middle = Math.floor(data.length / 2);
        if (middle >= offset && middle < offset + copy.length) copy[middle - offset] = (copy[middle - offset] ?? 0) ^ 0xff;
        offset += copy.length;
        controller.enqueue(copy);
      },
    });
    return new Response(res.body.pipeThrough(flip), { status: res.status, headers: res.headers });
  };
  return { calls, fetch: impl as typeof fetch };
}

function newCacheDir(): string {
  return fs.mkdtempSync(path.join(cacheRoot, 'cache-'));
}

async function rejection(promise: Promise<unknown>): Promise<any> {
  try {
    await promise;
  } catch (err) {
    return err;
  }
  throw new Error('expected a rejection');
}

beforeAll(async () => {
  const postgres = engines.find((e) => e.name === 'postgres');
  database = await postgres!.create();
  t = await startTestCloud({ databaseUrl: database.url! });
  admin = await t.login();
  adminProjectId = (await t.call('GET', '/v1/auth/tokens/current', { token: admin })).body.project.id;
  signer = new ImageUrlSigner(fs.readFileSync(path.join(t.config.dataDir, 'secret.key'), 'utf8').trim());
  conductor = createImageControlActivities({ db: database.db, signer, apiBaseUrl: t.baseUrl, urlTtlSeconds: 300 });
  data = randomBytes(3 * MiB);
  data[0] = 0;
  imageId = (await createImage({ name: 'cirros', disk_format: 'raw', min_ram_mb: 256 }, data)).id;
  cacheRoot = fs.mkdtempSync(path.join(os.tmpdir(), 'stratus-image-cache-'));
}, 90_000);

afterAll(async () => {
  await t?.stop();
  await database?.dispose();
  if (cacheRoot) fs.rmSync(cacheRoot, { recursive: true, force: true });
});

describe('selectImage (conductor)', () => {
  test('an active image that fits the flavor comes back as ImageForHost with a signed URL', async () => {
    const image = await conductor.selectImage({ imageId, projectId: adminProjectId, flavor });
    expect(image).toEqual({
      id: imageId,
      checksum: createHash('sha256').update(data).digest('hex'),
      sizeBytes: data.length,
      diskFormat: 'raw',
      downloadUrl: expect.stringMatching(new RegExp(`^${t.baseUrl}/v1/images/${imageId}/file\\?expires=\\d+&signature=[\\w-]{43}$`)),
    });
    const expires = Number(new URL(image.downloadUrl).searchParams.get('expires'));
    expect(expires * 1000 - Date.now()).toBeGreaterThan(290_000);
  });

  test('each rejection is a non-retryable ApplicationFailure of its type; the API adapter names body.image_id', async () => {
    const queued = await createImage({ name: 'queued', disk_format: 'raw' });
    const bigMinDisk = await createImage({ name: 'big-min-disk', disk_format: 'raw', min_disk_gb: 20 }, Buffer.from('x'));
    const bigMinRam = await createImage({ name: 'big-min-ram', disk_format: 'raw', min_ram_mb: 4096 }, Buffer.from('x'));
    const otherProject = (await t.call('POST', '/v1/projects', { token: admin, body: { name: 'cache-other' } })).body.id as string;
    const cases: Array<[string, { imageId: string; projectId: string; flavor: typeof flavor }, string, typeof NotFound | typeof InvalidInput]> = [
      ['missing', { imageId: '00000000-0000-4000-8000-000000000000', projectId: adminProjectId, flavor }, 'ImageNotFound', NotFound],
      ["another project's private image", { imageId, projectId: otherProject, flavor }, 'ImageNotFound', NotFound],
      ['no data yet', { imageId: queued.id, projectId: adminProjectId, flavor }, 'ImageNotActive', InvalidInput],
      ['min_disk_gb above the flavor', { imageId: bigMinDisk.id, projectId: adminProjectId, flavor }, 'FlavorTooSmall', InvalidInput],
      ['min_ram_mb above the flavor', { imageId: bigMinRam.id, projectId: adminProjectId, flavor }, 'FlavorTooSmall', InvalidInput],
      ['bytes larger than the disk', { imageId, projectId: adminProjectId, flavor: { ...flavor, diskGb: 0 } }, 'ImageTooLarge', InvalidInput],
    ];
    for (const [name, selection, type, apiError] of cases) {
      const failure = await rejection(conductor.selectImage(selection));
      expect({ name, failure }).toEqual({ name, failure: expect.any(ApplicationFailure) });
      expect({ name, type: failure.type, nonRetryable: failure.nonRetryable }).toEqual({ name, type, nonRetryable: true });
      const err = await rejection(assertImageUsable(database.db, selection));
      expect(err).toBeInstanceOf(apiError);
      expect(err.fields).toEqual([{ field: 'body.image_id', message: failure.message }]);
    }
    expect((await assertImageUsable(database.db, { imageId, projectId: adminProjectId, flavor })).id).toBe(imageId);
  });
});

describe('ensureImageCached (host agent)', () => {
  let image: ImageForHost;
  beforeAll(async () => {
    image = await conductor.selectImage({ imageId, projectId: adminProjectId, flavor });
  });

  test('downloads once into <cacheDir>/<sha256>; the second call is a cache hit', async () => {
    const cacheDir = newCacheDir();
    const counter = countingFetch();
    const host = createImageHostActivities({ cacheDir, log: silentLogger, fetch: counter.fetch });
    const first = await host.ensureImageCached(image);
    expect(first).toEqual({ path: path.join(cacheDir, image.checksum) });
    expect(fs.readFileSync(first.path).equals(data)).toBe(true);
    expect(counter.calls).toEqual([image.downloadUrl]);

    expect(await host.ensureImageCached(image)).toEqual(first);
    expect(counter.calls).toHaveLength(1);
    expect(fs.readdirSync(cacheDir)).toEqual([image.checksum]);

    // A new agent process on the same cache finds the file too.
    const restarted = countingFetch();
    expect(await createImageHostActivities({ cacheDir, log: silentLogger, fetch: restarted.fetch }).ensureImageCached(image)).toEqual(first);
    expect(restarted.calls).toHaveLength(0);
  });

  test('5 concurrent calls for one image download it once', async () => {
    const cacheDir = newCacheDir();
    const counter = countingFetch();
    const host = createImageHostActivities({ cacheDir, log: silentLogger, fetch: counter.fetch });
    const results = await Promise.all(Array.from({ length: 5 }, () => host.ensureImageCached(image)));
    expect(new Set(results.map((r) => r.path))).toEqual(new Set([path.join(cacheDir, image.checksum)]));
    expect(counter.calls).toHaveLength(1);
    expect(fs.readFileSync(path.join(cacheDir, image.checksum)).equals(data)).toBe(true);
  });

  test('a corrupted download is rejected (retryable), leaves nothing behind, and a clean retry succeeds', async () => {
    const cacheDir = newCacheDir();
    const corrupt = countingFetch({ corrupt: true });
    const failure = await rejection(createImageHostActivities({ cacheDir, log: silentLogger, fetch: corrupt.fetch }).ensureImageCached(image));
    expect(failure).toBeInstanceOf(ApplicationFailure);
    expect(failure.type).toBe('ImageChecksumMismatch');
    expect(failure.nonRetryable).toBe(false);
    expect(failure.message).toMatch(/expected 3145728 bytes with sha256/);
    expect(fs.readdirSync(cacheDir)).toEqual([]);

    // Wrong size announced (the conductor's record disagrees with the bytes): rejected as well.
    const shortened = await rejection(
      createImageHostActivities({ cacheDir, log: silentLogger }).ensureImageCached({ ...image, sizeBytes: image.sizeBytes - 1 }),
    );
    expect(shortened.type).toBe('ImageChecksumMismatch');
    expect(fs.readdirSync(cacheDir)).toEqual([]);

    const host = createImageHostActivities({ cacheDir, log: silentLogger });
    expect(fs.readFileSync((await host.ensureImageCached(image)).path).equals(data)).toBe(true);
  });

  test('a cached file of the wrong size is fetched again; an expired URL is a non-retryable rejection', async () => {
    const cacheDir = newCacheDir();
    fs.writeFileSync(path.join(cacheDir, image.checksum), 'truncated');
    const counter = countingFetch();
    const host = createImageHostActivities({ cacheDir, log: silentLogger, fetch: counter.fetch });
    expect(fs.readFileSync((await host.ensureImageCached(image)).path).equals(data)).toBe(true);
    expect(counter.calls).toHaveLength(1);

    const past = Math.floor(Date.now() / 1000) - 5;
    const expired = { ...image, downloadUrl: `${t.baseUrl}/v1/images/${imageId}/file?expires=${past}&signature=${signer.sign(imageId, past)}` };
    const failure = await rejection(createImageHostActivities({ cacheDir: newCacheDir(), log: silentLogger }).ensureImageCached(expired));
    expect(failure.type).toBe('ImageDownloadRejected');
    expect(failure.nonRetryable).toBe(true);
    expect(failure.message).toMatch(/HTTP 403/);
  });
});
