/**
 * Glance's routes: the image catalog and the image data (streamed both ways by api/image-data.ts,
 * shared with the OpenStack surface). Host agents download with a signed URL instead of a token
 * (images/signed-url.ts).
 */
import { Router, type RequestHandler } from 'express';
import type { Knex } from 'knex';
import { Forbidden, NotFound, Unauthorized } from '../../core/errors';
import type { ImageUrlSigner } from '../../images/signed-url';
import type { ImageStore } from '../../images/store';
import type { components } from '../../openapi/types';
import type { IdentityService } from '../../services/identity';
import { createImageService, type Image, type ImageChanges } from '../../services/images';
import { deleteImage, receiveImageData, sendImageData } from '../image-data';
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
    await deleteImage(req, { images, store }, callerOf(req), req.params.image_id as string);
    res.status(204).end();
  });

  router.put('/v1/images/:image_id/file', authed, async (req, res) => {
    const active = await receiveImageData(req, res, { images, store }, callerOf(req), req.params.image_id as string);
    if (active) res.json(presentImage(active));
  });

  router.get('/v1/images/:image_id/file', signedOrAuthed, async (req, res) => {
    const id = req.params.image_id as string;
    const image = res.locals.signedUrl === true ? await images.getBySignedUrl(id) : await images.get(callerOf(req), id);
    if (!image) throw new NotFound(`image ${id} not found`);
    await sendImageData(req, res, store, image);
  });

  return router;
}
