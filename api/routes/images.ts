/**
 * Glance's routes: the image catalog and the image data. Data is streamed both ways (never buffered
 * whole): an upload flows request → format check + sha256 → temp file → rename; a download flows
 * file → response. Host agents download with a signed URL instead of a token (images/signed-url.ts).
 *
 * express.json() leaves application/octet-stream alone and express-openapi-validator does not read
 * a `format: binary` body (it validates path, query and headers only), so the upload stream reaches
 * the handler untouched.
 */
import { PassThrough, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { Router, type Request, type RequestHandler } from 'express';
import type { Knex } from 'knex';
import { Conflict, Forbidden, NotFound, Unauthorized } from '../../core/errors';
import type { ImageUrlSigner } from '../../images/signed-url';
import type { ImageStore } from '../../images/store';
import type { components } from '../../openapi/types';
import type { IdentityService } from '../../services/identity';
import { createImageService, type Image, type ImageChanges } from '../../services/images';
import { authenticate, callerOf } from '../auth';
import type { JsonBody } from '../body';
import { pageQuery } from '../pagination';

type Schemas = components['schemas'];

const iso = (d: Date | string) => new Date(d).toISOString();

export function presentImage(i: Image): Schemas['Image'] {
  return {
    id: i.id,
    name: i.name,
    status: i.status,
    disk_format: i.diskFormat,
    min_disk_gb: i.minDiskGb,
    min_ram_mb: i.minRamMb,
    visibility: i.visibility,
    protected: i.protected,
    properties: i.properties,
    size_bytes: i.sizeBytes,
    checksum_sha256: i.checksumSha256,
    project_id: i.projectId,
    file: `/v1/images/${i.id}/file`,
    created_at: iso(i.createdAt),
    updated_at: iso(i.updatedAt),
  };
}

export interface ImageRoutesDeps {
  db: Knex;
  identity: IdentityService;
  store: ImageStore;
  signer: ImageUrlSigner;
}

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

export function imagesRouter({ db, identity, store, signer }: ImageRoutesDeps): Router {
  const router = Router();
  const authed = authenticate(identity);

  const images = createImageService(db);

  /** A signed URL (`?expires=&signature=`) stands in for the token on downloads; else the bearer token. */
  const signedOrAuthed: RequestHandler = (req, res, next) => {
    const { expires, signature } = req.query as { expires?: unknown; signature?: unknown };
    if (expires === undefined && signature === undefined) return authed(req, res, next);
    if (expires === undefined || typeof signature !== 'string') {
      throw new Unauthorized('a signed URL needs both expires and signature');
    }
    const check = signer.verify(req.params.image_id as string, Number(expires), signature);
    if (check === 'invalid') throw new Forbidden('the signature of this URL is not valid');
    if (check === 'expired') throw new Forbidden(`this signed URL expired at ${iso(new Date(Number(expires) * 1000))}`);
    res.locals.signedUrl = true;
    next();
  };

  router.get('/v1/images', authed, async (req, res) => {
    const page = await images.list(callerOf(req), pageQuery(req));
    res.json({ images: page.items.map(presentImage), next: page.next });
  });

  router.post('/v1/images', authed, async (req, res) => {
    const body = req.body as JsonBody<'createImage'>;
    const image = await images.create(callerOf(req), {
      name: body.name,
      diskFormat: body.disk_format,
      ...(body.min_disk_gb !== undefined ? { minDiskGb: body.min_disk_gb } : {}),
      ...(body.min_ram_mb !== undefined ? { minRamMb: body.min_ram_mb } : {}),
      ...(body.visibility !== undefined ? { visibility: body.visibility } : {}),
      ...(body.protected !== undefined ? { protected: body.protected } : {}),
      ...(body.properties !== undefined ? { properties: body.properties } : {}),
    });
    req.log.info({ image: image.id, name: image.name }, 'image registered');
    res.status(201).json(presentImage(image));
  });

  router.get('/v1/images/:image_id', authed, async (req, res) => {
    res.json(presentImage(await images.get(callerOf(req), req.params.image_id as string)));
  });

  router.patch('/v1/images/:image_id', authed, async (req, res) => {
    res.json(presentImage(await images.update(callerOf(req), req.params.image_id as string, req.body as ImageChanges)));
  });

  router.delete('/v1/images/:image_id', authed, async (req, res) => {
    const id = req.params.image_id as string;
    await images.remove(callerOf(req), id);
    // The row is gone first: no one can start using the image while its bytes are removed.
    await store.delete(id).catch((err: unknown) => req.log.error({ err, image: id }, 'image deleted, but its data could not be removed'));
    req.log.info({ image: id }, 'image deleted');
    res.status(204).end();
  });

  router.put('/v1/images/:image_id/file', authed, async (req, res) => {
    const id = req.params.image_id as string;
    const started = Date.now();
    try {
      const image = await images.own(callerOf(req), id);
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
        active = await images.transition(id, ['saving'], 'active', { sizeBytes: stored.sizeBytes, checksumSha256: stored.sha256 });
      } catch (err) {
        await store.delete(id); // the image was deleted during the upload: drop what was stored
        throw err;
      }
      const ms = Date.now() - started;
      req.log.info({ image: id, bytes: stored.sizeBytes, ms, mbPerS: Math.round(stored.sizeBytes / 1e3 / Math.max(ms, 1)) }, 'image data stored');
      res.json(presentImage(active));
    } catch (err) {
      if (err instanceof ClientAborted) {
        req.log.info({ image: id }, 'image upload aborted by the client; the image is queued again');
        return;
      }
      if (!req.complete) {
        // Answer now and discard the rest of the body, then close: the connection cannot carry another request.
        res.setHeader('Connection', 'close');
        req.resume();
      }
      throw err;
    }
  });

  router.get('/v1/images/:image_id/file', signedOrAuthed, async (req, res) => {
    const id = req.params.image_id as string;
    const image = res.locals.signedUrl === true ? await images.getBySignedUrl(id) : await images.get(callerOf(req), id);
    if (!image) throw new NotFound(`image ${id} not found`);
    if (image.status !== 'active' || image.sizeBytes === null || image.checksumSha256 === null) {
      throw new Conflict(`image ${id} has no data (status ${image.status})`);
    }
    const data = await store.get(id);
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
      req.log.info({ image: id, err: (err as Error).message }, 'image download ended early');
    }
  });

  return router;
}
