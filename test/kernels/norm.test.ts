import { describe, expect, it } from 'vitest';
import { ShapeError } from '../../src/errors.ts';
import { readAct, uploadAct } from '../../src/gpu/act-io.ts';
import { Tensor } from '../../src/gpu/tensor.ts';
import { layerNorm, rmsNorm } from '../../src/ops/norm.ts';
import { roundToF16 } from '../../src/util/f16.ts';
import { expectClose, type Tolerance } from '../helpers/compare.ts';
import { actDTypes, createTestContext } from '../helpers/gpu.ts';
import { Rng } from '../helpers/rng.ts';
import * as ref from '../reference/norm.ts';

// f32: f32 sums over up to 2048 elements and one sqrt — a few 1e-7 relative.
const TOL_F32: Tolerance = { atol: 1e-5, rtol: 1e-5 };
// f16: x is rounded to f16 before the reference; the error is one f16 rounding of y (≤ 2^-11 relative)
// plus the f32 math, so 1e-3 relative is a 2× margin; atol covers results that land in f16 subnormals.
const TOL_F16: Tolerance = { atol: 1e-5, rtol: 1e-3 };

const ROWS = [1, 7, 257];
const DIMS = [1, 7, 64, 257, 2048];

describe('norm kernels', async () => {
  const ctx = await createTestContext();
  const f32 = async (v: Float32Array) => new Tensor(await ctx.upload('param', v), 'f32', [v.length]);

  for (const dtype of actDTypes(ctx)) {
    const tol = dtype === 'f16' ? TOL_F16 : TOL_F32;
    const round = (a: Float32Array) => (dtype === 'f16' ? a.map(roundToF16) : a);
    for (const kind of ['rmsNorm', 'layerNorm'] as const) {
      it(`${kind} [${dtype}] over rows ${ROWS} × D ${DIMS}`, async () => {
        for (const rows of ROWS) {
          for (const d of DIMS) {
            const rng = new Rng(rows * 131 + d);
            // A non-zero mean (LayerNorm must remove it) and a spread of magnitudes.
            const xv = round(new Float32Array(rows * d).map(() => 3 + 2 * rng.normal()));
            const wv = rng.floats(d, -1.5, 1.5);
            const bv = rng.floats(d, -0.5, 0.5);
            const eps = 1e-5;
            const x = await uploadAct(ctx, 'x', xv, [rows, d], dtype);
            const y = await uploadAct(ctx, 'y', new Float32Array(rows * d).fill(Number.NaN), [rows, d], dtype);
            const w = await f32(wv);
            const b = await f32(bv);
            let want: Float64Array;
            if (kind === 'rmsNorm') {
              await rmsNorm(ctx, x, w, y, eps);
              want = ref.rmsNorm(xv, wv, rows, d, eps);
            } else {
              await layerNorm(ctx, x, w, b, y, eps);
              want = ref.layerNorm(xv, wv, bv, rows, d, eps);
            }
            expectClose(await readAct(ctx, y), want, tol, `${kind} ${dtype} [${rows},${d}]`);
            for (const t of [x, y, w, b]) t.destroy();
          }
        }
      });
    }
  }

  it('layerNorm keeps precision when the mean dwarfs the spread (shifted two-pass sums)', async () => {
    const rows = 7;
    const d = 1024;
    const rng = new Rng(5);
    const xv = new Float32Array(rows * d).map(() => 1000 + 0.01 * rng.normal());
    const wv = new Float32Array(d).fill(1);
    const bv = new Float32Array(d);
    const x = await uploadAct(ctx, 'x', xv, [rows, d], 'f32');
    const y = await uploadAct(ctx, 'y', new Float32Array(rows * d), [rows, d], 'f32');
    await layerNorm(ctx, x, await f32(wv), await f32(bv), y, 1e-5);
    // A plain f32 Σx here loses ~6e-3 of the normalised values (partial sums near 1e6 have ulp 0.06); the
    // shifted sums keep the f32 tolerance.
    expectClose(await readAct(ctx, y), ref.layerNorm(xv, wv, bv, rows, d, 1e-5), TOL_F32, 'ln offset');
  });

  it('accepts a single row given as [D]', async () => {
    const d = 257;
    const rng = new Rng(9);
    const xv = rng.floats(d);
    const wv = rng.floats(d);
    const x = await uploadAct(ctx, 'x', xv, [d], 'f32');
    const y = await uploadAct(ctx, 'y', new Float32Array(d), [d], 'f32');
    await rmsNorm(ctx, x, await f32(wv), y, 1e-6);
    expectClose(await readAct(ctx, y), ref.rmsNorm(xv, wv, 1, d, 1e-6), TOL_F32, 'rms [D]');
  });

  it('rejects bad shapes, dtypes and in-place use with ShapeError', async () => {
    const x = await uploadAct(ctx, 'x', new Float32Array(12), [3, 4], 'f32');
    const yBad = await uploadAct(ctx, 'y', new Float32Array(12), [4, 3], 'f32');
    const y = await uploadAct(ctx, 'y', new Float32Array(12), [3, 4], 'f32');
    const w4 = await f32(new Float32Array(4));
    const w3 = await f32(new Float32Array(3));
    await expect(rmsNorm(ctx, x, w4, yBad, 1e-5)).rejects.toBeInstanceOf(ShapeError);
    await expect(rmsNorm(ctx, x, w3, y, 1e-5)).rejects.toBeInstanceOf(ShapeError);
    await expect(rmsNorm(ctx, x, w4, x, 1e-5)).rejects.toBeInstanceOf(ShapeError);
    await expect(layerNorm(ctx, x, w4, w3, y, 1e-5)).rejects.toBeInstanceOf(ShapeError);
    await expect(layerNorm(ctx, x, w4, w4, y, Number.NaN)).rejects.toBeInstanceOf(ShapeError);
    const wi = new Tensor(await ctx.upload('wi', new Uint32Array(4)), 'u32', [4]);
    await expect(rmsNorm(ctx, x, wi, y, 1e-5)).rejects.toBeInstanceOf(ShapeError);
    if (ctx.hasF16) {
      const h = await uploadAct(ctx, 'h', new Float32Array(12), [3, 4], 'f16');
      await expect(rmsNorm(ctx, x, w4, h, 1e-5)).rejects.toBeInstanceOf(ShapeError);
    }
  });
});
