/**
 * The exact uint8 bicubic resize and CLIP normalization: the golden image (decode → resize → normalize) must
 * match img_resized_u8.bin with 0 differences and img_pixel_values.bin bit for bit; extra shapes (upscale,
 * downscale, 1×1, non-square, one axis unchanged) are checked against the independent f64 reference
 * (test/reference/bicubic.ts), each rounding pass within 1 LSB.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ShapeError } from '../../src/errors.ts';
import { decodeImageNode } from '../../src/image/decode-node.ts';
import { CLIP_MEAN, CLIP_STD, clipNormalize } from '../../src/image/normalize.ts';
import { preprocessImage } from '../../src/image/preprocess.ts';
import { bicubicAxisWeights, resizeBicubicU8 } from '../../src/image/resize.ts';
import { Rng } from '../helpers/rng.ts';
import { referenceBicubicU8 } from '../reference/bicubic.ts';

const GOLDEN = 'test/fixtures/tiny-trol/golden';
const S = 56;

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): { max: number; count: number } {
  expect(a.length).toBe(b.length);
  let max = 0;
  let count = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i] - b[i]);
    if (d > 0) count++;
    if (d > max) max = d;
  }
  return { max, count };
}

/** Distance in float32 units in the last place. */
function ulps(a: number, b: number): number {
  const f = new Float32Array([a, b]);
  const i = new Int32Array(f.buffer);
  const key = (x: number) => (x < 0 ? -2147483648 - x : x);
  return Math.abs(key(i[0]) - key(i[1]));
}

function testImage(rng: Rng, C: number, H: number, W: number, kind: 'noise' | 'smooth' | 'edges'): Uint8Array {
  const out = new Uint8Array(C * H * W);
  for (let c = 0; c < C; c++) {
    for (let y = 0; y < H; y++) {
      for (let x = 0; x < W; x++) {
        let v: number;
        if (kind === 'noise') v = rng.int(0, 256);
        else if (kind === 'smooth') v = Math.round(128 + 100 * Math.sin(0.3 * x + c) * Math.cos(0.2 * y));
        else v = ((x >> 2) + (y >> 2) + c) % 2 ? 255 : 0;
        out[(c * H + y) * W + x] = v;
      }
    }
  }
  return out;
}

describe('golden image', () => {
  it('decode → resize matches img_resized_u8.bin exactly, normalize matches img_pixel_values.bin', async () => {
    const img = await decodeImageNode(new Uint8Array(readFileSync(`${GOLDEN}/image.png`)));
    expect([img.width, img.height]).toEqual([80, 48]);
    const { resized, pixels } = preprocessImage(img, S);
    const want = new Uint8Array(readFileSync(`${GOLDEN}/img_resized_u8.bin`));
    const d = maxAbsDiff(resized, want);
    expect(d.count, `resize: ${d.count} differences, max ${d.max}`).toBe(0);

    const wantPx = new Float32Array(new Uint8Array(readFileSync(`${GOLDEN}/img_pixel_values.bin`)).buffer);
    let maxUlp = 0;
    for (let i = 0; i < wantPx.length; i++) maxUlp = Math.max(maxUlp, ulps(pixels[i], wantPx[i]));
    expect(maxUlp, `normalize: max ${maxUlp} ulp`).toBe(0);
  });
});

describe('resizeBicubicU8 vs the independent f64 reference', () => {
  const shapes: [number, number, number, number][] = [
    [48, 80, S, S], // the golden's shape: width down, height up
    [7, 5, S, S], // strong upscale
    [257, 130, S, S], // downscale
    [1, 1, 7, 5], // 1×1
    [33, 17, 20, 45], // non-square both ways
    [1, 9, 4, 1],
    [13, 1, 1, 7],
    [257, 7, 1, 129],
    [S, S, S, S], // identity
    [40, 24, 40, 57], // height unchanged
  ];
  it.each(shapes)('%i×%i → %i×%i', (H, W, outH, outW) => {
    const rng = new Rng(H * 1000 + W);
    for (const kind of ['noise', 'smooth', 'edges'] as const) {
      const src = testImage(rng, 3, H, W, kind);
      const got = resizeBicubicU8(src, 3, H, W, outH, outW);
      expect(got.length).toBe(3 * outH * outW);
      // Horizontal pass alone (a resize with H unchanged runs only that pass): within 1 LSB.
      const h = resizeBicubicU8(src, 3, H, W, H, outW);
      const dh = maxAbsDiff(h, referenceBicubicU8(src, 3, H, W, H, outW));
      expect(dh.max, `${kind} horizontal pass`).toBeLessThanOrEqual(1);
      // Vertical pass on that same intermediate: within 1 LSB.
      const dv = maxAbsDiff(got, referenceBicubicU8(h, 3, H, outW, outH, outW));
      expect(dv.max, `${kind} vertical pass`).toBeLessThanOrEqual(1);
      // End to end, a 1-LSB intermediate difference can add one more LSB after the vertical pass.
      expect(maxAbsDiff(got, referenceBicubicU8(src, 3, H, W, outH, outW)).max).toBeLessThanOrEqual(2);
    }
  });

  it('a 1×1 image resizes to a constant, an identity resize is a copy', () => {
    const px = new Uint8Array([0, 200, 255]);
    const up = resizeBicubicU8(px, 3, 1, 1, 9, 4);
    for (let c = 0; c < 3; c++) for (let k = 0; k < 36; k++) expect(up[c * 36 + k]).toBe(px[c]);
    const src = testImage(new Rng(1), 3, 9, 11, 'noise');
    const same = resizeBicubicU8(src, 3, 9, 11, 9, 11);
    expect(same).toEqual(src);
    expect(same).not.toBe(src);
  });

  it('int16 weights of every output sum to 2^precision (±2 from rounding)', () => {
    for (const [inSize, outSize] of [
      [80, 56],
      [48, 56],
      [1, 9],
      [257, 3],
      [5, 490],
    ]) {
      const ax = bicubicAxisWeights(inSize, outSize);
      expect(ax.precision).toBeGreaterThanOrEqual(13);
      expect(ax.precision).toBeLessThanOrEqual(22);
      for (let i = 0; i < outSize; i++) {
        let sum = 0;
        for (let k = 0; k < 4; k++) sum += ax.weights[i * 4 + k];
        expect(Math.abs(sum - 2 ** ax.precision)).toBeLessThanOrEqual(2);
        expect(ax.xmin[i] + ax.xsize[i]).toBeLessThanOrEqual(inSize);
      }
    }
  });

  it('rejects bad shapes with ShapeError', () => {
    expect(() => resizeBicubicU8(new Uint8Array(11), 3, 2, 2, 4, 4)).toThrow(ShapeError);
    expect(() => resizeBicubicU8(new Uint8Array(12), 3, 2, 2, 0, 4)).toThrow(ShapeError);
    expect(() => resizeBicubicU8(new Uint8Array(0), 3, 0, 0, 4, 4)).toThrow(ShapeError);
    expect(() => clipNormalize(new Uint8Array(12), 3, 2, 3)).toThrow(ShapeError);
    expect(() => clipNormalize(new Uint8Array(8), 2, 2, 2)).toThrow(ShapeError);
    expect(() => preprocessImage({ data: new Uint8Array(5), width: 2, height: 2 }, S)).toThrow(ShapeError);
  });
});

describe('clipNormalize', () => {
  it('is (p − 255·mean)/(255·std) per channel, within float32 rounding of the f64 value', () => {
    const u8 = new Uint8Array(3 * 256);
    for (let c = 0; c < 3; c++) for (let p = 0; p < 256; p++) u8[c * 256 + p] = p;
    const out = clipNormalize(u8, 3, 16, 16);
    for (let c = 0; c < 3; c++) {
      for (let p = 0; p < 256; p++) {
        const exact = (p - 255 * CLIP_MEAN[c]) / (255 * CLIP_STD[c]);
        expect(Math.abs(out[c * 256 + p] - exact)).toBeLessThanOrEqual(2e-6 * Math.max(1, Math.abs(exact)));
      }
    }
  });
});
