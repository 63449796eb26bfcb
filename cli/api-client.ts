/**
 * A small client of Stratus's public /v1 API (the CLI speaks nothing else). Errors come back as
 * CliError with the problem+json's title and detail, and the fields it names, as one readable line.
 */
import fs from 'node:fs';
import { Readable } from 'node:stream';

export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode = 1,
  ) {
    super(message);
    this.name = 'CliError';
  }
}

interface Problem {
  title?: string;
  status?: number;
  detail?: string;
  fields?: Array<{ field: string; message: string }>;
}

/** One line from a problem+json body: "404 Not Found: server … not found (body.name: required)". */
export function problemLine(status: number, body: unknown): string {
  const p = (body && typeof body === 'object' ? body : {}) as Problem;
  const head = `${status} ${p.title ?? 'error'}`;
  const detail = typeof body === 'string' && body ? body.slice(0, 200) : p.detail;
  // Fields the detail does not already name.
  const fields = (p.fields ?? [])
    .filter((f) => !detail?.includes(f.field))
    .map((f) => `${f.field}: ${f.message}`)
    .join('; ');
  return `${head}${detail ? `: ${detail}` : ''}${fields ? ` (${fields})` : ''}`;
}

export interface RequestOptions {
  body?: unknown;
  headers?: Record<string, string>;
  /** Raw bytes to upload from a file, reporting progress. */
  file?: { path: string; onProgress?: (sent: number) => void };
}

export class ApiClient {
  constructor(
    readonly baseUrl: string,
    private readonly token: string | undefined,
  ) {}

  async request<T = unknown>(method: string, path: string, options: RequestOptions = {}): Promise<T> {
    const headers: Record<string, string> = { accept: 'application/json', ...options.headers };
    if (this.token) headers.authorization = `Bearer ${this.token}`;
    let body: RequestInit['body'];
    if (options.file) {
      const size = fs.statSync(options.file.path).size;
      headers['content-type'] = 'application/octet-stream';
      headers['content-length'] = String(size);
      let sent = 0;
      const stream = fs.createReadStream(options.file.path);
      const onProgress = options.file.onProgress;
      stream.on('data', (chunk) => {
        sent += chunk.length;
        onProgress?.(sent);
      });
      body = Readable.toWeb(stream) as unknown as RequestInit['body'];
    } else if (options.body !== undefined) {
      headers['content-type'] = 'application/json';
      body = JSON.stringify(options.body);
    }
    let res: Response;
    try {
      res = await fetch(new URL(path, this.baseUrl), { method, headers, body, ...(options.file ? { duplex: 'half' } : {}) } as RequestInit);
    } catch (err) {
      const cause = (err as { cause?: { code?: string } }).cause?.code ?? (err as Error).message;
      throw new CliError(`cannot reach the Stratus API at ${this.baseUrl} (${cause}): is it running? (stratus login --url …)`);
    }
    const text = await res.text();
    let parsed: unknown = text;
    try {
      parsed = text ? JSON.parse(text) : undefined;
    } catch {
      /* not JSON */
    }
    if (!res.ok) {
      const hint = res.status === 401 ? ' — log in again with `stratus login`' : '';
      throw new CliError(`${problemLine(res.status, parsed)}${hint}`);
    }
    return parsed as T;
  }

  get<T = unknown>(path: string): Promise<T> {
    return this.request<T>('GET', path);
  }

  post<T = unknown>(path: string, body?: unknown, headers?: Record<string, string>): Promise<T> {
    return this.request<T>('POST', path, { body: body ?? {}, ...(headers ? { headers } : {}) });
  }

  delete<T = unknown>(path: string): Promise<T> {
    return this.request<T>('DELETE', path);
  }

  /** Every item of a paginated list (`{ <key>: [...], next }`), following `next` as `marker`. */
  async listAll<T>(path: string, key: string, limit = 200): Promise<T[]> {
    const items: T[] = [];
    let marker: string | null = null;
    do {
      const sep = path.includes('?') ? '&' : '?';
      const page: Record<string, unknown> = await this.get(`${path}${sep}limit=${limit}${marker ? `&marker=${encodeURIComponent(marker)}` : ''}`);
      items.push(...((page[key] as T[]) ?? []));
      marker = (page.next as string | null) ?? null;
    } while (marker);
    return items;
  }
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/**
 * Finds a resource by id or by name, as `openstack` does: an id is used as is; a name must match
 * exactly one resource of the list.
 */
export async function findByNameOrId<T extends { id: string; name: string }>(
  api: ApiClient,
  collection: string,
  key: string,
  nameOrId: string,
): Promise<T> {
  if (UUID.test(nameOrId)) return api.get<T>(`/v1/${collection}/${nameOrId}`);
  const matches = (await api.listAll<T>(`/v1/${collection}`, key)).filter((r) => r.name === nameOrId);
  const kind = collection.replace(/s$/, '');
  if (matches.length === 0) throw new CliError(`no ${kind} named "${nameOrId}"`);
  if (matches.length > 1) throw new CliError(`${matches.length} ${collection} are named "${nameOrId}": use an id (${matches.map((m) => m.id).join(', ')})`);
  return matches[0]!;
}
