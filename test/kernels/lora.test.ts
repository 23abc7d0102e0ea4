/**
 * loraAdd (src/ops/lora.ts) against the f64 P-LoRA reference in test/reference/matmul.ts, for both linear
 * variants × A/B formats × activation dtypes; listed rows only, every other row bit-identical.
 *
 * The rank-R intermediate lives in an activation tensor, so with f16 activations the reference rounds it to
 * f16 too; the tolerances are then the linear ones (matmul.test.ts): f32 atol 3e-5·√(K/64), rtol 1e-5; f16 atol
 * 1e-4, rtol 1e-3 (one f16 rounding of the result; a rounding of the intermediate that lands on the other side
 * of a tie moves one of R terms by 2⁻¹¹ of itself, well inside rtol).
 */
import { describe, expect, it } from 'vitest';
import { ShapeError } from '../../src/errors.ts';
import { createAct, readAct, uploadAct, uploadU32 } from '../../src/gpu/act-io.ts';
import type { GpuContext } from '../../src/gpu/context.ts';
import { destroyMatrix, type WeightFormat } from '../../src/gpu/tensor.ts';
import type { LinearVariant } from '../../src/ops/linear.ts';
import { loraAdd } from '../../src/ops/lora.ts';
import { roundToF16 } from '../../src/util/f16.ts';
import { packQ4 } from '../../src/weights/quantize.ts';
import { uploadMatrix } from '../../src/weights/upload-matrix.ts';
import { expectClose, type Tolerance } from '../helpers/compare.ts';
import { actDTypes, createTestContext } from '../helpers/gpu.ts';
import { Rng } from '../helpers/rng.ts';
import { decodeQ4, loraRef } from '../reference/matmul.ts';

type Act = 'f16' | 'f32';

function tolerance(act: Act, k: number): Tolerance {
  return act === 'f32' ? { atol: 3e-5 * Math.sqrt(k / 64), rtol: 1e-5 } : { atol: 1e-4, rtol: 1e-3 };
}

async function weight(ctx: GpuContext, label: string, format: WeightFormat, n: number, k: number, rng: Rng) {
  const values = rng.floats(n * k);
  let deq: Float64Array;
  if (format === 'f32') deq = Float64Array.from(values);
  else if (format === 'f16') deq = Float64Array.from(values, roundToF16);
  else {
    const p = packQ4(values, n, k);
    deq = decodeQ4(p.qweight, p.scales, n, k);
  }
  return { m: await uploadMatrix(ctx, label, format, n, k, values), deq };
}

interface Case {
  xRows: number;
  k: number;
  r: number;
  n: number;
  rows: number[];
  numRows: number;
  scale: number;
}

async function runCase(ctx: GpuContext, c: Case, format: WeightFormat, act: Act, variant: LinearVariant, seed: number) {
  const rng = new Rng(seed);
  const rnd = act === 'f16' ? roundToF16 : Math.fround;
  const xv = Float32Array.from(rng.floats(c.xRows * c.k), rnd);
  const out0 = Float32Array.from(rng.floats(c.xRows * c.n), rnd);
  const a = await weight(ctx, 'A', format, c.r, c.k, rng);
  const b = await weight(ctx, 'B', format, c.n, c.r, rng);
  const x = await uploadAct(ctx, 'x', xv, [c.xRows, c.k], act);
  const out = await uploadAct(ctx, 'out', out0, [c.xRows, c.n], act);
  const before = await readAct(ctx, out);
  // Scratch larger than needed, as the model's [chunk, R] buffer is.
  const tmp = await createAct(ctx, 'tmp', [c.numRows + 3, c.r], act);
  const rows = await uploadU32(ctx, 'rows', Uint32Array.from(c.rows));
  await loraAdd(ctx, x, a.m, b.m, rows, c.numRows, out, c.scale, tmp, variant);
  const got = await readAct(ctx, out);
  const listed = c.rows.slice(0, c.numRows);
  const want = loraRef(xv, c.k, a.deq, c.r, b.deq, c.n, listed, out0, c.scale, rnd);
  const label = `${variant} ${format}/${act} K${c.k} R${c.r} N${c.n} rows ${c.numRows}`;
  expectClose(got, want, tolerance(act, Math.max(c.k, c.r)), label);
  for (let row = 0; row < c.xRows; row++) {
    if (listed.includes(row)) continue;
    expect(got.subarray(row * c.n, (row + 1) * c.n), `${label}: row ${row} changed`).toEqual(
      before.subarray(row * c.n, (row + 1) * c.n),
    );
  }
  for (const t of [x, out, tmp, rows]) t.destroy();
  destroyMatrix(a.m);
  destroyMatrix(b.m);
}

const CASES: Case[] = [
  // 4 of 5 listed rows (row 11 is not processed), M = 4 → the GEMV kernels
  { xRows: 20, k: 40, r: 16, n: 300, rows: [3, 7, 19, 0, 11], numRows: 4, scale: 1 },
  // 9 rows → the GEMM kernels; K and R not multiples of 32 or of the tile
  { xRows: 12, k: 257, r: 7, n: 257, rows: [11, 0, 2, 4, 6, 8, 10, 1, 3], numRows: 9, scale: 0.5 },
  // one row, K = 512, N = 7
  { xRows: 3, k: 512, r: 32, n: 7, rows: [1], numRows: 1, scale: -2 },
];

describe('loraAdd', async () => {
  const ctx = await createTestContext();
  for (const variant of ['register', 'tiled'] as const) {
    for (const format of ['f32', 'f16', 'q4'] as const) {
      for (const act of actDTypes(ctx)) {
        it(`${variant} ${format} A/B, ${act} activations`, async () => {
          for (const [i, c] of CASES.entries()) await runCase(ctx, c, format, act, variant, 100 + i);
        });
      }
    }
  }

  it('does nothing for numRows = 0', async () => {
    const c: Case = { xRows: 4, k: 32, r: 8, n: 16, rows: [1, 2], numRows: 0, scale: 1 };
    await runCase(ctx, c, 'f32', ctx.act, 'auto', 7);
  });

  it('rejects inconsistent shapes with ShapeError', async () => {
    const rng = new Rng(9);
    const act = ctx.act;
    const a = await uploadMatrix(ctx, 'A', 'f32', 8, 16, rng.floats(8 * 16));
    const b = await uploadMatrix(ctx, 'B', 'f32', 12, 8, rng.floats(12 * 8));
    const bBadR = await uploadMatrix(ctx, 'B7', 'f32', 12, 7, rng.floats(12 * 7));
    const x = await createAct(ctx, 'x', [4, 16], act);
    const xBadK = await createAct(ctx, 'xk', [4, 15], act);
    const out = await createAct(ctx, 'out', [4, 12], act);
    const outBadN = await createAct(ctx, 'on', [4, 13], act);
    const tmp = await createAct(ctx, 'tmp', [2, 8], act);
    const rows = await uploadU32(ctx, 'rows', new Uint32Array([0, 3, 1]));
    await expect(loraAdd(ctx, xBadK, a, b, rows, 2, out, 1, tmp)).rejects.toBeInstanceOf(ShapeError);
    await expect(loraAdd(ctx, x, a, bBadR, rows, 2, out, 1, tmp)).rejects.toBeInstanceOf(ShapeError);
    await expect(loraAdd(ctx, x, a, b, rows, 2, outBadN, 1, tmp)).rejects.toBeInstanceOf(ShapeError);
    await expect(loraAdd(ctx, x, a, b, rows, 4, out, 1, tmp)).rejects.toBeInstanceOf(ShapeError); // > rows
    await expect(loraAdd(ctx, x, a, b, rows, 3, out, 1, tmp)).rejects.toBeInstanceOf(ShapeError); // > tmp
  });
});
