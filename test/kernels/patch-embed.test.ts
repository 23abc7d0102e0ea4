import { describe, expect, it } from 'vitest';
import { ShapeError } from '../../src/errors.ts';
import { createAct, readAct, uploadAct } from '../../src/gpu/act-io.ts';
import { Tensor } from '../../src/gpu/tensor.ts';
import { im2colPatches, visionEmbed } from '../../src/ops/patch-embed.ts';
import { roundToF16 } from '../../src/util/f16.ts';
import { expectClose, type Tolerance } from '../helpers/compare.ts';
import { actDTypes, createTestContext } from '../helpers/gpu.ts';
import { Rng } from '../helpers/rng.ts';
import * as ref from '../reference/patch-embed.ts';

// im2col is a copy: exact in f32; f16 output is one f32→f16 conversion (either neighbour: 2^-10 relative).
const COPY_F32: Tolerance = { atol: 0, rtol: 0 };
const COPY_F16: Tolerance = { atol: 3e-8, rtol: 2 ** -10 };
// visionEmbed is one f32 add: half an f32 ulp of the result (6e-8) — with margin; f16 adds one output rounding.
const ADD_F32: Tolerance = { atol: 1e-7, rtol: 2e-7 };
const ADD_F16: Tolerance = { atol: 3e-8, rtol: 2 ** -10 };

describe('patch embedding', async () => {
  const ctx = await createTestContext();
  const f32 = async (label: string, v: Float32Array, shape: number[]) =>
    new Tensor(await ctx.upload(label, v), 'f32', shape);

  const CASES = [
    { C: 3, S: 28, patch: 14 },
    { C: 3, S: 70, patch: 14 },
    { C: 1, S: 7, patch: 1 },
    { C: 2, S: 12, patch: 4 },
    { C: 3, S: 7, patch: 7 },
  ];
  for (const dtype of actDTypes(ctx)) {
    it(`im2col [${dtype}] matches the reference and makes linear(patches, W) the convolution`, async () => {
      for (const { C, S, patch } of CASES) {
        const rng = new Rng(C * 1000 + S * 10 + patch);
        const pv = rng.floats(C * S * S, -2, 2);
        const G = S / patch;
        const cols = C * patch * patch;
        const pixels = await f32('pixels', pv, [C, S, S]);
        const out = await createAct(ctx, 'patches', [G * G, cols], dtype);
        await im2colPatches(ctx, pixels, out, { C, S, patch });
        const got = await readAct(ctx, out);
        const label = `im2col ${dtype} C${C} S${S} p${patch}`;
        expectClose(got, ref.im2col(pv, C, S, patch), dtype === 'f16' ? COPY_F16 : COPY_F32, label);
        if (dtype === 'f32') {
          // The column order is the conv weight's: patches · Wᵀ (W = [D, C, p, p] flattened) equals the conv.
          const D = 5;
          const wv = rng.floats(D * cols);
          const viaGemm = new Float64Array(G * G * D);
          for (let r = 0; r < G * G; r++) {
            for (let o = 0; o < D; o++) {
              let acc = 0;
              for (let k = 0; k < cols; k++) acc += got[r * cols + k] * wv[o * cols + k];
              viaGemm[r * D + o] = acc;
            }
          }
          expectClose(
            viaGemm,
            ref.conv2dPatches(pv, wv, C, S, patch, D),
            { atol: 1e-12, rtol: 1e-12 },
            `${label} conv`,
          );
        }
        pixels.destroy();
        out.destroy();
      }
    });

    it(`visionEmbed [${dtype}] over P ∈ {1, 7, 257} × D ∈ {1, 7, 64, 257, 1024}`, async () => {
      for (const P of [1, 7, 257]) {
        for (const D of [1, 7, 64, 257, 1024]) {
          const rng = new Rng(P * 7 + D);
          const ev = rng.floats(P * D, -3, 3).map(dtype === 'f16' ? roundToF16 : (v) => v);
          const cv = rng.floats(D);
          const posv = rng.floats((P + 1) * D);
          const emb = await uploadAct(ctx, 'emb', ev, [P, D], dtype);
          const cls = await f32('cls', cv, [D]);
          const pos = await f32('pos', posv, [P + 1, D]);
          const out = await createAct(ctx, 'out', [P + 1, D], dtype);
          await visionEmbed(ctx, emb, cls, pos, out);
          const tol = dtype === 'f16' ? ADD_F16 : ADD_F32;
          expectClose(
            await readAct(ctx, out),
            ref.visionEmbed(ev, cv, posv, P, D),
            tol,
            `visionEmbed ${dtype} [${P},${D}]`,
          );
          for (const t of [emb, cls, pos, out]) t.destroy();
        }
      }
    });
  }

  it('im2col at the real CLIP-L/14 @490 size (3×490×490 → 1225×588)', async () => {
    const C = 3;
    const S = 490;
    const patch = 14;
    const rng = new Rng(490);
    const pv = rng.floats(C * S * S, -2, 2);
    const pixels = await f32('pixels', pv, [C, S, S]);
    const out = await createAct(ctx, 'patches', [1225, 588], 'f32');
    await im2colPatches(ctx, pixels, out, { C, S, patch });
    expectClose(await readAct(ctx, out), ref.im2col(pv, C, S, patch), COPY_F32, 'im2col 490');
  });

  it('rejects bad shapes with ShapeError', async () => {
    const pixels = await f32('pixels', new Float32Array(3 * 28 * 28), [3, 28, 28]);
    const out = await createAct(ctx, 'patches', [4, 588], 'f32');
    await expect(im2colPatches(ctx, pixels, out, { C: 3, S: 28, patch: 5 })).rejects.toBeInstanceOf(ShapeError);
    await expect(im2colPatches(ctx, pixels, out, { C: 3, S: 27, patch: 9 })).rejects.toBeInstanceOf(ShapeError);
    const wrongOut = await createAct(ctx, 'patches', [4, 587], 'f32');
    await expect(im2colPatches(ctx, pixels, wrongOut, { C: 3, S: 28, patch: 14 })).rejects.toBeInstanceOf(ShapeError);
    const emb = await createAct(ctx, 'emb', [4, 8], 'f32');
    const cls = await f32('cls', new Float32Array(8), [8]);
    const pos = await f32('pos', new Float32Array(5 * 8), [5, 8]);
    const posBad = await f32('pos', new Float32Array(4 * 8), [4, 8]);
    await expect(visionEmbed(ctx, emb, cls, posBad, await createAct(ctx, 'o', [5, 8], 'f32'))).rejects.toBeInstanceOf(
      ShapeError,
    );
    await expect(visionEmbed(ctx, emb, cls, pos, await createAct(ctx, 'o', [4, 8], 'f32'))).rejects.toBeInstanceOf(
      ShapeError,
    );
  });
});
