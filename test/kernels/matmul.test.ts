/**
 * linear (shaders/matmul.wgsl, src/ops/linear.ts) against the f64 reference in test/reference/matmul.ts, for every
 * kernel variant × weight format × activation dtype, plus options, gather/scatter, split weights and packQ4.
 *
 * Tolerances (|got − want| ≤ atol + rtol·|want|; inputs are rounded to the stored dtype before the reference):
 *  - f32 activations: f32 accumulation over K terms |x·w| ≤ 1 (sums up to ~35 here), whose error grows like √K:
 *    atol 3e-5·√(K/64), rtol 1e-5 (measured: ≤ 2.7e-5 at K = 512);
 *  - f16 activations: the result is rounded once to f16 (relative 2⁻¹¹ ≈ 4.9e-4; measured never more than half
 *    an f16 ulp from the rounded exact value) → rtol 1e-3, atol 1e-4 for sums that cancel to near zero.
 */
import { describe, expect, it } from 'vitest';
import { FeatureUnavailableError, ShapeError } from '../../src/errors.ts';
import { createAct, readAct, uploadAct, uploadU32 } from '../../src/gpu/act-io.ts';
import type { GpuContext } from '../../src/gpu/context.ts';
import { destroyMatrix, type Matrix, q4Dims, Tensor, type WeightFormat } from '../../src/gpu/tensor.ts';
import { type LinearOptions, type LinearVariant, linear } from '../../src/ops/linear.ts';
import { roundToF16 } from '../../src/util/f16.ts';
import { packQ4 } from '../../src/weights/quantize.ts';
import { uploadMatrix } from '../../src/weights/upload-matrix.ts';
import { expectClose, type Tolerance } from '../helpers/compare.ts';
import { actDTypes, createTestContext } from '../helpers/gpu.ts';
import { Rng } from '../helpers/rng.ts';
import { decodeQ4, halfToNumber, linearRef } from '../reference/matmul.ts';

type Act = 'f16' | 'f32';
const VARIANTS: LinearVariant[] = ['register', 'tiled'];
const FORMATS: WeightFormat[] = ['f32', 'f16', 'q4'];

function tolerance(act: Act, k: number): Tolerance {
  return act === 'f32' ? { atol: 3e-5 * Math.sqrt(k / 64), rtol: 1e-5 } : { atol: 1e-4, rtol: 1e-3 };
}

const round = (act: Act) => (act === 'f16' ? roundToF16 : (v: number) => Math.fround(v));

/** Random W [n, k] in the given format: the values to upload and the exact dequantized values the GPU sees. */
function makeWeight(format: WeightFormat, n: number, k: number, rng: Rng) {
  const values = rng.floats(n * k);
  let deq: Float64Array;
  if (format === 'f32') deq = Float64Array.from(values);
  else if (format === 'f16') deq = Float64Array.from(values, roundToF16);
  else {
    const p = packQ4(values, n, k);
    deq = decodeQ4(p.qweight, p.scales, n, k);
  }
  return { values, deq };
}

/** Bytes one weight row takes in the data buffer (what uploadMatrix's maxPartBytes budgets). */
function dataRowBytes(format: WeightFormat, k: number): number {
  return format === 'f32' ? 4 * k : format === 'f16' ? 4 * Math.ceil(k / 2) : q4Dims(k).kp / 2;
}

interface Case {
  m: number;
  n: number;
  k: number;
  format: WeightFormat;
  act: Act;
  variant: LinearVariant;
  seed: number;
  bias?: boolean;
  accumulate?: boolean;
  scale?: number;
  /** gather/scatter: x rows, out rows, the index lists and the number of rows to process. */
  xRows?: number;
  outRows?: number;
  inRows?: number[];
  scatter?: number[];
  rows?: number;
  maxPartBytes?: number;
  expectParts?: number;
}

async function runCase(ctx: GpuContext, c: Case): Promise<void> {
  const rng = new Rng(c.seed);
  const r = round(c.act);
  const xRows = c.xRows ?? c.m;
  const outRows = c.outRows ?? c.m;
  const xv = Float32Array.from(rng.floats(xRows * c.k), r);
  const { values, deq } = makeWeight(c.format, c.n, c.k, rng);
  const w: Matrix = await uploadMatrix(ctx, 'W', c.format, c.n, c.k, values, { maxPartBytes: c.maxPartBytes });
  if (c.expectParts !== undefined) expect(w.parts.length).toBe(c.expectParts);
  // Non-accumulating runs start from a sentinel so that unwritten outputs show.
  const out0 =
    c.accumulate || c.scatter
      ? Float32Array.from(rng.floats(outRows * c.n), r)
      : new Float32Array(outRows * c.n).fill(777);
  const biasV = c.bias ? rng.floats(c.n) : undefined;
  const x = await uploadAct(ctx, 'x', xv, [xRows, c.k], c.act);
  const out = await uploadAct(ctx, 'out', out0, [outRows, c.n], c.act);
  const opts: LinearOptions = { variant: c.variant, accumulate: c.accumulate, scale: c.scale, rows: c.rows };
  const extra: Tensor[] = [];
  if (biasV) {
    opts.bias = new Tensor(await ctx.upload('bias', biasV), 'f32', [c.n]);
    extra.push(opts.bias);
  }
  if (c.inRows) {
    opts.inRows = await uploadU32(ctx, 'inRows', Uint32Array.from(c.inRows));
    extra.push(opts.inRows);
  }
  if (c.scatter) {
    opts.outRows = await uploadU32(ctx, 'outRows', Uint32Array.from(c.scatter));
    extra.push(opts.outRows);
  }
  await linear(ctx, x, w, out, opts);
  const got = await readAct(ctx, out);
  const want = linearRef(xv, xRows, c.k, deq, c.n, {
    bias: biasV,
    scale: c.scale,
    out: out0,
    outRows,
    accumulate: c.accumulate,
    inRows: c.inRows,
    scatterRows: c.scatter,
    rows: c.rows,
  });
  expectClose(got, want, tolerance(c.act, c.k), `${c.variant} ${c.format}/${c.act} M${c.m} N${c.n} K${c.k}`);
  x.destroy();
  out.destroy();
  for (const t of extra) t.destroy();
  destroyMatrix(w);
}

const SHAPES: [number, number, number][] = [
  [1, 1, 8],
  [1, 7, 40],
  [1, 257, 512],
  [1, 300, 257],
  [2, 257, 32],
  [3, 300, 40],
  [7, 7, 32],
  [7, 257, 40],
  [7, 300, 257],
  [257, 1, 8],
  [257, 7, 257],
  [257, 300, 512],
];

describe('linear', async () => {
  const ctx = await createTestContext();
  const acts = actDTypes(ctx);

  describe('plain product, every variant × format × act', () => {
    for (const variant of VARIANTS) {
      for (const format of FORMATS) {
        for (const act of acts) {
          it(`${variant} ${format} weights, ${act} activations`, async () => {
            for (const [m, n, k] of SHAPES) {
              await runCase(ctx, { m, n, k, format, act, variant, seed: m * 7919 + n * 31 + k });
            }
          });
        }
      }
    }
  });

  describe('bias, scale and accumulate', () => {
    for (const variant of VARIANTS) {
      for (const format of FORMATS) {
        for (const act of acts) {
          it(`${variant} ${format}/${act}`, async () => {
            for (const [m, n, k] of [
              [1, 300, 257],
              [3, 7, 40],
              [257, 300, 40],
            ]) {
              await runCase(ctx, { m, n, k, format, act, variant, seed: 5 + m, bias: true, scale: 0.37 });
              await runCase(ctx, { m, n, k, format, act, variant, seed: 6 + m, accumulate: true });
              await runCase(ctx, {
                ...{ m, n, k, format, act, variant, seed: 7 + m },
                ...{ bias: true, accumulate: true, scale: -1.5 },
              });
            }
          });
        }
      }
    }
  });

  describe('gather / scatter rows', () => {
    for (const variant of VARIANTS) {
      for (const format of FORMATS) {
        for (const act of acts) {
          it(`${variant} ${format}/${act}`, async () => {
            const base = { format, act, variant, n: 300, k: 40, m: 0 };
            // Gather with repeats and scatter to distinct rows; only 4 of the 5 entries are processed, so out rows
            // 1, 3 and 5 (and row 5 named by the 5th entry) must stay exactly as they were.
            await runCase(ctx, {
              ...base,
              ...{ seed: 11, xRows: 9, outRows: 7, inRows: [8, 0, 3, 3, 5], scatter: [2, 6, 0, 4, 5], rows: 4 },
              ...{ accumulate: true, bias: true, scale: 0.5 },
            });
            // Gather only (out rows = processed rows), scatter only (x rows = processed rows).
            await runCase(ctx, { ...base, seed: 12, xRows: 9, outRows: 3, inRows: [4, 4, 0] });
            await runCase(ctx, { ...base, seed: 13, xRows: 3, outRows: 8, scatter: [7, 0, 3], m: 3 });
            // Indices past the end of x / out are skipped; more rows than GEMV handles take the GEMM path.
            const many = Array.from({ length: 9 }, (_, i) => (i * 5) % 11);
            await runCase(ctx, {
              ...base,
              ...{ seed: 14, xRows: 11, outRows: 12, inRows: [...many.slice(0, 8), 99], scatter: [...many, 50] },
            });
          });
        }
      }
    }

    it('leaves unlisted rows bit-identical', async () => {
      const act = ctx.act;
      const rng = new Rng(21);
      const w = await uploadMatrix(ctx, 'W', 'q4', 64, 32, rng.floats(64 * 32));
      const x = await uploadAct(ctx, 'x', rng.floats(5 * 32), [5, 32], act);
      const init = rng.floats(6 * 64);
      const out = await uploadAct(ctx, 'out', init, [6, 64], act);
      const before = await readAct(ctx, out);
      const outRows = await uploadU32(ctx, 'rows', new Uint32Array([4, 1]));
      for (const variant of VARIANTS) await linear(ctx, x, w, out, { outRows, accumulate: true, variant });
      const after = await readAct(ctx, out);
      for (const row of [0, 2, 3, 5]) {
        expect(after.subarray(row * 64, row * 64 + 64)).toEqual(before.subarray(row * 64, row * 64 + 64));
      }
      expect(after.subarray(64, 128)).not.toEqual(before.subarray(64, 128));
    });
  });

  describe('weights split into row blocks', () => {
    for (const variant of VARIANTS) {
      for (const format of FORMATS) {
        it(`${variant} ${format}: 5 parts equal one matrix`, async () => {
          const k = 257;
          const maxPartBytes = dataRowBytes(format, k) * 70; // 300 rows → 70, 70, 70, 70, 20
          for (const m of [1, 7]) {
            await runCase(ctx, {
              ...{ m, n: 300, k, format, act: ctx.act, variant, seed: 31 + m, maxPartBytes, expectParts: 5 },
              ...{ bias: true, accumulate: m === 7 },
            });
          }
        });
      }
    }

    it('a real matrix over 128 MiB (f32 17000×2048, M = 1) gives the same result', async () => {
      const n = 17000;
      const k = 2048;
      const bytes = n * k * 4;
      expect(bytes).toBeGreaterThan(128 * 2 ** 20);
      const rng = new Rng(41);
      const wv = new Float32Array(n * k);
      for (let i = 0; i < wv.length; i++) wv[i] = rng.next() - 0.5;
      const w = await uploadMatrix(ctx, 'W-big', 'f32', n, k, wv);
      // lavapipe binds at most 128 MiB, so it must split; SwiftShader binds 1 GiB and keeps one part.
      if (ctx.maxBinding < bytes) expect(w.parts.length).toBeGreaterThan(1);
      const xv = rng.floats(k);
      const x = await uploadAct(ctx, 'x', xv, [1, k], 'f32');
      const out = await createAct(ctx, 'out', [1, n], 'f32');
      await linear(ctx, x, w, out);
      const got = await readAct(ctx, out);
      destroyMatrix(w);
      const want = linearRef(xv, 1, k, wv, n);
      expectClose(got, want, tolerance('f32', k), `f32 ${n}×${k} in ${w.parts.length} parts`);
      x.destroy();
      out.destroy();
    });
  });

  describe('errors', () => {
    it('rejects mismatched shapes with ShapeError before dispatching', async () => {
      const rng = new Rng(51);
      const w = await uploadMatrix(ctx, 'W', 'f32', 8, 16, rng.floats(8 * 16));
      const act = ctx.act;
      const x = await createAct(ctx, 'x', [3, 16], act);
      const xBadK = await createAct(ctx, 'xk', [3, 15], act);
      const outBadN = await createAct(ctx, 'on', [3, 9], act);
      const outBadM = await createAct(ctx, 'om', [2, 8], act);
      const out = await createAct(ctx, 'o', [3, 8], act);
      const other = await createAct(ctx, 'o32', [3, 8], act === 'f16' ? 'f32' : 'f16');
      const bias = new Tensor(await ctx.upload('b', new Float32Array(7)), 'f32', [7]);
      await expect(linear(ctx, xBadK, w, out)).rejects.toBeInstanceOf(ShapeError);
      await expect(linear(ctx, x, w, outBadN)).rejects.toBeInstanceOf(ShapeError);
      await expect(linear(ctx, x, w, outBadM)).rejects.toBeInstanceOf(ShapeError);
      await expect(linear(ctx, x, w, other)).rejects.toBeInstanceOf(ShapeError);
      await expect(linear(ctx, x, w, out, { bias })).rejects.toBeInstanceOf(ShapeError);
      await expect(linear(ctx, x, w, out, { rows: 4 })).rejects.toBeInstanceOf(ShapeError);
      const idx = await uploadU32(ctx, 'idx', new Uint32Array([0, 1]));
      await expect(linear(ctx, x, w, out, { inRows: idx, rows: 3 })).rejects.toBeInstanceOf(ShapeError);
    });

    it.runIf(!ctx.hasF16)('f16 activations without shader-f16 give FeatureUnavailableError', async () => {
      const w = await uploadMatrix(ctx, 'W', 'f32', 4, 8, new Float32Array(32));
      const x = await createAct(ctx, 'x', [1, 8], 'f16');
      const out = await createAct(ctx, 'o', [1, 4], 'f16');
      await expect(linear(ctx, x, w, out)).rejects.toBeInstanceOf(FeatureUnavailableError);
    });
  });
});

describe('packQ4', () => {
  it('round-trips within half a step of each group scale', () => {
    const rng = new Rng(61);
    const rows = 5;
    const k = 100; // 4 groups, the last one partial
    const v = rng.floats(rows * k, -3, 3);
    v[7] = 0; // exact zeros and a group that is all zeros
    for (let i = 64; i < 96; i++) v[2 * k + i] = 0;
    const p = packQ4(v, rows, k);
    const deq = decodeQ4(p.qweight, p.scales, rows, k);
    const halves = new Uint16Array(p.scales.buffer);
    const hpr = 2 * q4Dims(k).scaleWordsPerRow;
    let worst = 0;
    for (let r = 0; r < rows; r++) {
      for (let i = 0; i < k; i++) {
        const s = halfToNumber(halves[r * hpr + (i >> 5)]);
        const err = Math.abs(deq[r * k + i] - v[r * k + i]);
        expect(err).toBeLessThanOrEqual(s / 2 + 1e-7 * s); // s = 0 (all-zero group) demands an exact 0
        if (s > 0) worst = Math.max(worst, err / s);
      }
    }
    expect(worst).toBeGreaterThan(0.3); // a real quantizer, not a copy
  });

  it('packs a hand-made row exactly', () => {
    // k = 40: group 0 has max |x| = 7 (scale 1.0), group 1 has max |x| = 14 (scale 2.0) and 24 padding zeros.
    const row = new Float32Array(40);
    row.set([0, 1, 2, 3, 4, 5, 6, 7, -1, -2, -3, -4, -5, -6, -7, 0, 2.4, -2.6, 0.2, -0.2, 6.6, -6.6, 1.7, -1.2]);
    row.set([14, -14, 2, 4, 6, 8, 10, 12], 32);
    const p = packQ4(row, 1, 40);
    // Nibble j of word w is element 8w+j stored as q+8; hex digits below read from element 7 down to element 0.
    expect(Array.from(p.qweight, (w) => w.toString(16).padStart(8, '0'))).toEqual([
      'fedcba98', // q 0..7
      '81234567', // q −1..−7, 0
      '7a1f885a', // 2.4→2, −2.6→−3, 0.2→0, −0.2→0, 6.6→7, −6.6→−7, 1.7→2, −1.2→−1
      '88888888', // zeros
      'edcba91f', // 14/2→7, −7, 1, 2, 3, 4, 5, 6
      '88888888', // padding past k = 40
      '88888888',
      '88888888',
    ]);
    expect(p.scales).toEqual(new Uint32Array([0x40003c00])); // group 0: 1.0 (0x3c00) low half, group 1: 2.0 high
  });
});
