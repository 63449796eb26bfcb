/**
 * Image activities that run on a hypervisor host (task queue `host.<name>`): keep a local cache of
 * image files keyed by their sha256, pulled from the API through the signed URL the conductor put in
 * `ImageForHost`. No database, no token: the URL's signature is the authorization.
 *
 * The cache is `<cacheDir>/<sha256>`; a download streams into `<cacheDir>/.tmp-<sha256>-<random>`
 * while hashing, is verified (size and sha256) and only then renamed into place, so a cached file is
 * always whole and correct. Concurrent calls for one checksum in this process share one download.
 */
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { ReadableStream as NodeReadableStream } from 'node:stream/web';
import { Context } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';
import type { Logger } from '../../core/log';
import { syncDirectory } from '../../images/store';
import type { ImageForHost } from '../compute/types';

const SHA256_HEX = /^[0-9a-f]{64}$/;
const TEMP_PREFIX = '.tmp-';
const HEARTBEAT_MS = 5000;
/** A download that receives nothing for this long is abandoned (and retried by Temporal). */
const STALL_MS = 60_000;

export interface ImageHostDeps {
  /** `<data dir>/hosts/<host>/images` by default (STRATUS_IMAGE_CACHE_DIR). */
  cacheDir: string;
  log: Logger;
  /** For tests; Node's global fetch by default. */
  fetch?: typeof fetch;
}

export interface CachedImage {
  /** Absolute path of the verified image file. */
  path: string;
}

export function createImageHostActivities({ cacheDir, log, fetch: fetchImpl = fetch }: ImageHostDeps) {
  const cacheLog = log.child({ component: 'image-cache' });
  const inFlight = new Map<string, { promise: Promise<CachedImage>; progress: { bytes: number } }>();
  let swept: Promise<void> | undefined;

  /** Leftovers of a crashed download. Runs once, before this process starts its first download. */
  async function sweepTemporaryFiles(): Promise<void> {
    await fsp.mkdir(cacheDir, { recursive: true });
    for (const name of await fsp.readdir(cacheDir)) {
      if (name.startsWith(TEMP_PREFIX)) await fsp.rm(path.join(cacheDir, name), { force: true });
    }
  }

  async function cachedSize(file: string): Promise<number | undefined> {
    try {
      const stat = await fsp.stat(file);
      return stat.isFile() ? stat.size : undefined;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
  }

  async function download(image: ImageForHost, target: string, progress: { bytes: number }): Promise<CachedImage> {
    swept ??= sweepTemporaryFiles();
    await swept;
    const started = Date.now();
    const controller = new AbortController();
    let stall: NodeJS.Timeout | undefined;
    const armStallTimer = () => {
      clearTimeout(stall);
      stall = setTimeout(() => controller.abort(new Error(`image download stalled: nothing received for ${STALL_MS / 1000} s`)), STALL_MS);
    };
    armStallTimer();
    const temp = path.join(cacheDir, `${TEMP_PREFIX}${image.checksum}-${randomBytes(6).toString('hex')}`);
    try {
      const res = await fetchImpl(image.downloadUrl, { signal: controller.signal }).catch((err: unknown) => {
        throw new Error(describeFetchFailure(image, err), { cause: err });
      });
      if (!res.ok || !res.body) {
        const detail = (await res.text().catch(() => '')).slice(0, 300);
        const message = `image ${image.id} download failed: HTTP ${res.status} ${detail}`.trim();
        // 4xx (expired or bad signature, image gone) will not heal by retrying; 5xx, 408 and 429 may.
        if (res.status >= 400 && res.status < 500 && res.status !== 408 && res.status !== 429) {
          throw ApplicationFailure.nonRetryable(message, 'ImageDownloadRejected');
        }
        throw new Error(message);
      }
      const hash = createHash('sha256');
      const counter = new Transform({
        transform(chunk: Buffer, _encoding, callback) {
          armStallTimer();
          progress.bytes += chunk.length;
          if (progress.bytes > image.sizeBytes) {
            return callback(
              ApplicationFailure.retryable(`image ${image.id}: received more than the expected ${image.sizeBytes} bytes`, 'ImageChecksumMismatch'),
            );
          }
          hash.update(chunk);
          callback(null, chunk);
        },
      });
      await pipeline(
        Readable.fromWeb(res.body as NodeReadableStream<Uint8Array>),
        counter,
        fs.createWriteStream(temp, { flags: 'wx', mode: 0o644, flush: true }),
      );
      const sha256 = hash.digest('hex');
      if (progress.bytes !== image.sizeBytes || sha256 !== image.checksum) {
        throw ApplicationFailure.retryable(
          `image ${image.id}: downloaded ${progress.bytes} bytes with sha256 ${sha256}, expected ${image.sizeBytes} bytes with sha256 ${image.checksum}`,
          'ImageChecksumMismatch',
        );
      }
      await fsp.rename(temp, target);
      await syncDirectory(cacheDir);
      const seconds = Math.max((Date.now() - started) / 1000, 0.001);
      cacheLog.info(
        { image: image.id, checksum: image.checksum, bytes: progress.bytes, ms: Date.now() - started, mbPerS: Math.round(progress.bytes / 1e6 / seconds) },
        'image cached',
      );
      return { path: target };
    } catch (err) {
      await fsp.rm(temp, { force: true });
      cacheLog.warn({ image: image.id, err }, 'image download failed');
      throw err;
    } finally {
      clearTimeout(stall);
    }
  }

  async function fetchIntoCache(image: ImageForHost, progress: { bytes: number }): Promise<CachedImage> {
    const target = path.join(cacheDir, image.checksum);
    const size = await cachedSize(target);
    if (size === image.sizeBytes) return { path: target };
    if (size !== undefined) {
      cacheLog.warn({ image: image.id, size, expected: image.sizeBytes }, 'cached image has the wrong size: downloading it again');
      await fsp.rm(target, { force: true });
    }
    return download(image, target, progress);
  }

  /** Heartbeats while `work` runs, when called as an activity (a direct call has no context). */
  async function withHeartbeats<T>(progress: { bytes: number }, work: Promise<T>): Promise<T> {
    let context: Context | undefined;
    try {
      context = Context.current();
    } catch {
      return work;
    }
    const timer = setInterval(() => context.heartbeat({ bytes: progress.bytes }), HEARTBEAT_MS);
    try {
      // Cancellation-aware: a cancelled activity stops waiting (the shared download goes on for the cache).
      return await Promise.race([work, context.cancelled]);
    } finally {
      clearInterval(timer);
    }
  }

  return {
    /**
     * The local path of the image's bytes, downloading them first unless `<cacheDir>/<sha256>` is
     * already there with the right size. A download whose size or sha256 does not match is
     * discarded and fails with a retryable 'ImageChecksumMismatch'; a 4xx from the API (expired or
     * bad signature, image deleted) is a non-retryable 'ImageDownloadRejected'.
     */
    async ensureImageCached(image: ImageForHost): Promise<CachedImage> {
      if (!SHA256_HEX.test(image.checksum)) {
        throw ApplicationFailure.nonRetryable(`image ${image.id}: checksum is not a sha256 hex digest`, 'InvalidImage');
      }
      let entry = inFlight.get(image.checksum);
      if (!entry) {
        const progress = { bytes: 0 };
        const promise = fetchIntoCache(image, progress).finally(() => inFlight.delete(image.checksum));
        entry = { promise, progress };
        inFlight.set(image.checksum, entry);
      }
      return withHeartbeats(entry.progress, entry.promise);
    },
  };
}

export type ImageHostActivities = ReturnType<typeof createImageHostActivities>;

/**
 * What a failed fetch of an image means, said plainly (Node says only "TypeError: fetch failed";
 * the real cause, e.g. ECONNREFUSED, is in its `cause`).
 */
export function describeFetchFailure(image: { id: string; downloadUrl: string }, err: unknown): string {
  let origin = 'the API';
  try {
    origin = `the API at ${new URL(image.downloadUrl).origin}`;
  } catch {
    /* keep the generic name */
  }
  const cause = (err as { cause?: { code?: unknown; message?: unknown } } | undefined)?.cause;
  const code = typeof cause?.code === 'string' ? cause.code : undefined;
  const what: Record<string, string> = {
    ECONNREFUSED: 'refused',
    ECONNRESET: 'was cut off',
    ETIMEDOUT: 'timed out',
    ENOTFOUND: 'failed: no such host',
    EHOSTUNREACH: 'failed: host unreachable',
  };
  const detail = code ? (what[code] ?? `failed (${code})`) : `failed (${err instanceof Error ? (typeof cause?.message === 'string' ? cause.message : err.message) : String(err)})`;
  return `image ${image.id} download from ${origin} ${detail}`;
}
