/**
 * Byte sources: every weight reader reads by byte range, never a whole file, so that the same code works on a
 * Node file handle, a browser `File`/`Blob` and an HTTP server that answers `Range` requests.
 *
 * `ModelFiles` is a model folder seen as names → sources ('config.json', 'model.safetensors', …); `get`
 * returns null for a file that does not exist, and throws for anything else (network down, bad name).
 *
 * Errors: a read past the end of a source is a `WeightsFormatError` naming the source (a truncated file is
 * the usual cause); HTTP failures other than 404 are `TrolError` (runtime) with the status in `details`;
 * a server that ignores `Range` for a file bigger than `URL_FULL_BODY_LIMIT` is an `ArgumentError`.
 */
import { ArgumentError, TrolError, WeightsFormatError } from '../errors.ts';

export interface ByteSource {
  readonly name: string;
  size(): Promise<number>;
  /** Exactly `length` bytes starting at `offset`; throws if the range is not inside the source. */
  read(offset: number, length: number): Promise<Uint8Array>;
}

export interface ModelFiles {
  get(name: string): Promise<ByteSource | null>;
}

function checkRange(name: string, offset: number, length: number, size: number): void {
  if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0) {
    throw new ArgumentError(`${name}: invalid byte range (offset ${offset}, length ${length})`, {
      file: name,
      offset,
      length,
    });
  }
  if (offset + length > size) {
    throw new WeightsFormatError(
      `${name}: read of ${length} bytes at offset ${offset} runs past the end of the file (${size} bytes); is it truncated?`,
      { file: name, offset, length, size },
    );
  }
}

/** A source over bytes already in memory. Reads return copies, so callers may modify them. */
export function bytesSource(name: string, bytes: Uint8Array): ByteSource {
  return {
    name,
    size: async () => bytes.byteLength,
    read: async (offset, length) => {
      checkRange(name, offset, length, bytes.byteLength);
      return bytes.slice(offset, offset + length);
    },
  };
}

/** A source over a `Blob` or `File` (browser, or Node ≥ 20). */
export function blobSource(name: string, blob: Blob): ByteSource {
  return {
    name,
    size: async () => blob.size,
    read: async (offset, length) => {
      checkRange(name, offset, length, blob.size);
      return new Uint8Array(await blob.slice(offset, offset + length).arrayBuffer());
    },
  };
}

/**
 * Node only: a file read with positioned reads. The file is opened for each read and closed again, so no
 * handle outlives a call (no leaked descriptors; cost is negligible next to reading megabytes).
 */
export async function fileSource(path: string): Promise<ByteSource> {
  const fs = await import('node:fs/promises');
  const st = await fs.stat(path);
  if (!st.isFile()) throw new ArgumentError(`${path} is not a regular file`, { file: path });
  const fileSize = st.size;
  return {
    name: path,
    size: async () => fileSize,
    read: async (offset, length) => {
      checkRange(path, offset, length, fileSize);
      const out = new Uint8Array(length);
      const fh = await fs.open(path, 'r');
      try {
        let done = 0;
        while (done < length) {
          const { bytesRead } = await fh.read(out, done, length - done, offset + done);
          if (bytesRead === 0) {
            throw new WeightsFormatError(`${path}: file shrank while reading (got ${done} of ${length} bytes)`, {
              file: path,
            });
          }
          done += bytesRead;
        }
      } finally {
        await fh.close();
      }
      return out;
    },
  };
}

/**
 * When a server answers a `Range` request with `200` and the whole body, the body is kept and sliced if the
 * file is at most this big (config.json, tokenizer.model, trol_gating.pt); for bigger files that would mean
 * downloading gigabytes per tensor, so it is an error instead.
 */
export const URL_FULL_BODY_LIMIT = 32 * 1024 * 1024;

export interface UrlSourceOptions {
  fetch?: typeof fetch;
  /** Override `URL_FULL_BODY_LIMIT` (bytes). */
  fullBodyLimit?: number;
}

/** Parses `bytes a-b/total`; returns null when absent or unparsable (e.g. not exposed by CORS). */
function parseContentRange(h: string | null): { start: number; end: number; total: number | null } | null {
  if (!h) return null;
  const m = /^bytes\s+(\d+)-(\d+)\/(\d+|\*)$/i.exec(h.trim());
  if (!m) return null;
  return { start: Number(m[1]), end: Number(m[2]), total: m[3] === '*' ? null : Number(m[3]) };
}

async function cancelBody(res: Response): Promise<void> {
  try {
    await res.body?.cancel();
  } catch {
    // the body is not needed; a failed cancel only wastes bandwidth
  }
}

function httpError(url: string, res: Response): TrolError {
  return new TrolError(`${url}: HTTP ${res.status} ${res.statusText}`.trim(), { url, status: res.status });
}

/** Thrown inside `urlSource.size()` for a 404 so `urlFiles.get` can answer null. */
class NotFound extends Error {}

/**
 * A file on an HTTP server, read with `Range: bytes=a-b` requests (206 answers). The size comes from a
 * one-byte range request (`Content-Range: bytes 0-0/TOTAL`), or `Content-Length` of a 200 answer.
 * A server that ignores `Range` (status 200, whole body): the body is kept and sliced when the file is at most
 * `fullBodyLimit` bytes; otherwise the read fails with an `ArgumentError` saying the host lacks Range support.
 */
export function urlSource(url: string, opts: UrlSourceOptions = {}): ByteSource {
  const doFetch = opts.fetch ?? globalThis.fetch.bind(globalThis);
  const limit = opts.fullBodyLimit ?? URL_FULL_BODY_LIMIT;
  let sizePromise: Promise<number> | null = null;
  let fullBody: Promise<Uint8Array> | null = null;

  const rangeUnsupported = (total: number) =>
    new ArgumentError(
      `${url}: the server ignored the HTTP Range request and sent the whole file (${total} bytes); ` +
        `files over ${limit} bytes must be served by a host that supports Range requests`,
      { url, size: total, reason: 'range-unsupported' },
    );

  const keepFullBody = async (res: Response): Promise<Uint8Array> => {
    const declared = Number(res.headers.get('content-length') ?? Number.NaN);
    if (Number.isFinite(declared) && declared > limit) {
      await cancelBody(res);
      throw rangeUnsupported(declared);
    }
    const body = new Uint8Array(await res.arrayBuffer());
    if (body.byteLength > limit) throw rangeUnsupported(body.byteLength);
    return body;
  };

  const size = (): Promise<number> => {
    sizePromise ??= (async () => {
      const res = await doFetch(url, { headers: { Range: 'bytes=0-0' } });
      // A dev server's single-page-app fallback answers a missing file with the app's index.html: treat an
      // HTML answer for a non-HTML file as missing, so the error names the file instead of a parse failure.
      const type = res.headers.get('content-type') ?? '';
      if (res.ok && type.startsWith('text/html') && !/\.html?$/i.test(new URL(url, 'http://x/').pathname)) {
        await cancelBody(res);
        throw new NotFound(url);
      }
      if (res.status === 404) {
        await cancelBody(res);
        throw new NotFound(url);
      }
      if (res.status === 416) {
        // Range not satisfiable for byte 0: an empty file.
        await cancelBody(res);
        return 0;
      }
      if (res.status === 206) {
        const cr = parseContentRange(res.headers.get('content-range'));
        await cancelBody(res);
        if (cr?.total != null) return cr.total;
        // Content-Range hidden (CORS without Access-Control-Expose-Headers): ask with HEAD.
        const head = await doFetch(url, { method: 'HEAD' });
        const len = Number(head.headers.get('content-length') ?? Number.NaN);
        if (head.ok && Number.isSafeInteger(len)) return len;
        throw new TrolError(`${url}: cannot determine the file size (no Content-Range or Content-Length)`, { url });
      }
      if (res.ok) {
        // The server ignored Range: it is sending the whole file.
        fullBody = keepFullBody(res);
        return (await fullBody).byteLength;
      }
      await cancelBody(res);
      throw httpError(url, res);
    })();
    // A failed probe may be retried later (network blip), so forget it.
    sizePromise.catch(() => {
      sizePromise = null;
    });
    return sizePromise;
  };

  return {
    name: url,
    size: async () => {
      try {
        return await size();
      } catch (e) {
        if (e instanceof NotFound) throw new TrolError(`${url}: HTTP 404 Not Found`, { url, status: 404 });
        throw e;
      }
    },
    read: async (offset, length) => {
      let total: number;
      try {
        total = await size();
      } catch (e) {
        if (e instanceof NotFound) throw new TrolError(`${url}: HTTP 404 Not Found`, { url, status: 404 });
        throw e;
      }
      checkRange(url, offset, length, total);
      if (length === 0) return new Uint8Array(0);
      if (fullBody) return (await fullBody).slice(offset, offset + length);
      const res = await doFetch(url, { headers: { Range: `bytes=${offset}-${offset + length - 1}` } });
      if (res.status === 206) {
        const cr = parseContentRange(res.headers.get('content-range'));
        if (cr && (cr.start !== offset || cr.end !== offset + length - 1)) {
          await cancelBody(res);
          throw new TrolError(
            `${url}: asked for bytes ${offset}-${offset + length - 1}, server sent ${cr.start}-${cr.end}`,
            { url },
          );
        }
        const body = new Uint8Array(await res.arrayBuffer());
        if (body.byteLength !== length) {
          throw new TrolError(`${url}: expected ${length} bytes at offset ${offset}, got ${body.byteLength}`, { url });
        }
        return body;
      }
      if (res.ok) {
        fullBody = keepFullBody(res);
        const body = await fullBody;
        checkRange(url, offset, length, body.byteLength);
        return body.slice(offset, offset + length);
      }
      await cancelBody(res);
      throw httpError(url, res);
    },
  };
}

/** File names inside a model folder are plain names: no separators, no '..'. */
function checkFileName(name: string): void {
  if (name === '' || name === '.' || name === '..' || /[/\\]/.test(name) || name.includes('\0')) {
    throw new ArgumentError(`invalid model file name ${JSON.stringify(name)} (plain file names only)`, { name });
  }
}

/** Node only: a folder on disk. */
export function dirFiles(dir: string): ModelFiles {
  return {
    get: async (name) => {
      checkFileName(name);
      const path = await import('node:path');
      try {
        return await fileSource(path.join(dir, name));
      } catch (e) {
        if ((e as { code?: string }).code === 'ENOENT') return null;
        throw e;
      }
    },
  };
}

/**
 * Files under a base URL, e.g. `https://huggingface.co/BK-Lee/TroL-1.8B/resolve/main/`. `get` probes the
 * file (one-byte range request) and answers null on 404.
 */
export function urlFiles(baseUrl: string, opts: UrlSourceOptions = {}): ModelFiles {
  const base = baseUrl.endsWith('/') ? baseUrl : `${baseUrl}/`;
  return {
    get: async (name) => {
      checkFileName(name);
      const src = urlSource(base + encodeURIComponent(name), opts);
      try {
        await src.size();
      } catch (e) {
        if (e instanceof TrolError && e.details.status === 404) return null;
        throw e;
      }
      return src;
    },
  };
}

/** Files already at hand, by name (e.g. from `<input type=file multiple>`). */
export function mapFiles(files: Map<string, ByteSource>): ModelFiles {
  return { get: async (name) => files.get(name) ?? null };
}

/** Browser `File`s (e.g. `input.files`) keyed by their `name`. */
export function fileListFiles(files: Iterable<File>): ModelFiles {
  const m = new Map<string, ByteSource>();
  for (const f of files) m.set(f.name, blobSource(f.name, f));
  return mapFiles(m);
}

/** Reads a whole (small) source. */
export async function readAll(src: ByteSource): Promise<Uint8Array> {
  return src.read(0, await src.size());
}
