/**
 * uploadMatrix reads and packs in row blocks: whatever the block and part sizes, the GPU bytes are identical to
 * packing the whole matrix at once.
 */
import { describe, expect, it } from 'vitest';
import { ShapeError } from '../../src/errors.ts';
import { destroyMatrix, type Matrix, q4Dims, type WeightFormat } from '../../src/gpu/tensor.ts';
import { packF16, packQ4 } from '../../src/weights/quantize.ts';
import { uploadMatrix } from '../../src/weights/upload-matrix.ts';
import { createTestContext } from '../helpers/gpu.ts';
import { Rng } from '../helpers/rng.ts';

async function gpuBytes(ctx: Awaited<ReturnType<typeof createTestContext>>, m: Matrix) {
  const data: Uint8Array[] = [];
  const scales: Uint8Array[] = [];
  for (const p of m.parts) {
    data.push(new Uint8Array(await ctx.read(p.data)));
    if (p.scales) scales.push(new Uint8Array(await ctx.read(p.scales)));
  }
  const cat = (a: Uint8Array[]) => {
    const out = new Uint8Array(a.reduce((s, x) => s + x.length, 0));
    let o = 0;
    for (const x of a) {
      out.set(x, o);
      o += x.length;
    }
    return out;
  };
  return { data: cat(data), scales: cat(scales) };
}

describe('uploadMatrix in row blocks', async () => {
  const ctx = await createTestContext();
  const n = 37;
  const k = 70; // not a multiple of 32, odd number of f16 pairs per row… (70/2 = 35 words)
  const values = new Rng(5).floats(n * k, -2, 2);
  for (const format of ['f32', 'f16', 'q4'] as WeightFormat[]) {
    it(`${format}: reader + 3-row blocks + split parts equals packing the whole matrix`, async () => {
      const whole =
        format === 'f32'
          ? { data: new Uint8Array(values.buffer.slice(0)), scales: new Uint8Array(0) }
          : format === 'f16'
            ? { data: new Uint8Array(packF16(values, n, k).buffer), scales: new Uint8Array(0) }
            : (() => {
                const p = packQ4(values, n, k);
                return { data: new Uint8Array(p.qweight.buffer), scales: new Uint8Array(p.scales.buffer) };
              })();
      const reads: [number, number][] = [];
      const m = await uploadMatrix(
        ctx,
        'blocks',
        format,
        n,
        k,
        async (start, count) => {
          reads.push([start, count]);
          return values.slice(start * k, (start + count) * k);
        },
        { readBlockBytes: 3 * k * 4, maxPartBytes: 10 * (format === 'q4' ? q4Dims(k).wordsPerRow * 4 : k * 4) },
      );
      try {
        expect(m.parts.length).toBeGreaterThan(1);
        expect(Math.max(...reads.map((r) => r[1]))).toBe(3);
        expect(reads.reduce((s, r) => s + r[1], 0)).toBe(n);
        const got = await gpuBytes(ctx, m);
        const diff = got.data.findIndex((b, i) => b !== whole.data[i]);
        expect([diff, got.data.length, whole.data.length]).toEqual([-1, whole.data.length, whole.data.length]);
        expect(Buffer.from(got.scales.subarray(0, whole.scales.length)).equals(Buffer.from(whole.scales))).toBe(true);
      } finally {
        destroyMatrix(m);
      }
    });
  }
  it('a reader that returns the wrong number of values is a ShapeError, and nothing is left allocated', async () => {
    await expect(
      uploadMatrix(ctx, 'bad', 'f32', n, k, async (_s, count) => new Float32Array(count * k - 1)),
    ).rejects.toBeInstanceOf(ShapeError);
  });
});
