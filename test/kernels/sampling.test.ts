import { describe, expect, it } from 'vitest';
import { ArgumentError, ShapeError } from '../../src/errors.ts';
import { Tensor } from '../../src/gpu/tensor.ts';
import { applyRepetitionPenalty, argmax, topK } from '../../src/ops/sampling.ts';
import { expectClose } from '../helpers/compare.ts';
import { createTestContext, readF32 } from '../helpers/gpu.ts';
import { Rng } from '../helpers/rng.ts';
import * as ref from '../reference/sampling.ts';

describe('sampling reductions', async () => {
  const ctx = await createTestContext();
  const f32 = async (v: Float32Array) => new Tensor(await ctx.upload('logits', v), 'f32', [v.length]);
  const u32 = async (v: Uint32Array) => new Tensor(await ctx.upload('u32', v), 'u32', [v.length]);
  const readU32 = async (t: Tensor) => Array.from(new Uint32Array(await ctx.read(t.buffer, 0, t.numel * 4)));

  /** Random logits; `quantum` > 0 rounds them to a grid so many values tie. */
  function logitsFor(V: number, seed: number, quantum = 0): Float32Array {
    const rng = new Rng(seed);
    const v = new Float32Array(V).map(() => rng.normal() * 4);
    return quantum > 0 ? v.map((x) => Math.round(x / quantum) * quantum) : v;
  }

  async function gpuArgmax(v: Float32Array): Promise<number> {
    const logits = await f32(v);
    const out = await u32(new Uint32Array([0xdeadbeef]));
    await argmax(ctx, logits, out);
    const [got] = await readU32(out);
    logits.destroy();
    out.destroy();
    return got;
  }

  describe('argmax', () => {
    for (const V of [1, 7, 257, 4096, 4097, 92545]) {
      it(`V = ${V}: random, then ties across workgroups, then NaN and −inf`, async () => {
        const v = logitsFor(V, V);
        expect(await gpuArgmax(v)).toBe(ref.argmax(v));
        // The maximum repeated at indices in different 4096-element workgroups: the first must win.
        const tie = v.slice();
        for (const i of [V - 1, Math.floor(V / 2), Math.floor(V / 3)]) tie[i] = 100;
        expect(await gpuArgmax(tie)).toBe(ref.argmax(tie));
        // NaN at index 0 and scattered; −inf too: NaN must never win over a number.
        const nan = tie.slice();
        for (let i = 0; i < V; i += 97) nan[i] = Number.NaN;
        if (V > 3) nan[3] = Number.NEGATIVE_INFINITY;
        nan[Math.floor(V / 3)] = Number.NaN; // one of the tied maxima
        expect(await gpuArgmax(nan)).toBe(ref.argmax(nan));
      });
    }
    it('all NaN → 0; all −inf → 0; −0 and +0 tie (first wins)', async () => {
      expect(await gpuArgmax(new Float32Array(5000).fill(Number.NaN))).toBe(0);
      expect(await gpuArgmax(new Float32Array(5000).fill(Number.NEGATIVE_INFINITY))).toBe(0);
      const z = new Float32Array(9000).fill(-1);
      z[4200] = 0;
      z[4100] = -0;
      z[8000] = Number.NaN;
      expect(await gpuArgmax(z)).toBe(4100);
      const onlyNumber = new Float32Array(9000).fill(Number.NaN);
      onlyNumber[8999] = Number.NEGATIVE_INFINITY;
      expect(await gpuArgmax(onlyNumber)).toBe(8999);
    });
  });

  describe('topK', () => {
    const canon = (xs: number[]) => xs.map((x) => (x === 0 ? 0 : x)); // −0 reads back as +0
    async function check(v: Float32Array, k: number, label: string) {
      const logits = await f32(v);
      const values = new Tensor(await ctx.upload('values', new Float32Array(k).fill(7)), 'f32', [k]);
      const indices = await u32(new Uint32Array(k).fill(0xdeadbeef));
      await topK(ctx, logits, k, values, indices);
      const want = ref.topK(v, k);
      const gotIdx = await readU32(indices);
      expect(gotIdx, `${label} indices`).toEqual(want.indices);
      expect(canon(Array.from(await readF32(ctx, values.buffer, k))), `${label} values`).toEqual(
        canon(want.values.map((x) => Math.fround(x))),
      );
      for (const t of [logits, values, indices]) t.destroy();
    }
    for (const V of [7, 257, 1024, 1025, 92545]) {
      for (const k of [1, 7, 40, 256]) {
        if (k > V) continue;
        it(`V = ${V}, k = ${k}: distinct values, heavy ties, NaN/−inf`, async () => {
          await check(logitsFor(V, V + k), k, 'distinct');
          // Quantised to 1/8: many exact ties, which must come out lowest index first.
          await check(logitsFor(V, V * 3 + k, 0.125), k, 'ties');
          const special = logitsFor(V, V * 5 + k, 0.5);
          for (let i = 0; i < V; i += 13) special[i] = Number.NaN;
          for (let i = 5; i < V; i += 17) special[i] = Number.NEGATIVE_INFINITY;
          await check(special, k, 'nan');
        });
      }
    }
    it('k = V returns the whole row sorted, NaN last', async () => {
      const v = logitsFor(257, 11, 0.25);
      v[3] = Number.NaN;
      v[100] = Number.NEGATIVE_INFINITY;
      v[200] = Number.POSITIVE_INFINITY;
      await check(v.subarray(0, 256), 256, 'k=V');
    });
    it('rejects bad k and shapes', async () => {
      const logits = await f32(new Float32Array(10));
      const values = new Tensor(await ctx.upload('values', new Float32Array(8)), 'f32', [8]);
      const indices = await u32(new Uint32Array(8));
      await expect(topK(ctx, logits, 11, values, indices)).rejects.toBeInstanceOf(ShapeError);
      await expect(topK(ctx, logits, 7, values, indices)).rejects.toBeInstanceOf(ShapeError);
      await expect(topK(ctx, logits, 0, values, indices)).rejects.toBeInstanceOf(ArgumentError);
      await expect(topK(ctx, logits, 257, values, indices)).rejects.toBeInstanceOf(ArgumentError);
      const big = await f32(new Float32Array(300));
      const v257 = new Tensor(await ctx.upload('v', new Float32Array(257)), 'f32', [257]);
      const i257 = await u32(new Uint32Array(257));
      await expect(topK(ctx, big, 257, v257, i257)).rejects.toBeInstanceOf(ArgumentError);
      const ints = await u32(new Uint32Array(10));
      await expect(topK(ctx, ints, 8, values, indices)).rejects.toBeInstanceOf(ShapeError);
    });
  });

  describe('applyRepetitionPenalty', () => {
    for (const [V, n, penalty] of [
      [7, 5, 1.3],
      [257, 40, 0.7],
      [92545, 1500, 1.2],
    ] as const) {
      it(`V = ${V}, n = ${n}, penalty ${penalty}: duplicates count once, ids ≥ V skipped`, async () => {
        const rng = new Rng(V + n);
        const v = logitsFor(V, V);
        v[0] = 0;
        const ids = new Uint32Array(n + 10);
        for (let i = 0; i < ids.length; i++) ids[i] = rng.int(0, Math.min(V, 50)); // many duplicates
        ids[1] = ids[0];
        ids[2] = V; // out of range
        ids[3] = 0xffffffff;
        ids[n + 1] = V - 1; // past n: must be ignored
        const logits = await f32(v);
        const idT = await u32(ids);
        await applyRepetitionPenalty(ctx, logits, idT, n, penalty);
        // One f32 division or product (WGSL allows 2.5 ulp for x/y): 4e-7 relative.
        const got = await readF32(ctx, logits.buffer, V);
        expectClose(got, ref.repetitionPenalty(v, ids, n, penalty), { atol: 0, rtol: 4e-7 }, `penalty V=${V}`);
        logits.destroy();
        idT.destroy();
      });
    }
    it('rejects bad arguments', async () => {
      const logits = await f32(new Float32Array(10));
      const ids = await u32(new Uint32Array(4));
      await expect(applyRepetitionPenalty(ctx, logits, ids, 5, 1.1)).rejects.toBeInstanceOf(ShapeError);
      await expect(applyRepetitionPenalty(ctx, logits, ids, 4, 0)).rejects.toBeInstanceOf(ArgumentError);
      await expect(applyRepetitionPenalty(ctx, logits, ids, 4, Number.NaN)).rejects.toBeInstanceOf(ArgumentError);
      const fIds = await f32(new Float32Array(4));
      await expect(applyRepetitionPenalty(ctx, logits, fIds, 4, 1.1)).rejects.toBeInstanceOf(ShapeError);
    });
  });
});
