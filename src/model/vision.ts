/**
 * The vision tower and projector: pixels → image-token embeddings.
 *
 *   pixels f32 [C, S, S] → im2col [P, C·p·p] → patch linear [P, Dv] → [CLS; patches] + positions [P+1, Dv]
 *   → pre_layrnorm → N pre-LN encoder layers (LN → q/k/v → bidirectional MHA → out_proj + residual;
 *   LN → fc1 → quick_gelu → fc2 + residual) → drop CLS [P, Dv] (no post-layernorm)
 *   → projector: Linear → GELU(erf) → Linear → [P, d].
 */
import { createAct, readAct, uploadAct } from '../gpu/act-io.ts';
import type { GpuContext } from '../gpu/context.ts';
import { Tensor } from '../gpu/tensor.ts';
import { attentionBidirectional } from '../ops/attention.ts';
import { gelu, quickGelu } from '../ops/elementwise.ts';
import { linear } from '../ops/linear.ts';
import { layerNorm } from '../ops/norm.ts';
import { im2colPatches, visionEmbed } from '../ops/patch-embed.ts';
import type { TrolConfig } from './config.ts';
import type { TrolWeights } from './weights.ts';

export interface VisionDebug {
  visionOut?: Float32Array;
  projOut?: Float32Array;
}

/** Runs the tower on one image; returns the projected features act [P, d] (caller destroys it). */
export async function runVision(
  ctx: GpuContext,
  cfg: TrolConfig,
  w: TrolWeights,
  pixels: Float32Array,
  debug?: VisionDebug,
): Promise<Tensor> {
  const vc = cfg.vision;
  const S = cfg.imgSize;
  const C = vc.numChannels;
  const p = vc.patchSize;
  const P = cfg.imageTokens;
  const T = P + 1;
  const Dv = vc.hiddenSize;
  const nH = vc.numHeads;
  const hd = Dv / nH;
  const temps: Tensor[] = [];
  const act = async (label: string, shape: number[]) => {
    const t = await createAct(ctx, label, shape);
    temps.push(t);
    return t;
  };
  try {
    const pix = new Tensor(await ctx.upload('vision.pixels', pixels), 'f32', [C, S, S]);
    temps.push(pix);
    const patches = await act('vision.patches', [P, C * p * p]);
    await im2colPatches(ctx, pix, patches, { C, S, patch: p });
    const pe = await act('vision.patch_emb', [P, Dv]);
    await linear(ctx, patches, w.vision.patch, pe);
    const h = await act('vision.h', [T, Dv]);
    await visionEmbed(ctx, pe, w.vision.cls, w.vision.pos, h);
    const a = await act('vision.a', [T, Dv]);
    await layerNorm(ctx, h, w.vision.preLnW, w.vision.preLnB, a, vc.layerNormEps);
    ctx.copy(a.buffer, 0, h.buffer, 0, h.byteLength);
    const qb = await act('vision.q', [T, Dv]);
    const kb = await act('vision.k', [T, Dv]);
    const vb = await act('vision.v', [T, Dv]);
    const ao = await act('vision.attn', [T, Dv]);
    const m = await act('vision.mlp', [T, vc.intermediateSize]);
    for (const L of w.vision.layers) {
      await layerNorm(ctx, h, L.ln1w, L.ln1b, a, vc.layerNormEps);
      await linear(ctx, a, L.q.w, qb, { bias: L.q.bias });
      await linear(ctx, a, L.k.w, kb, { bias: L.k.bias });
      await linear(ctx, a, L.v.w, vb, { bias: L.v.bias });
      await attentionBidirectional(ctx, qb, kb, vb, ao, { T, nH, hd });
      await linear(ctx, ao, L.o.w, h, { bias: L.o.bias, accumulate: true });
      await layerNorm(ctx, h, L.ln2w, L.ln2b, a, vc.layerNormEps);
      await linear(ctx, a, L.fc1.w, m, { bias: L.fc1.bias });
      await quickGelu(ctx, m, m);
      await linear(ctx, m, L.fc2.w, h, { bias: L.fc2.bias, accumulate: true });
      ctx.submit();
    }
    // Drop CLS: rows 1..P.
    const vout = await act('vision.out', [P, Dv]);
    const rowBytes = (h.byteLength / T) | 0;
    ctx.copy(h.buffer, rowBytes, vout.buffer, 0, P * rowBytes);
    const p1 = await act('vision.proj1', [P, cfg.hiddenSize]);
    await linear(ctx, vout, w.proj1.w, p1, { bias: w.proj1.bias });
    await gelu(ctx, p1, p1);
    const out = await createAct(ctx, 'vision.features', [P, cfg.hiddenSize]);
    await linear(ctx, p1, w.proj2.w, out, { bias: w.proj2.bias });
    if (debug) {
      debug.visionOut = await readAct(ctx, vout);
      debug.projOut = await readAct(ctx, out);
    }
    ctx.submit();
    return out;
  } finally {
    await ctx.finish().catch(() => {});
    for (const t of temps) t.destroy();
  }
}

/** Upload precomputed image features (e.g. from a cache) as an act tensor [P, d]. */
export function uploadFeatures(ctx: GpuContext, cfg: TrolConfig, features: Float32Array): Promise<Tensor> {
  return uploadAct(ctx, 'vision.features', features, [cfg.imageTokens, cfg.hiddenSize]);
}
