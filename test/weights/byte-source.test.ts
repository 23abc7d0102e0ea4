import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ArgumentError, TrolError, WeightsFormatError } from '../../src/errors.ts';
import {
  blobSource,
  bytesSource,
  dirFiles,
  fileSource,
  mapFiles,
  readAll,
  urlFiles,
  urlSource,
} from '../../src/weights/byte-source.ts';
import { Rng } from '../helpers/rng.ts';

const rng = new Rng(7);
const data = Uint8Array.from({ length: 5000 }, () => rng.int(0, 256));
let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'trol-bytes-'));
  await writeFile(join(dir, 'blob.bin'), data);
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** A fetch over in-memory files that honours Range (or ignores it, or hides Content-Range). */
function fakeFetch(
  files: Record<string, Uint8Array<ArrayBuffer>>,
  mode: 'range' | 'ignore-range' | 'hide-content-range' | 'error' = 'range',
): { fetch: typeof fetch; calls: string[] } {
  const calls: string[] = [];
  const f = async (input: RequestInfo | URL, init?: RequestInit): Promise<Response> => {
    const url = String(input);
    const range = new Headers(init?.headers).get('range');
    calls.push(`${init?.method ?? 'GET'} ${url} ${range ?? ''}`);
    if (mode === 'error') return new Response('oops', { status: 500, statusText: 'Internal Server Error' });
    const body = files[new URL(url).pathname.slice(1)];
    if (!body) return new Response('not found', { status: 404 });
    if (init?.method === 'HEAD') return new Response(null, { headers: { 'content-length': String(body.length) } });
    if (!range || mode === 'ignore-range') {
      return new Response(body.slice(), { status: 200, headers: { 'content-length': String(body.length) } });
    }
    const m = /bytes=(\d+)-(\d+)/.exec(range)!;
    const a = Number(m[1]);
    const b = Math.min(Number(m[2]), body.length - 1);
    const headers: Record<string, string> = {};
    if (mode !== 'hide-content-range') headers['content-range'] = `bytes ${a}-${b}/${body.length}`;
    return new Response(body.slice(a, b + 1), { status: 206, headers });
  };
  return { fetch: f as typeof fetch, calls };
}

describe('byte sources', () => {
  it('an HTML page served for a missing model file (SPA fallback) counts as missing', async () => {
    const html = async () =>
      new Response('<!doctype html><title>app</title>', { status: 200, headers: { 'content-type': 'text/html' } });
    const files = urlFiles('http://h/models/x/', { fetch: html as typeof fetch });
    expect(await files.get('config.json')).toBeNull();
  });
  it('bytes, blob, file and url sources return the same bytes for the same ranges', async () => {
    const { fetch } = fakeFetch({ 'm/blob.bin': data });
    const sources = [
      bytesSource('mem', data),
      blobSource('blob', new Blob([data])),
      await fileSource(join(dir, 'blob.bin')),
      urlSource('http://x.test/m/blob.bin', { fetch }),
    ];
    for (const s of sources) expect(await s.size()).toBe(data.length);
    const ranges = [
      [0, 0],
      [0, 1],
      [4999, 1],
      [0, 5000],
      [1234, 777],
    ];
    for (let i = 0; i < 10; i++) {
      const off = rng.int(0, 5000);
      ranges.push([off, rng.int(0, 5000 - off + 1)]);
    }
    for (const [off, len] of ranges) {
      const want = data.slice(off, off + len);
      for (const s of sources) expect(await s.read(off, len), `${s.name} ${off}+${len}`).toEqual(want);
    }
  });

  it('reads past the end are a WeightsFormatError naming the source; bad ranges an ArgumentError', async () => {
    const sources = [
      bytesSource('mem.bin', data),
      blobSource('blob.bin', new Blob([data])),
      await fileSource(join(dir, 'blob.bin')),
    ];
    for (const s of sources) {
      await expect(s.read(4990, 11)).rejects.toThrow(WeightsFormatError);
      await expect(s.read(4990, 11)).rejects.toThrow(s.name);
      await expect(s.read(-1, 2)).rejects.toThrow(ArgumentError);
      await expect(s.read(0.5, 2)).rejects.toThrow(ArgumentError);
    }
  });

  it('bytesSource returns copies', async () => {
    const s = bytesSource('mem', data);
    const a = await s.read(0, 4);
    a[0] ^= 0xff;
    expect((await s.read(0, 4))[0]).toBe(data[0]);
  });

  it('dirFiles answers null for a missing file and rejects path tricks', async () => {
    const files = dirFiles(dir);
    expect(await files.get('nope.json')).toBeNull();
    const s = await files.get('blob.bin');
    expect(s).not.toBeNull();
    expect(await readAll(s!)).toEqual(data);
    for (const bad of ['../etc/passwd', 'a/b', '..', '', 'a\\b'])
      await expect(files.get(bad)).rejects.toThrow(ArgumentError);
  });

  it('mapFiles serves what it holds', async () => {
    const src = bytesSource('x', data);
    const files = mapFiles(new Map([['config.json', src]]));
    expect(await files.get('config.json')).toBe(src);
    expect(await files.get('model.safetensors')).toBeNull();
  });

  it('urlSource uses Range requests and one probe for the size', async () => {
    const { fetch, calls } = fakeFetch({ 'repo/f.bin': data });
    const s = urlSource('http://x.test/repo/f.bin', { fetch });
    expect(await s.read(100, 10)).toEqual(data.slice(100, 110));
    expect(await s.read(0, 5000)).toEqual(data);
    expect(calls).toEqual([
      'GET http://x.test/repo/f.bin bytes=0-0',
      'GET http://x.test/repo/f.bin bytes=100-109',
      'GET http://x.test/repo/f.bin bytes=0-4999',
    ]);
  });

  it('urlSource falls back to HEAD when Content-Range is hidden (CORS)', async () => {
    const { fetch, calls } = fakeFetch({ 'f.bin': data }, 'hide-content-range');
    const s = urlSource('http://x.test/f.bin', { fetch });
    expect(await s.size()).toBe(5000);
    expect(await s.read(4000, 1000)).toEqual(data.slice(4000));
    expect(calls[1]).toBe('HEAD http://x.test/f.bin ');
  });

  it('urlSource keeps a small whole body when Range is ignored, and refuses for big files', async () => {
    const { fetch, calls } = fakeFetch({ 'f.bin': data }, 'ignore-range');
    const small = urlSource('http://x.test/f.bin', { fetch });
    expect(await small.read(10, 20)).toEqual(data.slice(10, 30));
    expect(await small.read(4000, 1000)).toEqual(data.slice(4000));
    expect(calls.length).toBe(1);
    const big = urlSource('http://x.test/f.bin', { fetch, fullBodyLimit: 1000 });
    await expect(big.read(0, 10)).rejects.toThrow(ArgumentError);
    await expect(big.read(0, 10)).rejects.toThrow(/ignored the HTTP Range request/);
  });

  it('urlFiles answers null on 404 and a TrolError on server errors', async () => {
    const { fetch } = fakeFetch({ 'repo/config.json': data });
    const files = urlFiles('http://x.test/repo', { fetch });
    expect(await files.get('missing.json')).toBeNull();
    expect(await (await files.get('config.json'))!.size()).toBe(5000);
    const broken = urlFiles('http://x.test/repo/', fakeFetch({}, 'error'));
    const err = await broken.get('config.json').catch((e) => e);
    expect(err).toBeInstanceOf(TrolError);
    expect(err.details.status).toBe(500);
    await expect(urlSource('http://x.test/none', fakeFetch({})).read(0, 1)).rejects.toThrow(/404/);
  });
});
