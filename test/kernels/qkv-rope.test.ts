/**
 * qkvRope (shaders/rope.wgsl) against the f64 reference in test/reference/attention.ts.
 *
 * Tolerances (outputs are |y| ≤ √2 for inputs in [−1, 1]):
 *   f32: atol 3e-6 covers f32 products, the polynomial cos/sin and the angle error. Measured max abs error
 *        ≤ 6.9e-7 for every shape on lavapipe and SwiftShader alike, including every position 0..4095 at
 *        θ = 1e6, hd = 128 (6.9e-7) and positions 65472..65535 (5.7e-7): the angle comes from an exact
 *        hi/mid/lo split and cos/sin from polynomials (see rope.wgsl). A plain f32 pos·inv_freq would be off
 *        by up to ~2.4e-4 rad at 4095, and SwiftShader's builtin cos/sin by ~1.5e-4; both would fail here.
 *   f16: inputs rounded to f16 before the reference, so the tolerance only adds the final rounding to f16
 *        (half an ulp: rtol 2^-11) on top of the f32 tolerance.
 */
import { describe, expect, it } from 'vitest';
import { FeatureUnavailableError, ShapeError } from '../../src/errors.ts';
import { readAct, uploadAct } from '../../src/gpu/act-io.ts';
import type { GpuContext } from '../../src/gpu/context.ts';
import { Tensor } from '../../src/gpu/tensor.ts';
import { type QkvRopeParams, qkvRope, ROPE_MAX_POSITIONS } from '../../src/ops/qkv-rope.ts';
import { roundToF16 } from '../../src/util/f16.ts';
import { expectClose, type Tolerance } from '../helpers/compare.ts';
import { actDTypes, createTestContext } from '../helpers/gpu.ts';
import { Rng } from '../helpers/rng.ts';
import { qkvRopeReference } from '../reference/attention.ts';

const TOL_F32: Tolerance = { atol: 3e-6, rtol: 0 };
const TOL_F16: Tolerance = { atol: 3e-6, rtol: 2 ** -11 };
const SENTINEL = 7;

function tol(act: 'f16' | 'f32'): Tolerance {
  return act === 'f16' ? TOL_F16 : TOL_F32;
}

function randomActs(rng: Rng, n: number, act: 'f16' | 'f32'): Float32Array {
  const x = rng.floats(n);
  if (act === 'f16') for (let i = 0; i < n; i++) x[i] = roundToF16(x[i]);
  return x;
}

interface Case extends QkvRopeParams {
  cap: number;
}

/** Runs qkvRope and checks q, both caches (written rows against the reference, other rows untouched). */
async function checkCase(ctx: GpuContext, act: 'f16' | 'f32', c: Case, seed: number): Promise<number> {
  const { T, nQ, nKV, hd, cap, pos0 } = c;
  const rng = new Rng(seed);
  const qkvData = randomActs(rng, T * (nQ + 2 * nKV) * hd, act);
  const qkv = await uploadAct(ctx, 'qkv', qkvData, [T, (nQ + 2 * nKV) * hd], act);
  const q = await uploadAct(ctx, 'q', new Float32Array(T * nQ * hd).fill(SENTINEL), [T, nQ * hd], act);
  const fill = new Float32Array(nKV * cap * hd).fill(SENTINEL);
  const kCache = await uploadAct(ctx, 'k-cache', fill, [nKV, cap, hd], act);
  const vCache = await uploadAct(ctx, 'v-cache', fill, [nKV, cap, hd], act);
  await qkvRope(ctx, qkv, q, kCache, vCache, c);
  const [qOut, kOut, vOut] = [await readAct(ctx, q), await readAct(ctx, kCache), await readAct(ctx, vCache)];

  const ref = qkvRopeReference(qkvData, c);
  const label = `${act} T=${T} nQ=${nQ} nKV=${nKV} hd=${hd} pos0=${pos0}`;
  let maxAbs = expectClose(qOut, ref.q, tol(act), `q ${label}`).maxAbs;
  // Expected caches: sentinel everywhere except rows pos0..pos0+T−1 of each head.
  const kWant = new Float64Array(fill);
  const vWant = new Float64Array(fill);
  for (let h = 0; h < nKV; h++) {
    for (let t = 0; t < T; t++) {
      for (let d = 0; d < hd; d++) {
        kWant[(h * cap + pos0 + t) * hd + d] = ref.k[(t * nKV + h) * hd + d];
        vWant[(h * cap + pos0 + t) * hd + d] = ref.v[(t * nKV + h) * hd + d];
      }
    }
  }
  maxAbs = Math.max(maxAbs, expectClose(kOut, kWant, tol(act), `k cache ${label}`).maxAbs);
  // v is a copy: exact.
  expectClose(vOut, vWant, { atol: 0, rtol: 0 }, `v cache ${label}`);
  for (const t of [qkv, q, kCache, vCache]) t.destroy();
  return maxAbs;
}

describe('qkvRope', async () => {
  const ctx = await createTestContext();
  const cases: Case[] = [
    { T: 1, nQ: 4, nKV: 2, hd: 16, theta: 1e6, pos0: 0, cap: 4 }, // tiny fixture's decoder
    { T: 7, nQ: 4, nKV: 4, hd: 16, theta: 1e6, pos0: 5, cap: 16 }, // GQA ratio 1
    { T: 257, nQ: 4, nKV: 1, hd: 8, theta: 1e4, pos0: 3, cap: 300 }, // ratio 4, hd 8
    { T: 33, nQ: 8, nKV: 2, hd: 64, theta: 1e6, pos0: 1000, cap: 1040 },
    { T: 5, nQ: 16, nKV: 8, hd: 128, theta: 1e6, pos0: 4091, cap: 4096 }, // TroL-1.8B, last positions of 4096
    { T: 3, nQ: 2, nKV: 1, hd: 4, theta: 10, pos0: 1, cap: 4 }, // smallest hd
  ];
  for (const act of actDTypes(ctx)) {
    for (const [n, c] of cases.entries()) {
      it(`${act}: T=${c.T} nQ=${c.nQ} nKV=${c.nKV} hd=${c.hd} pos0=${c.pos0}`, async () => {
        await checkCase(ctx, act, c, 100 + n);
      });
    }
  }

  it('f32: angle precision at positions up to 4095 (hd = 128) and 65535 (hd = 16), θ = 1e6', async () => {
    // Every position 0..4095 of one head pair, then the top of the supported range (small hd to keep the
    // 2^16-row cache small; pair 0 has the largest angle for any hd).
    const a = await checkCase(ctx, 'f32', { T: 4096, nQ: 1, nKV: 1, hd: 128, theta: 1e6, pos0: 0, cap: 4096 }, 7);
    const b = await checkCase(
      ctx,
      'f32',
      { T: 64, nQ: 1, nKV: 1, hd: 16, theta: 1e6, pos0: ROPE_MAX_POSITIONS - 64, cap: ROPE_MAX_POSITIONS },
      8,
    );
    // Far inside the tolerance: the angle is exact up to f32 cos/sin, not just "within 1e-5".
    expect(a).toBeLessThan(2e-6);
    expect(b).toBeLessThan(2e-6);
  });

  describe('rejects bad shapes with ShapeError', async () => {
    const act = ctx.act;
    const make = (shape: number[], dtype: 'f16' | 'f32' = act) =>
      uploadAct(ctx, 'bad', new Float32Array(shape.reduce((x, y) => x * y, 1)), shape, dtype);
    const ok = { T: 2, nQ: 4, nKV: 2, hd: 16, theta: 1e6, pos0: 0 };
    const qkv = await make([2, 8 * 16]);
    const q = await make([2, 4 * 16]);
    const kc = await make([2, 8, 16]);
    const vc = await make([2, 8, 16]);
    const bad: [string, () => Promise<void>][] = [
      ['hd not a multiple of 4', () => qkvRope(ctx, qkv, q, kc, vc, { ...ok, hd: 6 })],
      ['hd above 128', async () => qkvRope(ctx, await make([2, 8 * 132]), q, kc, vc, { ...ok, hd: 132 })],
      ['nQ not a multiple of nKV', () => qkvRope(ctx, qkv, q, kc, vc, { ...ok, nQ: 3 })],
      ['qkv width', async () => qkvRope(ctx, await make([2, 7 * 16]), q, kc, vc, ok)],
      ['too few qkv rows', () => qkvRope(ctx, qkv, q, kc, vc, { ...ok, T: 3 })],
      ['q width', async () => qkvRope(ctx, qkv, await make([2, 3 * 16]), kc, vc, ok)],
      ['cache heads', async () => qkvRope(ctx, qkv, q, await make([1, 8, 16]), vc, ok)],
      ['positions past the cache', () => qkvRope(ctx, qkv, q, kc, vc, { ...ok, pos0: 7 })],
      ['negative pos0', () => qkvRope(ctx, qkv, q, kc, vc, { ...ok, pos0: -1 })],
      ['q aliases qkv', () => qkvRope(ctx, qkv, new Tensor(qkv.buffer, act, [2, 64]), kc, vc, ok)],
      ['k and v caches alias', () => qkvRope(ctx, qkv, q, kc, kc, ok)],
      ['θ ≤ 1', () => qkvRope(ctx, qkv, q, kc, vc, { ...ok, theta: 1 })],
      [
        'positions ≥ 2^16',
        async () =>
          qkvRope(
            ctx,
            qkv,
            q,
            await make([2, ROPE_MAX_POSITIONS + 4, 16]),
            await make([2, ROPE_MAX_POSITIONS + 4, 16]),
            {
              ...ok,
              pos0: ROPE_MAX_POSITIONS - 1,
            },
          ),
      ],
    ];
    bad.push([
      'dtype mismatch',
      async () => qkvRope(ctx, qkv, await make([2, 64], act === 'f16' ? 'f32' : 'f16'), kc, vc, ok),
    ]);
    for (const [name, run] of bad) {
      it(name, async () => {
        await expect(run()).rejects.toBeInstanceOf(ShapeError);
      });
    }
    it.skipIf(ctx.hasF16)('f16 tensors without shader-f16 give FeatureUnavailableError', async () => {
      const h = (shape: number[]) => make(shape, 'f16');
      await expect(
        qkvRope(ctx, await h([2, 128]), await h([2, 64]), await h([2, 8, 16]), await h([2, 8, 16]), ok),
      ).rejects.toBeInstanceOf(FeatureUnavailableError);
    });
  });
});
