/**
 * decodeImageNode: PNGs of every colour type and bit depth (built here by a small independent PNG writer) decode
 * to the RGB values PIL's convert("RGB") gives (alpha and tRNS dropped, never composited; 16-bit samples →
 * high byte, 16-bit gray clipped as PIL's I;16 → RGB); JPEG round trip; corrupt, empty, zero-size and unknown
 * inputs → ImageDecodeError.
 */
import { readFileSync } from 'node:fs';
import { deflateSync } from 'node:zlib';
import jpeg from 'jpeg-js';
import { describe, expect, it } from 'vitest';
import { ImageDecodeError } from '../../src/errors.ts';
import { decodeImageNode } from '../../src/image/decode-node.ts';

const GOLDEN = 'test/fixtures/tiny-trol/golden';

// ---- a minimal PNG writer (filter 0, no interlace) ----
const CRC_TABLE = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});
function crc32(bytes: Uint8Array): number {
  let c = 0xffffffff;
  for (const b of bytes) c = CRC_TABLE[(c ^ b) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}
function chunk(type: string, data: Uint8Array): Uint8Array {
  const out = new Uint8Array(12 + data.length);
  const dv = new DataView(out.buffer);
  dv.setUint32(0, data.length);
  out.set(new TextEncoder().encode(type), 4);
  out.set(data, 8);
  dv.setUint32(8 + data.length, crc32(out.subarray(4, 8 + data.length)));
  return out;
}
const CHANNELS: Record<number, number> = { 0: 1, 2: 3, 3: 1, 4: 2, 6: 4 };

interface PngSpec {
  width: number;
  height: number;
  colorType: number;
  depth: number;
  /** Row-major samples, CHANNELS[colorType] per pixel. */
  samples: number[];
  palette?: number[][];
  trns?: number[];
}
function encodePng(s: PngSpec): Uint8Array {
  const ihdr = new Uint8Array(13);
  const dv = new DataView(ihdr.buffer);
  dv.setUint32(0, s.width);
  dv.setUint32(4, s.height);
  ihdr.set([s.depth, s.colorType, 0, 0, 0], 8);
  const ch = CHANNELS[s.colorType];
  const rowBits = s.width * ch * s.depth;
  const rowBytes = Math.ceil(rowBits / 8);
  const raw = new Uint8Array(s.height * (rowBytes + 1));
  for (let y = 0; y < s.height; y++) {
    const row = raw.subarray(y * (rowBytes + 1) + 1, (y + 1) * (rowBytes + 1));
    for (let k = 0; k < s.width * ch; k++) {
      const v = s.samples[y * s.width * ch + k];
      if (s.depth === 16) {
        row[2 * k] = v >> 8;
        row[2 * k + 1] = v & 0xff;
      } else if (s.depth === 8) row[k] = v;
      else {
        const bit = k * s.depth;
        row[bit >> 3] |= v << (8 - s.depth - (bit & 7));
      }
    }
  }
  const parts = [new Uint8Array([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), chunk('IHDR', ihdr)];
  if (s.palette) parts.push(chunk('PLTE', Uint8Array.from(s.palette.flat())));
  if (s.trns) {
    const t = s.colorType === 3 ? Uint8Array.from(s.trns) : new Uint8Array(s.trns.flatMap((v) => [v >> 8, v & 0xff]));
    parts.push(chunk('tRNS', t));
  }
  parts.push(chunk('IDAT', deflateSync(raw)), chunk('IEND', new Uint8Array(0)));
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/** Decoded CHW → per-pixel [r, g, b] list. */
function pixelsOf(img: { data: Uint8Array; width: number; height: number }): number[][] {
  const n = img.width * img.height;
  return Array.from({ length: n }, (_, k) => [img.data[k], img.data[n + k], img.data[2 * n + k]]);
}

async function expectDecodeError(bytes: Uint8Array): Promise<void> {
  await expect(decodeImageNode(bytes)).rejects.toBeInstanceOf(ImageDecodeError);
}

describe('decodeImageNode: PNG as PIL convert("RGB")', () => {
  it('gray 1/2/4/8-bit scale to 0..255 and replicate', async () => {
    for (const depth of [1, 2, 4, 8]) {
      const max = (1 << depth) - 1;
      const samples = [0, max, Math.floor(max / 2), 1, max, 0, 1, Math.min(3, max), Math.floor(max / 3)];
      const img = await decodeImageNode(encodePng({ width: 9, height: 1, colorType: 0, depth, samples }));
      expect(pixelsOf(img)).toEqual(samples.map((v) => Array(3).fill((v * 255) / max)));
    }
  });

  it('gray 16-bit clips to 255 (PIL I;16 → RGB), keeping a tRNS key colour', async () => {
    const samples = [0, 7, 200, 255, 256, 1000, 65535, 0x00ff];
    const img = await decodeImageNode(encodePng({ width: 4, height: 2, colorType: 0, depth: 16, samples, trns: [7] }));
    expect(pixelsOf(img)).toEqual(samples.map((v) => Array(3).fill(Math.min(v, 255))));
  });

  it('RGB 8-bit keeps the tRNS key colour (pngjs alone would zero it)', async () => {
    const samples = [10, 20, 30, 1, 2, 3, 255, 0, 128, 10, 20, 30];
    const img = await decodeImageNode(
      encodePng({ width: 2, height: 2, colorType: 2, depth: 8, samples, trns: [10, 20, 30] }),
    );
    expect(pixelsOf(img)).toEqual([
      [10, 20, 30],
      [1, 2, 3],
      [255, 0, 128],
      [10, 20, 30],
    ]);
  });

  it('16-bit RGB, RGBA and gray+alpha keep the high byte; alpha is dropped without compositing', async () => {
    const rgb = [0x1234, 0xabcd, 0x00ff, 0xff00, 0x8080, 0x7fff];
    let img = await decodeImageNode(encodePng({ width: 2, height: 1, colorType: 2, depth: 16, samples: rgb }));
    expect(pixelsOf(img)).toEqual([
      [0x12, 0xab, 0x00],
      [0xff, 0x80, 0x7f],
    ]);
    const rgba = [0x1234, 0xabcd, 0x00ff, 0, 0xff00, 0x8080, 0x7fff, 0xffff];
    img = await decodeImageNode(encodePng({ width: 2, height: 1, colorType: 6, depth: 16, samples: rgba }));
    expect(pixelsOf(img)).toEqual([
      [0x12, 0xab, 0x00],
      [0xff, 0x80, 0x7f],
    ]);
    const la = [0x9abc, 0, 0x0102, 0xffff];
    img = await decodeImageNode(encodePng({ width: 2, height: 1, colorType: 4, depth: 16, samples: la }));
    expect(pixelsOf(img)).toEqual([
      [0x9a, 0x9a, 0x9a],
      [0x01, 0x01, 0x01],
    ]);
  });

  it('8-bit RGBA and gray+alpha drop alpha, even fully transparent pixels keep their colour', async () => {
    const rgba = [200, 100, 50, 0, 1, 2, 3, 128, 9, 8, 7, 255];
    let img = await decodeImageNode(encodePng({ width: 3, height: 1, colorType: 6, depth: 8, samples: rgba }));
    expect(pixelsOf(img)).toEqual([
      [200, 100, 50],
      [1, 2, 3],
      [9, 8, 7],
    ]);
    img = await decodeImageNode(encodePng({ width: 2, height: 1, colorType: 4, depth: 8, samples: [77, 0, 250, 9] }));
    expect(pixelsOf(img)).toEqual([
      [77, 77, 77],
      [250, 250, 250],
    ]);
  });

  it('palette 2-bit and 8-bit (with palette alpha) map through the palette', async () => {
    const palette = [
      [255, 0, 0],
      [0, 255, 0],
      [0, 0, 255],
      [12, 34, 56],
    ];
    for (const depth of [2, 8]) {
      const samples = [3, 0, 1, 2, 2, 1];
      const img = await decodeImageNode(
        encodePng({ width: 3, height: 2, colorType: 3, depth, samples, palette, trns: [0, 128] }),
      );
      expect(pixelsOf(img)).toEqual(samples.map((i) => palette[i]));
    }
  });

  it('decodes the golden image to CHW RGB', async () => {
    const img = await decodeImageNode(new Uint8Array(readFileSync(`${GOLDEN}/image.png`)));
    expect(img.width).toBe(80);
    expect(img.height).toBe(48);
    expect(img.data.length).toBe(3 * 80 * 48);
  });
});

describe('decodeImageNode: JPEG', () => {
  it('round-trips a smooth image through jpeg-js within JPEG error', async () => {
    const [w, h] = [40, 24];
    const rgba = new Uint8Array(w * h * 4);
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) {
        rgba.set([x * 6, y * 10, 128 + ((x + y) % 8), 255], (y * w + x) * 4);
      }
    }
    const bytes = new Uint8Array(jpeg.encode({ data: rgba, width: w, height: h }, 100).data);
    const img = await decodeImageNode(bytes);
    expect([img.width, img.height]).toEqual([w, h]);
    let worst = 0;
    for (let k = 0; k < w * h; k++) {
      for (let c = 0; c < 3; c++) worst = Math.max(worst, Math.abs(img.data[c * w * h + k] - rgba[4 * k + c]));
    }
    expect(worst).toBeLessThanOrEqual(12);

    await expectDecodeError(bytes.slice(0, bytes.length >> 1));
  });
});

describe('decodeImageNode: bad input → ImageDecodeError', () => {
  it('empty, unknown format, random bytes', async () => {
    await expectDecodeError(new Uint8Array(0));
    await expectDecodeError(new TextEncoder().encode('GIF89a not supported'));
    const rnd = new Uint8Array(500);
    for (let i = 0; i < rnd.length; i++) rnd[i] = (i * 7919 + 13) & 0xff;
    await expectDecodeError(rnd);
  });

  it('corrupt or truncated PNG, zero-size PNG, garbage after a JPEG header', async () => {
    const good = new Uint8Array(readFileSync(`${GOLDEN}/image.png`));
    await expectDecodeError(good.slice(0, good.length >> 1));
    await expectDecodeError(good.slice(0, 8));
    const flipped = good.slice();
    flipped[good.length >> 1] ^= 0xff; // inside IDAT: CRC mismatch
    await expectDecodeError(flipped);
    await expectDecodeError(encodePng({ width: 0, height: 3, colorType: 2, depth: 8, samples: [] }));
    await expectDecodeError(Uint8Array.from([0xff, 0xd8, 0xff, 0xe0, 1, 2, 3, 4, 5, 6, 7, 8]));
  });
});
