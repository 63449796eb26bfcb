/**
 * Image bytes (Glance's store, Swift's job later). An ImageStore keeps one blob per image id; the
 * filesystem implementation is the default. Bytes are always streamed, never held in memory whole,
 * and the sha256, md5 and size are computed on the way in.
 *
 * The format check lives in `ImageInspector`, a pass-through stream any backend puts in front of its
 * writer: a qcow2 image must start with the qcow2 magic `QFI\xfb`, and a raw image must NOT (a qcow2
 * file booted as "raw" would hand the guest a disk whose header names files on the host).
 */
import { createHash, randomBytes, type Hash } from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { Transform, type Readable, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { InvalidInput, NotFound } from '../core/errors';

export type DiskFormat = 'raw' | 'qcow2';

/** The first 4 bytes of every qcow2 file (version 2 and 3): 'Q' 'F' 'I' 0xfb. */
export const QCOW2_MAGIC: Buffer = Buffer.from([0x51, 0x46, 0x49, 0xfb]);

/** What a store reports about the bytes it just stored. */
export interface StoredImage {
  sizeBytes: number;
  /** Lowercase hex sha256 of the bytes. */
  sha256: string;
  /** Lowercase hex md5 of the bytes (Glance's `checksum`, which clients verify downloads against). */
  md5: string;
}

/**
 * Where image bytes live. Implementations: the filesystem (below); an object store could implement
 * the same four calls. Contract:
 * - `put` consumes `data` to its end and makes the bytes visible under `imageId` all at once: a failed
 *   or interrupted put leaves nothing visible (and an earlier blob under that id, if any, untouched).
 *   With `diskFormat`, the bytes are checked against it (ImageFormatError, nothing stored).
 *   It rejects with the stream's error when `data` fails (e.g. the client went away).
 * - `get` resolves once the blob is open (NotFound when there is none), then streams it.
 * - `delete` is idempotent: deleting a missing blob is not an error.
 */
export interface ImageStore {
  put(imageId: string, data: Readable, options?: { diskFormat?: DiskFormat }): Promise<StoredImage>;
  get(imageId: string): Promise<Readable>;
  delete(imageId: string): Promise<void>;
  exists(imageId: string): Promise<boolean>;
}

/** The bytes are not of the declared disk format. `fields` names `body`. */
export class ImageFormatError extends InvalidInput {
  constructor(message: string) {
    super(message, [{ field: 'body', message }]);
  }
}

/** 'qcow2' when `head` starts with the qcow2 magic, else 'raw'. Needs at least 4 bytes to say qcow2. */
export function detectDiskFormat(head: Uint8Array): DiskFormat {
  return head.length >= QCOW2_MAGIC.length && QCOW2_MAGIC.equals(head.subarray(0, QCOW2_MAGIC.length)) ? 'qcow2' : 'raw';
}

/**
 * Why `head` (the first bytes of an image, up to 4 of them; all of it when shorter) does not fit
 * `expected`, or undefined when it does. `complete` says the image ends there.
 */
export function diskFormatProblem(expected: DiskFormat, head: Uint8Array, complete: boolean): string | undefined {
  if (head.length === 0 && complete) return 'is empty: an image needs at least one byte';
  if (head.length < QCOW2_MAGIC.length && !complete) return undefined; // too early to tell
  const actual = detectDiskFormat(head);
  if (expected === 'qcow2' && actual !== 'qcow2') return 'is not a qcow2 image (it does not start with the qcow2 magic QFI\\xfb)';
  if (expected === 'raw' && actual === 'qcow2') return 'is a qcow2 image, but disk_format is raw';
  return undefined;
}

/**
 * A pass-through stream that hashes (sha256 and md5) and counts the bytes and, given a disk format, fails
 * with ImageFormatError as soon as the first bytes contradict it (or at the end, for an empty image).
 * Nothing is buffered beyond the stream's own chunks.
 */
export class ImageInspector extends Transform {
  private readonly hash: Hash = createHash('sha256');
  private readonly md5: Hash = createHash('md5');
  private size = 0;
  private head: Buffer = Buffer.alloc(0);
  private checked: boolean;
  private digest: StoredImage | undefined;

  constructor(private readonly diskFormat?: DiskFormat) {
    super();
    this.checked = diskFormat === undefined;
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    if (!this.checked && this.diskFormat) {
      this.head = Buffer.concat([this.head, chunk.subarray(0, QCOW2_MAGIC.length - this.head.length)]);
      const problem = diskFormatProblem(this.diskFormat, this.head, false);
      if (problem) return callback(new ImageFormatError(`the uploaded data ${problem}`));
      this.checked = this.head.length >= QCOW2_MAGIC.length;
    }
    this.hash.update(chunk);
    this.md5.update(chunk);
    this.size += chunk.length;
    callback(null, chunk);
  }

  override _flush(callback: TransformCallback): void {
    if (this.diskFormat) {
      const problem = diskFormatProblem(this.diskFormat, this.head, true);
      if (problem) return callback(new ImageFormatError(`the uploaded data ${problem}`));
    }
    this.digest = { sizeBytes: this.size, sha256: this.hash.digest('hex'), md5: this.md5.digest('hex') };
    callback();
  }

  /** Size and sha256 of everything that passed; only once the stream has ended. */
  result(): StoredImage {
    if (this.digest === undefined) throw new Error('ImageInspector.result() before the stream ended');
    return this.digest;
  }
}

const SAFE_ID = /^[A-Za-z0-9_-]{1,128}$/;
const TEMP_PREFIX = '.tmp-';
/** Temporary files older than this are leftovers of a crashed process (a live upload keeps its own). */
const STALE_TEMP_MS = 24 * 3600 * 1000;

/**
 * Blobs as files `<dir>/<imageId>`. A put streams into `<dir>/.tmp-<imageId>-<random>`, fsyncs it
 * and renames it into place, so a reader never sees a partial file and a crash leaves only a
 * temporary file (removed by a later put once it is a day old).
 */
export class FilesystemImageStore implements ImageStore {
  private sweep: Promise<void> | undefined;

  constructor(readonly dir: string) {}

  private pathOf(imageId: string): string {
    if (!SAFE_ID.test(imageId)) throw new NotFound(`image '${imageId}' not found`);
    return path.join(this.dir, imageId);
  }

  async put(imageId: string, data: Readable, options: { diskFormat?: DiskFormat } = {}): Promise<StoredImage> {
    const target = this.pathOf(imageId);
    await fsp.mkdir(this.dir, { recursive: true });
    this.sweep ??= this.removeStaleTemporaryFiles().catch(() => undefined);
    const temp = path.join(this.dir, `${TEMP_PREFIX}${imageId}-${randomBytes(6).toString('hex')}`);
    const inspector = new ImageInspector(options.diskFormat);
    // `flush`: fsync before close, so the rename below never publishes a file whose data is not on disk.
    const file = fs.createWriteStream(temp, { flags: 'wx', mode: 0o640, flush: true });
    try {
      await pipeline(data, inspector, file);
      await fsp.rename(temp, target);
    } catch (err) {
      // A failure before the file's open finished (bad data in the first chunk) would otherwise race
      // the open: the file appeared after it was removed. Wait until the stream has closed it.
      if (!file.closed) await new Promise<void>((resolve) => file.once('close', () => resolve()));
      await fsp.rm(temp, { force: true });
      throw err;
    }
    await syncDirectory(this.dir);
    return inspector.result();
  }

  async get(imageId: string): Promise<Readable> {
    let handle: fsp.FileHandle;
    try {
      handle = await fsp.open(this.pathOf(imageId), 'r');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new NotFound(`no data stored for image '${imageId}'`);
      throw err;
    }
    return handle.createReadStream({ highWaterMark: 256 * 1024 });
  }

  async delete(imageId: string): Promise<void> {
    await fsp.rm(this.pathOf(imageId), { force: true });
  }

  async exists(imageId: string): Promise<boolean> {
    try {
      return (await fsp.stat(this.pathOf(imageId))).isFile();
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT' || err instanceof NotFound) return false;
      throw err;
    }
  }

  private async removeStaleTemporaryFiles(): Promise<void> {
    const cutoff = Date.now() - STALE_TEMP_MS;
    for (const name of await fsp.readdir(this.dir)) {
      if (!name.startsWith(TEMP_PREFIX)) continue;
      const file = path.join(this.dir, name);
      const stat = await fsp.stat(file).catch(() => undefined);
      if (stat && stat.mtimeMs < cutoff) await fsp.rm(file, { force: true });
    }
  }
}

/** fsync a directory so a rename in it survives a crash (a no-op where directories cannot be opened). */
export async function syncDirectory(dir: string): Promise<void> {
  let handle: fsp.FileHandle | undefined;
  try {
    handle = await fsp.open(dir, 'r');
    await handle.sync();
  } catch {
    /* best effort: some platforms and filesystems refuse fsync on a directory */
  } finally {
    await handle?.close();
  }
}
