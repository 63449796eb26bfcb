/**
 * Signed, expiring download URLs for image bytes. Host agents hold no database credentials and no
 * tokens: the conductor hands them `GET /v1/images/{id}/file?expires=…&signature=…`, where the
 * signature is HMAC-SHA256 over `<imageId>:<expires>` with a key shared by every api and conductor
 * process (STRATUS_SECRET_KEY; `stratus up` generates one into `<data dir>/secret.key`).
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { ConfigError } from '../core/config';

export type SignatureCheck = 'valid' | 'expired' | 'invalid';

export const SECRET_KEY_FILE = 'secret.key';
export const MIN_SECRET_KEY_LENGTH = 32;

export class ImageUrlSigner {
  private readonly key: Buffer;

  /** `secretKey`: the shared secret (its UTF-8 bytes are the HMAC key); `now` in ms, for tests. */
  constructor(
    secretKey: string,
    private readonly now: () => number = Date.now,
  ) {
    if (secretKey.length < MIN_SECRET_KEY_LENGTH) throw new Error(`the image URL secret key must be at least ${MIN_SECRET_KEY_LENGTH} characters`);
    this.key = Buffer.from(secretKey, 'utf8');
  }

  /** base64url HMAC-SHA256 of `<imageId>:<expiresAt>` (expiresAt in unix seconds). */
  sign(imageId: string, expiresAt: number): string {
    return createHmac('sha256', this.key).update(`${imageId}:${expiresAt}`).digest('base64url');
  }

  /** Checks the signature first (in constant time), then the expiry. */
  verify(imageId: string, expiresAt: number, signature: string): SignatureCheck {
    if (!Number.isSafeInteger(expiresAt) || expiresAt < 0) return 'invalid';
    const expected = Buffer.from(this.sign(imageId, expiresAt), 'utf8');
    const given = Buffer.from(signature, 'utf8');
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) return 'invalid';
    return expiresAt * 1000 <= this.now() ? 'expired' : 'valid';
  }

  /** `<baseUrl>/v1/images/<id>/file?expires=<unix s>&signature=<sig>`, valid for `ttlSeconds`. */
  signedImageUrl(baseUrl: string, imageId: string, ttlSeconds: number): string {
    const expires = Math.floor(this.now() / 1000) + Math.max(1, Math.ceil(ttlSeconds));
    const signature = this.sign(imageId, expires);
    return `${baseUrl.replace(/\/$/, '')}/v1/images/${encodeURIComponent(imageId)}/file?expires=${expires}&signature=${signature}`;
  }
}

/**
 * The secret key of this process. STRATUS_SECRET_KEY when set. Otherwise `stratus up` (everything in
 * one process) keeps a generated one in `<dataDir>/secret.key` (mode 0600, created once, read on later
 * starts); the separate `api` and `conductor` processes must share one, so for them it is required.
 */
export function resolveSecretKey(
  config: { dataDir: string; images: { secretKey: string | undefined } },
  role: 'up' | 'api' | 'conductor' | 'agent',
): string {
  if (config.images.secretKey) return config.images.secretKey;
  if (role !== 'up') {
    throw new ConfigError(
      `STRATUS_SECRET_KEY is not set: every \`stratus api\` and \`stratus conductor\` must share one to sign image download URLs (e.g. \`openssl rand -hex 32\`)`,
    );
  }
  const file = path.join(config.dataDir, SECRET_KEY_FILE);
  fs.mkdirSync(config.dataDir, { recursive: true });
  try {
    fs.writeFileSync(file, `${randomBytes(32).toString('hex')}\n`, { flag: 'wx', mode: 0o600 });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') {
      throw new ConfigError(`cannot create ${file} (${(err as NodeJS.ErrnoException).code ?? String(err)}): fix STRATUS_DATA_DIR or set STRATUS_SECRET_KEY`);
    }
  }
  const key = fs.readFileSync(file, 'utf8').trim();
  if (key.length < MIN_SECRET_KEY_LENGTH) {
    throw new ConfigError(`${file} holds no usable key (fewer than ${MIN_SECRET_KEY_LENGTH} characters): delete it to generate a new one, or set STRATUS_SECRET_KEY`);
  }
  return key;
}
