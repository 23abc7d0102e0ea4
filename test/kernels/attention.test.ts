/**
 * attention / attentionBidirectional (shaders/attention.wgsl) against the f64 references in
 * test/reference/attention.ts.
 *
 * Data: q ∈ [−3, 3] (so the softmax is far from uniform), k, v ∈ [−1, 1]; cache rows past the context are
 * NaN, so a kernel that reads one fails. f16 inputs are rounded to f16 before the reference.
 * Tolerances (outputs are convex combinations of v, |out| ≤ 1):
 *   f32: atol 2e-6 — f32 dot products, exp2 and the online-softmax rescaling. Measured max abs error on
 *        lavapipe and SwiftShader: ≤ 2.6e-7 for the attention cases, 5.6e-7 for the multi-turn chain (whose
 *        reference rounds the roped q/k to f32 as stored; RoPE's own error is on top).
 *   f16: the f32 tolerance plus the final rounding of the output to f16 (half an ulp: rtol 2^-11); measured
 *        max abs 4.9e-4 at |out| ≈ 1.
 */
import { describe, expect, it } from 'vitest';
import { FeatureUnavailableError, ShapeError } from '../../src/errors.ts';
import { readAct, uploadAct } from '../../src/gpu/act-io.ts';
import type { GpuContext } from '../../src/gpu/context.ts';
import { Tensor } from '../../src/gpu/tensor.ts';
import { type AttentionTuning, attention, attentionBidirectional } from '../../src/ops/attention.ts';
import { qkvRope } from '../../src/ops/qkv-rope.ts';
import { roundToF16 } from '../../src/util/f16.ts';
import { expectClose, type Tolerance } from '../helpers/compare.ts';
import { actDTypes, createTestContext } from '../helpers/gpu.ts';
import { Rng } from '../helpers/rng.ts';
import { bidirectionalAttentionReference, causalAttentionReference, qkvRopeReference } from '../reference/attention.ts';

const TOL_F32: Tolerance = { atol: 2e-6, rtol: 0 };
const TOL_F16: Tolerance = { atol: 2e-6, rtol: 2 ** -11 };
type Act = 'f16' | 'f32';

function tol(act: Act): Tolerance {
  return act === 'f16' ? TOL_F16 : TOL_F32;
}

function randomActs(rng: Rng, n: number, act: Act, amp = 1): Float32Array {
  const x = rng.floats(n, -amp, amp);
  if (act === 'f16') for (let i = 0; i < n; i++) x[i] = roundToF16(x[i]);
  return x;
}

/** Token-major [L, nKV·hd] → cache layout [nKV, cap, hd], rows ≥ L set to NaN. */
function toCache(x: Float32Array, L: number, nKV: number, hd: number, cap: number): Float32Array {
  const c = new Float32Array(nKV * cap * hd).fill(Number.NaN);
  for (let s = 0; s < L; s++) {
    for (let h = 0; h < nKV; h++) {
      for (let d = 0; d < hd; d++) c[(h * cap + s) * hd + d] = x[(s * nKV + h) * hd + d];
    }
  }
  return c;
}

interface CausalCase {
  T: number;
  past: number;
  nQ: number;
  nKV: number;
  hd: number;
  /** Cache capacity; default past + T + 3. */
  cap?: number;
  scale?: number;
  tuning?: AttentionTuning;
}

async function checkCausal(ctx: GpuContext, act: Act, c: CausalCase, seed: number): Promise<void> {
  const { T, past, nQ, nKV, hd } = c;
  const L = past + T;
  const cap = c.cap ?? L + 3;
  const rng = new Rng(seed);
  const qData = randomActs(rng, T * nQ * hd, act, 3);
  const kData = randomActs(rng, L * nKV * hd, act);
  const vData = randomActs(rng, L * nKV * hd, act);
  const q = await uploadAct(ctx, 'q', qData, [T, nQ * hd], act);
  const kCache = await uploadAct(ctx, 'k-cache', toCache(kData, L, nKV, hd, cap), [nKV, cap, hd], act);
  const vCache = await uploadAct(ctx, 'v-cache', toCache(vData, L, nKV, hd, cap), [nKV, cap, hd], act);
  const out = await uploadAct(ctx, 'out', new Float32Array(T * nQ * hd).fill(Number.NaN), [T, nQ * hd], act);
  await attention(ctx, q, kCache, vCache, out, { T, past, nQ, nKV, hd, scale: c.scale }, c.tuning);
  const got = await readAct(ctx, out);
  const want = causalAttentionReference(qData, kData, vData, { T, past, nQ, nKV, hd, scale: c.scale });
  const tuning = c.tuning ? ` ${JSON.stringify(c.tuning)}` : '';
  expectClose(got, want, tol(act), `attention ${act} T=${T} past=${past} nQ=${nQ} nKV=${nKV} hd=${hd}${tuning}`);
  for (const t of [q, kCache, vCache, out]) t.destroy();
}

describe('attention (causal GQA over the KV cache)', async () => {
  const ctx = await createTestContext();

  const prefill: CausalCase[] = [
    { T: 7, past: 0, nQ: 4, nKV: 2, hd: 16 }, // tiny fixture's decoder
    { T: 257, past: 0, nQ: 8, nKV: 2, hd: 16 }, // GQA ratio 4
    { T: 300, past: 0, nQ: 4, nKV: 4, hd: 64 }, // ratio 1
    { T: 65, past: 0, nQ: 16, nKV: 8, hd: 128, cap: 80 }, // TroL-1.8B heads
    { T: 2, past: 0, nQ: 2, nKV: 1, hd: 4, scale: 0.7 }, // smallest hd, explicit scale
    // multi-turn: a second chunk attending to an existing cache
    { T: 7, past: 257, nQ: 4, nKV: 2, hd: 16 },
    { T: 33, past: 100, nQ: 8, nKV: 2, hd: 64 },
    { T: 3, past: 1000, nQ: 16, nKV: 8, hd: 128 },
    { T: 40, past: 1, nQ: 6, nKV: 2, hd: 12 }, // ratio 3: 21 tokens × 3 heads per workgroup, one idle row
    // tile-size variants
    { T: 37, past: 5, nQ: 4, nKV: 2, hd: 16, tuning: { tileKeys: 1 } },
    { T: 37, past: 5, nQ: 4, nKV: 1, hd: 128, tuning: { tileKeys: 16 } }, // 16 KiB of tiles: the maximum
    // the GPU variant (constant loop bounds), small hd: it is slow to compile on CPU drivers
    { T: 37, past: 5, nQ: 4, nKV: 2, hd: 16, tuning: { dynamicLoops: false } },
  ];
  const decode: CausalCase[] = [];
  for (const past of [0, 1, 7, 257, 1000]) {
    decode.push({ T: 1, past, nQ: 4, nKV: 2, hd: 16 });
    decode.push({ T: 1, past, nQ: 8, nKV: 2, hd: 64 });
    decode.push({ T: 1, past, nQ: 16, nKV: 8, hd: 128 });
  }
  // GQA ratio 1 and 8, many chunks, and odd chunk sizes.
  decode.push({ T: 1, past: 300, nQ: 4, nKV: 4, hd: 32 });
  decode.push({ T: 1, past: 300, nQ: 8, nKV: 1, hd: 32 });
  decode.push({ T: 1, past: 260, nQ: 6, nKV: 2, hd: 12 });
  decode.push({ T: 1, past: 1000, nQ: 4, nKV: 2, hd: 16, tuning: { decodeChunk: 32 } });
  decode.push({ T: 1, past: 70, nQ: 16, nKV: 8, hd: 128, tuning: { decodeChunk: 12 } });
  decode.push({ T: 1, past: 7, nQ: 4, nKV: 2, hd: 16, tuning: { dynamicLoops: false } });
  decode.push({ T: 1, past: 300, nQ: 4, nKV: 2, hd: 16, tuning: { dynamicLoops: false, decodeChunk: 64 } });

  for (const act of actDTypes(ctx)) {
    for (const [n, c] of prefill.entries()) {
      const tuning = c.tuning ? ` ${JSON.stringify(c.tuning)}` : '';
      it(`${act} prefill: T=${c.T} past=${c.past} nQ=${c.nQ} nKV=${c.nKV} hd=${c.hd}${tuning}`, async () => {
        await checkCausal(ctx, act, c, 1000 + n);
      });
    }
    for (const [n, c] of decode.entries()) {
      const tuning = c.tuning ? ` ${JSON.stringify(c.tuning)}` : '';
      it(`${act} decode: past=${c.past} nQ=${c.nQ} nKV=${c.nKV} hd=${c.hd}${tuning}`, async () => {
        await checkCausal(ctx, act, c, 2000 + n);
      });
    }

    it(`${act} multi-turn through qkvRope: two chunks, then a decode step`, async () => {
      // What the decoder does: chunk 1 (prefill), chunk 2 (a follow-up turn), then one generated token.
      const nQ = 4;
      const nKV = 2;
      const hd = 16;
      const theta = 1e6;
      const chunks = [23, 9, 1];
      const cap = 40;
      const rng = new Rng(77);
      const kCache = await uploadAct(
        ctx,
        'k-cache',
        new Float32Array(nKV * cap * hd).fill(Number.NaN),
        [nKV, cap, hd],
        act,
      );
      const vCache = await uploadAct(
        ctx,
        'v-cache',
        new Float32Array(nKV * cap * hd).fill(Number.NaN),
        [nKV, cap, hd],
        act,
      );
      const kAll: number[] = [];
      const vAll: number[] = [];
      let pos0 = 0;
      for (const T of chunks) {
        const qkvData = randomActs(rng, T * (nQ + 2 * nKV) * hd, act, 2);
        const qkv = await uploadAct(ctx, 'qkv', qkvData, [T, (nQ + 2 * nKV) * hd], act);
        const q = await uploadAct(ctx, 'q', new Float32Array(T * nQ * hd), [T, nQ * hd], act);
        const out = await uploadAct(ctx, 'out', new Float32Array(T * nQ * hd), [T, nQ * hd], act);
        await qkvRope(ctx, qkv, q, kCache, vCache, { T, nQ, nKV, hd, theta, pos0 });
        await attention(ctx, q, kCache, vCache, out, { T, past: pos0, nQ, nKV, hd });
        const got = await readAct(ctx, out);
        // Reference: RoPE in f64; q and k rounded to the storage dtype as the GPU stores them.
        const r = qkvRopeReference(qkvData, { T, nQ, nKV, hd, theta, pos0 });
        const store = (x: Float64Array) => Array.from(x, (y) => (act === 'f16' ? roundToF16(y) : Math.fround(y)));
        kAll.push(...store(r.k));
        vAll.push(...store(r.v));
        const want = causalAttentionReference(store(r.q), kAll, vAll, { T, past: pos0, nQ, nKV, hd });
        expectClose(got, want, tol(act), `multi-turn ${act} chunk T=${T} at ${pos0}`);
        pos0 += T;
        for (const t of [qkv, q, out]) t.destroy();
      }
      kCache.destroy();
      vCache.destroy();
    });
  }

  describe('rejects bad shapes with ShapeError', async () => {
    const act = ctx.act;
    const other: Act = act === 'f16' ? 'f32' : 'f16';
    const make = (shape: number[], dtype: Act = act) =>
      uploadAct(ctx, 'bad', new Float32Array(shape.reduce((x, y) => x * y, 1)), shape, dtype);
    const ok = { T: 3, past: 2, nQ: 4, nKV: 2, hd: 16 };
    const q = await make([3, 64]);
    const kc = await make([2, 8, 16]);
    const vc = await make([2, 8, 16]);
    const out = await make([3, 64]);
    const bad: [string, () => Promise<void>][] = [
      ['hd not a multiple of 4', () => attention(ctx, q, kc, vc, out, { ...ok, hd: 6 })],
      [
        'hd above 128',
        async () =>
          attention(
            ctx,
            await make([3, 4 * 132]),
            await make([2, 8, 132]),
            await make([2, 8, 132]),
            await make([3, 4 * 132]),
            { ...ok, hd: 132 },
          ),
      ],
      ['nQ not a multiple of nKV', () => attention(ctx, q, kc, vc, out, { ...ok, nQ: 3 })],
      [
        'more than 8 query heads per kv head',
        async () =>
          attention(
            ctx,
            await make([3, 16 * 16]),
            await make([1, 8, 16]),
            await make([1, 8, 16]),
            await make([3, 16 * 16]),
            { ...ok, nQ: 16, nKV: 1 },
          ),
      ],
      ['past + T beyond the cache', () => attention(ctx, q, kc, vc, out, { ...ok, past: 6 })],
      ['decode past beyond the cache', () => attention(ctx, q, kc, vc, out, { ...ok, T: 1, past: 8 })],
      ['q width', async () => attention(ctx, await make([3, 48]), kc, vc, out, ok)],
      ['too few out rows', async () => attention(ctx, q, kc, vc, await make([2, 64]), ok)],
      ['cache head dim', async () => attention(ctx, q, await make([2, 8, 8]), vc, out, ok)],
      ['cache capacities differ', async () => attention(ctx, q, kc, await make([2, 9, 16]), out, ok)],
      ['T = 0', () => attention(ctx, q, kc, vc, out, { ...ok, T: 0 })],
      ['dtype mismatch', async () => attention(ctx, q, kc, vc, await make([3, 64], other), ok)],
      ['out aliases q', () => attention(ctx, q, kc, vc, new Tensor(q.buffer, act, [3, 64]), ok)],
      ['bad tile size', () => attention(ctx, q, kc, vc, out, ok, { tileKeys: 33 })],
      [
        'tiles over 16 KiB of workgroup memory',
        async () =>
          attention(
            ctx,
            await make([3, 4 * 128]),
            await make([2, 8, 128]),
            await make([2, 8, 128]),
            await make([3, 4 * 128]),
            { ...ok, hd: 128 },
            { tileKeys: 17 },
          ),
      ],
      ['bad decode chunk', () => attention(ctx, q, kc, vc, out, { ...ok, T: 1 }, { decodeChunk: 6 })],
      ['bidirectional: hd', () => attentionBidirectional(ctx, q, q, q, out, { T: 3, nH: 4, hd: 18 })],
      [
        'bidirectional: k width',
        async () => attentionBidirectional(ctx, q, await make([3, 60]), q, out, { T: 3, nH: 4, hd: 16 }),
      ],
      ['bidirectional: too few rows', () => attentionBidirectional(ctx, q, q, q, out, { T: 4, nH: 4, hd: 16 })],
      ['bidirectional: out aliases v', () => attentionBidirectional(ctx, q, q, out, out, { T: 3, nH: 4, hd: 16 })],
    ];
    for (const [name, run] of bad) {
      it(name, async () => {
        await expect(run()).rejects.toBeInstanceOf(ShapeError);
      });
    }
    it.skipIf(ctx.hasF16)('f16 tensors without shader-f16 give FeatureUnavailableError', async () => {
      const h = (shape: number[]) => make(shape, 'f16');
      await expect(
        attention(ctx, await h([3, 64]), await h([2, 8, 16]), await h([2, 8, 16]), await h([3, 64]), ok),
      ).rejects.toBeInstanceOf(FeatureUnavailableError);
    });
  });
});

describe('attentionBidirectional (CLIP vision attention)', async () => {
  const ctx = await createTestContext();
  const cases: { T: number; nH: number; hd: number; tuning?: AttentionTuning }[] = [];
  for (const T of [1, 7, 17, 257]) for (const hd of [16, 64]) cases.push({ T, nH: 2, hd });
  cases.push({ T: 70, nH: 3, hd: 128 });
  cases.push({ T: 65, nH: 16, hd: 64, tuning: { tileKeys: 5 } });
  cases.push({ T: 17, nH: 2, hd: 16, tuning: { dynamicLoops: false } });
  for (const act of actDTypes(ctx)) {
    for (const [n, c] of cases.entries()) {
      const tuning = c.tuning ? ` ${JSON.stringify(c.tuning)}` : '';
      it(`${act}: T=${c.T} nH=${c.nH} hd=${c.hd}${tuning}`, async () => {
        const { T, nH, hd } = c;
        const rng = new Rng(3000 + n);
        const [qd, kd, vd] = [
          randomActs(rng, T * nH * hd, act, 3),
          randomActs(rng, T * nH * hd, act),
          randomActs(rng, T * nH * hd, act),
        ];
        const shape = [T, nH * hd];
        const q = await uploadAct(ctx, 'q', qd, shape, act);
        const k = await uploadAct(ctx, 'k', kd, shape, act);
        const v = await uploadAct(ctx, 'v', vd, shape, act);
        const out = await uploadAct(ctx, 'out', new Float32Array(T * nH * hd).fill(Number.NaN), shape, act);
        await attentionBidirectional(ctx, q, k, v, out, { T, nH, hd }, c.tuning);
        const got = await readAct(ctx, out);
        const want = bidirectionalAttentionReference(qd, kd, vd, { T, nH, hd });
        expectClose(got, want, tol(act), `bidirectional ${act} T=${T} nH=${nH} hd=${hd}${tuning}`);
        for (const t of [q, k, v, out]) t.destroy();
      });
    }
  }
});
