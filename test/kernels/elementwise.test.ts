import { describe, expect, it } from 'vitest';
import { ShapeError } from '../../src/errors.ts';
import { readAct, uploadAct } from '../../src/gpu/act-io.ts';
import type { Tensor } from '../../src/gpu/tensor.ts';
import { add, gelu, quickGelu, silu, swiglu } from '../../src/ops/elementwise.ts';
import { roundToF16 } from '../../src/util/f16.ts';
import { expectClose, type Tolerance } from '../helpers/compare.ts';
import { actDTypes, createTestContext } from '../helpers/gpu.ts';
import { Rng } from '../helpers/rng.ts';
import * as ref from '../reference/elementwise.ts';

// f32: a few ulp of f32 arithmetic (exp, the erfc fit's 1.2e-7) — measured ≲ 1e-6 relative.
const TOL_F32: Tolerance = { atol: 1e-6, rtol: 1e-5 };
// f16: inputs are rounded to f16 before the reference, so the error is one f16 rounding of the output
// (≤ 2^-11 ≈ 4.9e-4 relative) plus the f32 math; 1e-3 leaves a 2× margin. atol covers f16 subnormals.
const TOL_F16: Tolerance = { atol: 1e-6, rtol: 1e-3 };

const ROWS = [1, 7, 257];
const COLS = [1, 7, 64, 257, 2048];

function data(rng: Rng, n: number, dtype: 'f16' | 'f32', scale = 3): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = rng.normal() * scale;
  return dtype === 'f16' ? a.map(roundToF16) : a;
}

describe('elementwise kernels', async () => {
  const ctx = await createTestContext();
  const unaryOps = [
    { name: 'gelu', op: gelu, f: ref.gelu },
    { name: 'quickGelu', op: quickGelu, f: ref.quickGelu },
    { name: 'silu', op: silu, f: ref.silu },
  ] as const;
  const binaryOps = [
    { name: 'add', op: add, f: (a: number, b: number) => a + b },
    { name: 'swiglu', op: swiglu, f: ref.swiglu },
  ] as const;

  for (const dtype of actDTypes(ctx)) {
    const tol = dtype === 'f16' ? TOL_F16 : TOL_F32;
    for (const { name, op, f } of unaryOps) {
      it(`${name} [${dtype}] over rows ${ROWS} × cols ${COLS}, out of place and in place`, async () => {
        for (const rows of ROWS) {
          for (const cols of COLS) {
            const rng = new Rng(rows * 10007 + cols);
            const xv = data(rng, rows * cols, dtype);
            const want = ref.mapUnary(f, xv);
            const x = await uploadAct(ctx, 'x', xv, [rows, cols], dtype);
            const y = await uploadAct(ctx, 'y', new Float32Array(rows * cols).fill(Number.NaN), [rows, cols], dtype);
            await op(ctx, x, y);
            expectClose(await readAct(ctx, y), want, tol, `${name} ${dtype} [${rows},${cols}]`);
            await op(ctx, x, x);
            expectClose(await readAct(ctx, x), want, tol, `${name} in-place ${dtype} [${rows},${cols}]`);
            x.destroy();
            y.destroy();
          }
        }
      });
    }
    for (const { name, op, f } of binaryOps) {
      it(`${name} [${dtype}] over rows ${ROWS} × cols ${COLS}, with every aliasing of out`, async () => {
        for (const rows of ROWS) {
          for (const cols of COLS) {
            const n = rows * cols;
            const rng = new Rng(rows * 7919 + cols);
            const av = data(rng, n, dtype);
            const bv = data(rng, n, dtype);
            const want = ref.mapBinary(f, av, bv);
            const label = `${name} ${dtype} [${rows},${cols}]`;
            const up = async (v: Float32Array) => uploadAct(ctx, 'v', v, [rows, cols], dtype);
            const a = await up(av);
            const b = await up(bv);
            const o = await up(new Float32Array(n).fill(Number.NaN));
            await op(ctx, a, b, o);
            expectClose(await readAct(ctx, o), want, tol, label);
            await op(ctx, a, b, a); // out = a
            expectClose(await readAct(ctx, a), want, tol, `${label} out=a`);
            const a2 = await up(av);
            await op(ctx, a2, b, b); // out = b
            expectClose(await readAct(ctx, b), want, tol, `${label} out=b`);
            const s = await up(av);
            await op(ctx, s, s, s); // a = b = out
            expectClose(await readAct(ctx, s), ref.mapBinary(f, av, av), tol, `${label} a=b=out`);
            for (const t of [a, a2, b, o, s] as Tensor[]) t.destroy();
          }
        }
      });
    }
  }

  it('gelu is accurate far into both tails (f32)', async () => {
    const xv = new Float32Array(2001);
    for (let i = 0; i < xv.length; i++) xv[i] = -20 + i * 0.02;
    const x = await uploadAct(ctx, 'x', xv, [xv.length], 'f32');
    const y = await uploadAct(ctx, 'y', new Float32Array(xv.length), [xv.length], 'f32');
    await gelu(ctx, x, y);
    // Relative accuracy in the negative tail too (GELU(−5) ≈ −1.4e-6): atol far below the values there.
    expectClose(await readAct(ctx, y), ref.mapUnary(ref.gelu, xv), { atol: 1e-12, rtol: 2e-5 }, 'gelu tails');
    await quickGelu(ctx, x, y);
    expectClose(await readAct(ctx, y), ref.mapUnary(ref.quickGelu, xv), { atol: 1e-12, rtol: 2e-5 }, 'qgelu tails');
    x.destroy();
    y.destroy();
  });

  it('rejects mismatched shapes and dtypes with ShapeError', async () => {
    const a = await uploadAct(ctx, 'a', new Float32Array(12), [3, 4], 'f32');
    const b = await uploadAct(ctx, 'b', new Float32Array(12), [4, 3], 'f32');
    const c = await uploadAct(ctx, 'c', new Float32Array(8), [2, 4], 'f32');
    await expect(add(ctx, a, b, a)).rejects.toBeInstanceOf(ShapeError);
    await expect(swiglu(ctx, a, a, c)).rejects.toBeInstanceOf(ShapeError);
    await expect(gelu(ctx, a, c)).rejects.toBeInstanceOf(ShapeError);
    if (ctx.hasF16) {
      const h = await uploadAct(ctx, 'h', new Float32Array(12), [3, 4], 'f16');
      await expect(add(ctx, a, h, a)).rejects.toBeInstanceOf(ShapeError);
      await expect(quickGelu(ctx, a, h)).rejects.toBeInstanceOf(ShapeError);
      h.destroy();
    }
    a.destroy();
    b.destroy();
    c.destroy();
  });
});
