import { describe, expect, it } from 'vitest';
import { ShapeError } from '../../src/errors.ts';
import { readAct, uploadAct } from '../../src/gpu/act-io.ts';
import { Tensor } from '../../src/gpu/tensor.ts';
import { traversalGateMix } from '../../src/ops/traversal.ts';
import { roundToF16 } from '../../src/util/f16.ts';
import { expectClose, type Tolerance } from '../helpers/compare.ts';
import { actDTypes, createTestContext, readF32 } from '../helpers/gpu.ts';
import { Rng } from '../helpers/rng.ts';
import * as ref from '../reference/traversal.ts';

// f32 dot over ≤ 2048 terms + tanh (a few ulp): measured errors are ~1e-7.
const TOL_F32: Tolerance = { atol: 1e-6, rtol: 1e-5 };
// f16 y: one f16 rounding of the output (2^-11 relative) with a 2× margin; h1/h2 are rounded to f16 before
// the reference, and the gate itself stays f32 (TOL_F32).
const TOL_F16: Tolerance = { atol: 1e-5, rtol: 1e-3 };

const TOKENS = [1, 7, 257];
const DIMS = [1, 7, 64, 257, 2048];

describe('traversal gate-and-mix', async () => {
  const ctx = await createTestContext();
  const f32 = async (label: string, v: Float32Array) => new Tensor(await ctx.upload(label, v), 'f32', [v.length]);

  for (const dtype of actDTypes(ctx)) {
    const tol = dtype === 'f16' ? TOL_F16 : TOL_F32;
    const round = (a: Float32Array) => (dtype === 'f16' ? a.map(roundToF16) : a);
    for (const mode of ['y separate', 'y = h1', 'y = h2'] as const) {
      it(`[${dtype}] ${mode}, T ${TOKENS} × D ${DIMS}`, async () => {
        for (const T of TOKENS) {
          for (const d of DIMS) {
            const rng = new Rng(T * 1000 + d);
            const h1v = round(new Float32Array(T * d).map(() => rng.normal()));
            const h2v = round(new Float32Array(T * d).map(() => rng.normal()));
            // z = h1·w + b has spread ~3: scores across (0, 1), some near saturation.
            const wv = new Float32Array(d).map(() => (3 * rng.normal()) / Math.sqrt(d));
            const b = 0.25;
            const h1 = await uploadAct(ctx, 'h1', h1v, [T, d], dtype);
            const h2 = await uploadAct(ctx, 'h2', h2v, [T, d], dtype);
            const w = await f32('w', wv);
            const gate = await f32('gate', new Float32Array(T).fill(Number.NaN));
            const y =
              mode === 'y = h1'
                ? h1
                : mode === 'y = h2'
                  ? h2
                  : await uploadAct(ctx, 'y', new Float32Array(T * d).fill(Number.NaN), [T, d], dtype);
            await traversalGateMix(ctx, h1, h2, w, b, y, gate);
            const want = ref.gateMix(h1v, h2v, wv, b, T, d);
            const label = `gate-mix ${dtype} ${mode} [${T},${d}]`;
            const gotGate = await readF32(ctx, gate.buffer, T);
            expectClose(gotGate, want.gate, TOL_F32, `${label} gate`);
            // y is checked against the blend of the GPU's own scores: where y cancels to near zero its absolute
            // error is δs·|h2 − h1| (δs ≈ 3e-7 from the f32 dot over 2048 terms), which says nothing about the
            // blend. The scores are checked against f64 above; together they pin the whole op.
            const gotY = await readAct(ctx, y);
            expectClose(gotY, ref.mix(h1v, h2v, gotGate, T, d), tol, `${label} y`);
            // End to end, y = f(f64 gate) within the propagated bound: |δy| ≤ δs·|h2 − h1| + tol.
            expectClose(gotY, want.y, { atol: tol.atol + 1e-5, rtol: tol.rtol }, `${label} y (f64 gate)`);
            for (const t of new Set([h1, h2, y, w, gate])) t.destroy();
          }
        }
      });
    }
  }

  it('saturates cleanly for huge |z| (no NaN from tanh)', async () => {
    const T = 4;
    const d = 64;
    const h1v = new Float32Array(T * d).fill(1);
    const h2v = new Float32Array(T * d).fill(3);
    const h1 = await uploadAct(ctx, 'h1', h1v, [T, d], 'f32');
    const h2 = await uploadAct(ctx, 'h2', h2v, [T, d], 'f32');
    const y = await uploadAct(ctx, 'y', new Float32Array(T * d), [T, d], 'f32');
    const gate = await f32('gate', new Float32Array(T));
    for (const [wScale, b, s] of [
      [1e6, 0, 1],
      [-1e6, 0, 0],
      [0, 1e30, 1],
      [0, -1e30, 0],
    ] as const) {
      await traversalGateMix(ctx, h1, h2, await f32('w', new Float32Array(d).fill(wScale)), b, y, gate);
      expectClose(await readF32(ctx, gate.buffer, T), new Float64Array(T).fill(s), TOL_F32, `gate w=${wScale} b=${b}`);
      expectClose(await readAct(ctx, y), new Float64Array(T * d).fill(1 + 2 * s), TOL_F32, `y w=${wScale} b=${b}`);
    }
  });

  it('rejects mismatched shapes with ShapeError', async () => {
    const h1 = await uploadAct(ctx, 'h1', new Float32Array(12), [3, 4], 'f32');
    const h2 = await uploadAct(ctx, 'h2', new Float32Array(12), [3, 4], 'f32');
    const hBad = await uploadAct(ctx, 'hb', new Float32Array(12), [4, 3], 'f32');
    const w4 = await f32('w', new Float32Array(4));
    const w3 = await f32('w', new Float32Array(3));
    const g3 = await f32('g', new Float32Array(3));
    const g4 = await f32('g', new Float32Array(4));
    await expect(traversalGateMix(ctx, h1, hBad, w4, 0, h1, g3)).rejects.toBeInstanceOf(ShapeError);
    await expect(traversalGateMix(ctx, h1, h2, w3, 0, h1, g3)).rejects.toBeInstanceOf(ShapeError);
    await expect(traversalGateMix(ctx, h1, h2, w4, 0, h1, g4)).rejects.toBeInstanceOf(ShapeError);
    await expect(traversalGateMix(ctx, h1, h2, w4, 0, hBad, g3)).rejects.toBeInstanceOf(ShapeError);
    await expect(traversalGateMix(ctx, h1, h1, w4, 0, h2, g3)).rejects.toBeInstanceOf(ShapeError);
  });
});
