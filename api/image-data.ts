/**
 * Image data over HTTP, for every API that carries it (`/v1/images/{id}/file` and Glance's
 * `/image/v2/images/{id}/file`): the upload's state machine around the image store, and the
 * download's headers. Data is streamed both ways (never buffered whole): an upload flows
 * request → format check + sha256/md5 → temp file → rename; a download flows file → response.
 *
 * express.json() leaves application/octet-stream alone and express-openapi-validator does not read
 * a `format: binary` body, so the upload stream reaches the handler untouched.
 */
import { PassThrough, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { Request, Response } from 'express';
import { Conflict } from '../core/errors';
import type { ImageStore } from '../images/store';
import type { AuthContext } from '../services/identity';
import type { createImageService, Image } from '../services/images';

type ImageService = ReturnType<typeof createImageService>;

/** The request was cut before its body ended. */
class ClientAborted extends Error {
  constructor() {
    super('the client closed the connection before the upload ended');
    this.name = 'ClientAborted';
  }
}

/**
 * The request body as a stream the store may consume (and destroy on failure) without destroying
 * the request itself, so an error can still be answered; a client abort fails it with ClientAborted.
 */
function uploadStream(req: Request): Readable {
  const body = new PassThrough({ highWaterMark: 256 * 1024 });
  const abort = () => {
    if (!req.complete) body.destroy(new ClientAborted());
  };
  req.once('error', abort);
  req.once('close', abort);
  req.pipe(body);
  return body;
}

/**
 * Stores the request body as the data of image `id` (the caller's own, queued): queued → saving →
 * active with its size and checksums, or back to queued when the upload fails. Resolves with the
 * active image, or undefined when the client went away (nothing left to answer). Errors are thrown
 * for the API's error handler; when the body was not read to its end the connection is closed after
 * the answer.
 */
export async function receiveImageData(
  req: Request,
  res: Response,
  { images, store }: { images: ImageService; store: ImageStore },
  auth: AuthContext,
  id: string,
): Promise<Image | undefined> {
  const started = Date.now();
  try {
    const image = await images.own(auth, id);
    // queued → saving in one statement: a second upload (or one racing this) is 409.
    await images.transition(id, ['queued'], 'saving');
    let stored;
    try {
      stored = await store.put(id, uploadStream(req), { diskFormat: image.diskFormat });
    } catch (err) {
      await images.transition(id, ['saving'], 'queued').catch(() => undefined); // deleted meanwhile: nothing to undo
      throw err;
    }
    let active: Image;
    try {
      active = await images.transition(id, ['saving'], 'active', { sizeBytes: stored.sizeBytes, checksumSha256: stored.sha256, checksumMd5: stored.md5 });
    } catch (err) {
      await store.delete(id); // the image was deleted during the upload: drop what was stored
      throw err;
    }
    const ms = Date.now() - started;
    req.log.info({ image: id, bytes: stored.sizeBytes, ms, mbPerS: Math.round(stored.sizeBytes / 1e3 / Math.max(ms, 1)) }, 'image data stored');
    return active;
  } catch (err) {
    if (err instanceof ClientAborted) {
      req.log.info({ image: id }, 'image upload aborted by the client; the image is queued again');
      return undefined;
    }
    if (!req.complete) {
      // Answer now and discard the rest of the body, then close: the connection cannot carry another request.
      res.setHeader('Connection', 'close');
      req.resume();
    }
    throw err;
  }
}

/** Streams the data of `image` (Conflict when it has none) with its length and checksum headers. */
export async function sendImageData(req: Request, res: Response, store: ImageStore, image: Image): Promise<void> {
  if (image.status !== 'active' || image.sizeBytes === null || image.checksumSha256 === null) {
    throw new Conflict(`image ${image.id} has no data (status ${image.status})`);
  }
  const data = await store.get(image.id);
  res.status(200);
  res.setHeader('Content-Type', 'application/octet-stream');
  res.setHeader('Content-Length', String(image.sizeBytes));
  res.setHeader('Digest', `sha-256=${Buffer.from(image.checksumSha256, 'hex').toString('base64')}`);
  res.setHeader('X-Checksum-Sha256', image.checksumSha256);
  res.setHeader('ETag', `"${image.checksumSha256}"`);
  try {
    await pipeline(data, res);
  } catch (err) {
    // Usually the client went away mid-download; the headers are sent, so there is nothing left to answer.
    req.log.info({ image: image.id, err: (err as Error).message }, 'image download ended early');
  }
}

/** Deletes the image (the caller's own, not protected), then its data. */
export async function deleteImage(req: Request, { images, store }: { images: ImageService; store: ImageStore }, auth: AuthContext, id: string): Promise<void> {
  await images.remove(auth, id);
  // The row is gone first: no one can start using the image while its bytes are removed.
  await store.delete(id).catch((err: unknown) => req.log.error({ err, image: id }, 'image deleted, but its data could not be removed'));
  req.log.info({ image: id }, 'image deleted');
}
