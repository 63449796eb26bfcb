/**
 * Image bytes without a cloud: the disk format check on a stream (qcow2 = `QFI\xfb` first, raw = not
 * that), hashing on the way, the filesystem store's all-or-nothing puts, and signed URL maths.
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { ImageUrlSigner, resolveSecretKey } from '../../images/signed-url';
import {
  detectDiskFormat,
  diskFormatProblem,
  FilesystemImageStore,
  ImageFormatError,
  ImageInspector,
  QCOW2_MAGIC,
  type DiskFormat,
} from '../../images/store';
import { ConfigError } from '../../core/config';

const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');
const md5 = (data: Buffer) => createHash('md5').update(data).digest('hex');

/** `data` as a stream of `chunkSize`-byte chunks (the format check must not depend on chunking). */
function chunked(data: Buffer, chunkSize: number): Readable {
  return Readable.from(
    (function* () {
      for (let i = 0; i < data.length; i += chunkSize) yield data.subarray(i, i + chunkSize);
    })(),
  );
}

async function inspect(data: Buffer, format: DiskFormat | undefined, chunkSize = 64 * 1024) {
  const inspector = new ImageInspector(format);
  const out: Buffer[] = [];
  await pipeline(chunked(data, chunkSize), inspector, async (source: AsyncIterable<Buffer>) => {
    for await (const chunk of source) out.push(chunk);
  });
  return { result: inspector.result(), passed: Buffer.concat(out) };
}

const qcow2Bytes = Buffer.concat([QCOW2_MAGIC, Buffer.from([0, 0, 0, 3]), Buffer.alloc(1000, 7)]);
const rawBytes = Buffer.from('a raw disk image: anything that does not start with the qcow2 magic'.repeat(100));

describe('detectDiskFormat and diskFormatProblem', () => {
  test('qcow2 is the 4-byte magic; anything else (or shorter) is raw', () => {
    expect(detectDiskFormat(qcow2Bytes)).toBe('qcow2');
    expect(detectDiskFormat(QCOW2_MAGIC)).toBe('qcow2');
    expect(detectDiskFormat(rawBytes)).toBe('raw');
    expect(detectDiskFormat(Buffer.from('QFI'))).toBe('raw');
    expect(detectDiskFormat(Buffer.from('QFI\xfa', 'latin1'))).toBe('raw');
    expect(detectDiskFormat(Buffer.alloc(0))).toBe('raw');
  });

  test('the problems, and when it is too early to tell', () => {
    expect(diskFormatProblem('qcow2', QCOW2_MAGIC, false)).toBeUndefined();
    expect(diskFormatProblem('raw', rawBytes.subarray(0, 4), false)).toBeUndefined();
    expect(diskFormatProblem('qcow2', Buffer.from('QF'), false)).toBeUndefined();
    expect(diskFormatProblem('qcow2', Buffer.from('QF'), true)).toMatch(/not a qcow2 image/);
    expect(diskFormatProblem('qcow2', rawBytes.subarray(0, 4), false)).toMatch(/not a qcow2 image/);
    expect(diskFormatProblem('raw', QCOW2_MAGIC, false)).toMatch(/is a qcow2 image, but disk_format is raw/);
    expect(diskFormatProblem('raw', Buffer.from('ab'), true)).toBeUndefined(); // a 2-byte raw image is fine
    expect(diskFormatProblem('raw', Buffer.alloc(0), true)).toMatch(/empty/);
    expect(diskFormatProblem('qcow2', Buffer.alloc(0), true)).toMatch(/empty/);
  });
});

describe('ImageInspector', () => {
  test.each([1, 2, 3, 5, 64 * 1024])('passes bytes through with their sha256 and size (chunks of %i)', async (chunkSize) => {
    for (const [data, format] of [
      [qcow2Bytes, 'qcow2'],
      [rawBytes, 'raw'],
      [rawBytes, undefined],
    ] as const) {
      const { result, passed } = await inspect(data, format, chunkSize);
      expect(passed.equals(data)).toBe(true);
      expect(result).toEqual({ sizeBytes: data.length, sha256: sha256(data), md5: md5(data) });
    }
  });

  test.each([1, 2, 4, 4096])('a mismatch fails the stream with ImageFormatError naming body (chunks of %i)', async (chunkSize) => {
    for (const [data, format, message] of [
      [rawBytes, 'qcow2', /not a qcow2 image/],
      [qcow2Bytes, 'raw', /is a qcow2 image/],
      [Buffer.alloc(0), 'raw', /empty/],
      [Buffer.from('QFI'), 'qcow2', /not a qcow2 image/],
    ] as const) {
      const err = await inspect(data, format, chunkSize).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(ImageFormatError);
      expect((err as ImageFormatError).message).toMatch(message);
      expect((err as ImageFormatError).status).toBe(400);
      expect((err as ImageFormatError).fields).toEqual([{ field: 'body', message: expect.stringMatching(message) }]);
    }
  });

  test('result() before the end is a programming error', () => {
    expect(() => new ImageInspector('raw').result()).toThrow(/before the stream ended/);
  });
});

describe('FilesystemImageStore', () => {
  let dir: string;
  let store: FilesystemImageStore;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'stratus-store-'));
    store = new FilesystemImageStore(path.join(dir, 'images'));
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  const files = () => fs.readdirSync(store.dir).sort();
  const read = async (stream: Readable) => {
    const parts: Buffer[] = [];
    for await (const chunk of stream) parts.push(chunk as Buffer);
    return Buffer.concat(parts);
  };

  test('put streams in with size and sha256; get streams out; delete is idempotent', async () => {
    const stored = await store.put('img-1', chunked(qcow2Bytes, 100), { diskFormat: 'qcow2' });
    expect(stored).toEqual({ sizeBytes: qcow2Bytes.length, sha256: sha256(qcow2Bytes), md5: md5(qcow2Bytes) });
    expect(files()).toEqual(['img-1']);
    expect(await store.exists('img-1')).toBe(true);
    expect((await read(await store.get('img-1'))).equals(qcow2Bytes)).toBe(true);
    await store.delete('img-1');
    await store.delete('img-1');
    expect(await store.exists('img-1')).toBe(false);
    await expect(store.get('img-1')).rejects.toMatchObject({ status: 404 });
    expect(files()).toEqual([]);
  });

  test('a format mismatch stores nothing, and leaves an earlier blob under that id untouched', async () => {
    await store.put('img-2', chunked(rawBytes, 50), { diskFormat: 'raw' });
    await expect(store.put('img-2', chunked(qcow2Bytes, 50), { diskFormat: 'raw' })).rejects.toBeInstanceOf(ImageFormatError);
    expect(files()).toEqual(['img-2']);
    expect((await read(await store.get('img-2'))).equals(rawBytes)).toBe(true);
    await expect(store.put('img-3', chunked(rawBytes, 50), { diskFormat: 'qcow2' })).rejects.toBeInstanceOf(ImageFormatError);
    expect(files()).toEqual(['img-2']);
  });

  test('a source that fails midway stores nothing and no temporary file survives', async () => {
    const failing = Readable.from(
      (async function* () {
        yield rawBytes;
        await new Promise((r) => setTimeout(r, 10));
        throw new Error('client went away');
      })(),
    );
    await expect(store.put('img-4', failing, { diskFormat: 'raw' })).rejects.toThrow('client went away');
    expect(files()).toEqual([]);
  });

  test('ids that are not plain names are refused (no path traversal)', async () => {
    await expect(store.put('../escape', chunked(rawBytes, 50))).rejects.toMatchObject({ status: 404 });
    expect(await store.exists('../../etc/passwd')).toBe(false);
  });
});

describe('ImageUrlSigner', () => {
  const key = 'k'.repeat(40);
  const now = 1_800_000_000_000;
  const signer = new ImageUrlSigner(key, () => now);
  const id = '7b2f6f0e-5a47-4d7e-9a3e-0c1d2e3f4a5b';

  test('a signed URL verifies until it expires; any change to id, expiry or signature is invalid', () => {
    const url = new URL(signer.signedImageUrl('http://api.example:8080/', id, 600));
    expect(url.pathname).toBe(`/v1/images/${id}/file`);
    const expires = Number(url.searchParams.get('expires'));
    const signature = url.searchParams.get('signature') ?? '';
    expect(expires).toBe(now / 1000 + 600);
    expect(signature).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(signer.verify(id, expires, signature)).toBe('valid');
    expect(new ImageUrlSigner(key, () => (expires + 1) * 1000).verify(id, expires, signature)).toBe('expired');
    expect(signer.verify(id.replace('7b', '7c'), expires, signature)).toBe('invalid');
    expect(signer.verify(id, expires + 1, signature)).toBe('invalid');
    expect(signer.verify(id, expires, `${signature.slice(0, -1)}${signature.endsWith('A') ? 'B' : 'A'}`)).toBe('invalid');
    expect(signer.verify(id, expires, '')).toBe('invalid');
    expect(new ImageUrlSigner('x'.repeat(40), () => now).verify(id, expires, signature)).toBe('invalid');
  });

  test('a short key is refused', () => {
    expect(() => new ImageUrlSigner('short')).toThrow(/at least 32/);
  });
});

describe('resolveSecretKey', () => {
  let dataDir: string;
  beforeEach(() => {
    dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'stratus-key-'));
  });
  afterEach(() => fs.rmSync(dataDir, { recursive: true, force: true }));

  test('STRATUS_SECRET_KEY wins everywhere', () => {
    const secretKey = 's'.repeat(32);
    expect(resolveSecretKey({ dataDir, images: { secretKey } }, 'api')).toBe(secretKey);
    expect(resolveSecretKey({ dataDir, images: { secretKey } }, 'up')).toBe(secretKey);
    expect(fs.existsSync(path.join(dataDir, 'secret.key'))).toBe(false);
  });

  test('up generates 32 random bytes once into <dataDir>/secret.key (0600) and reads them back later', () => {
    const first = resolveSecretKey({ dataDir, images: { secretKey: undefined } }, 'up');
    expect(first).toMatch(/^[0-9a-f]{64}$/);
    const file = path.join(dataDir, 'secret.key');
    expect(fs.statSync(file).mode & 0o777).toBe(0o600);
    expect(resolveSecretKey({ dataDir, images: { secretKey: undefined } }, 'up')).toBe(first);
  });

  test('api and conductor need it set: one ConfigError line naming the variable', () => {
    for (const role of ['api', 'conductor'] as const) {
      let err: unknown;
      try {
        resolveSecretKey({ dataDir, images: { secretKey: undefined } }, role);
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(ConfigError);
      expect((err as Error).message).toMatch(/^STRATUS_SECRET_KEY is not set/);
      expect((err as Error).message).not.toContain('\n');
    }
  });
});
