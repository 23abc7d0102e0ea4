/**
 * qkvRope: split the fused InternLM2 `wqkv` output, apply RoPE to q and k, write q and the layer's KV cache.
 *
 *   qkv     act [≥T, (nQ + 2·nKV)·hd]  grouped per kv head h: [q(h,0), …, q(h,G−1), k(h), v(h)], each hd wide
 *                                        (column (h·(G+2) + slot)·hd + d; query head h·G + slot), G = nQ/nKV
 *   q       act [≥T, nQ·hd]             written: roped queries, token-major
 *   kCache  act [nKV, cap, hd]          rows pos0..pos0+T−1 written with roped keys (other rows untouched)
 *   vCache  act [nKV, cap, hd]          rows pos0..pos0+T−1 written with the values
 *
 * RoPE is rotate_half over the full head_dim at positions pos0..pos0+T−1 with a = pos·θ^(−2i/hd). The
 * frequencies are computed here in f64 and passed split as hi + mid + lo so the kernel forms the angle without
 * an f32 rounding of pos·inv_freq (see shaders/rope.wgsl); positions must stay below 2^16.
 *
 * Order: checks → pipeline key → dispatch size → uniforms → dispatch.
 */
import { FeatureUnavailableError, ShapeError } from '../errors.ts';
import type { GpuContext } from '../gpu/context.ts';
import type { PipelineKey } from '../gpu/shaders.ts';
import type { Tensor } from '../gpu/tensor.ts';
import { checkCaches, checkRows } from './attention.ts';

const WG = 64;
/** Largest position + 1 the exact angle split supports (16-bit positions × 8-bit frequency parts). */
export const ROPE_MAX_POSITIONS = 1 << 16;

export interface QkvRopeParams {
  /** Tokens in this chunk. */
  T: number;
  /** Query heads. */
  nQ: number;
  /** Key/value heads (nQ must be a multiple). */
  nKV: number;
  /** Head dim: a multiple of 4, at most 128. */
  hd: number;
  /** RoPE base θ (1e6 for InternLM2). */
  theta: number;
  /** Absolute position of the first token (= tokens already in the cache). */
  pos0: number;
}

export async function qkvRope(
  ctx: GpuContext,
  qkv: Tensor,
  q: Tensor,
  kCache: Tensor,
  vCache: Tensor,
  p: QkvRopeParams,
): Promise<void> {
  // ---- checks
  const { T, nQ, nKV, hd, theta, pos0 } = p;
  const where = 'qkvRope';
  for (const [name, value] of Object.entries({ T, nQ, nKV, hd, pos0 })) {
    if (!Number.isInteger(value) || value < (name === 'pos0' ? 0 : 1)) {
      throw new ShapeError(`${where}: ${name} = ${value} is not a valid count`);
    }
  }
  if (hd % 4 !== 0 || hd > 128) throw new ShapeError(`${where}: head dim ${hd} must be a multiple of 4, ≤ 128`);
  if (nQ % nKV !== 0) throw new ShapeError(`${where}: nQ = ${nQ} is not a multiple of nKV = ${nKV}`);
  if (!(theta > 1) || !Number.isFinite(theta)) throw new ShapeError(`${where}: θ = ${theta} must be finite and > 1`);
  const act = qkv.dtype;
  if (act !== 'f16' && act !== 'f32') throw new ShapeError(`${where}: qkv is ${act}, not an activation`);
  for (const [name, t] of [
    ['q', q],
    ['kCache', kCache],
    ['vCache', vCache],
  ] as const) {
    if (t.dtype !== act) throw new ShapeError(`${where}: ${name} is ${t.dtype} but qkv is ${act}`);
  }
  const nC = nQ + 2 * nKV;
  checkRows(where, 'qkv', qkv, T, nC * hd);
  checkRows(where, 'q', q, T, nQ * hd);
  const cap = checkCaches(where, kCache, vCache, nKV, hd);
  if (pos0 + T > cap) throw new ShapeError(`${where}: positions ${pos0}..${pos0 + T - 1} exceed the cache (${cap})`);
  if (pos0 + T > ROPE_MAX_POSITIONS) {
    throw new ShapeError(`${where}: positions beyond ${ROPE_MAX_POSITIONS - 1} are not supported`);
  }
  const buffers = [qkv.buffer, q.buffer, kCache.buffer, vCache.buffer];
  if (new Set(buffers).size !== buffers.length)
    throw new ShapeError(`${where}: qkv, q, kCache, vCache must be distinct`);
  if (act === 'f16' && !ctx.hasF16) {
    throw new FeatureUnavailableError(`${where}: f16 activations need 'shader-f16'`, { feature: 'shader-f16' });
  }

  // ---- pipeline key
  const key: PipelineKey = { shader: 'rope', entry: 'qkv_rope', act, constants: { WG } };

  // ---- dispatch size
  const count = T * nC * (hd / 2);

  // ---- uniforms: 8 u32, then freq[64] vec4<f32> = (hi, mid, lo, 0) per pair index
  const uniforms = new ArrayBuffer(32 + 64 * 16);
  new Uint32Array(uniforms, 0, 8).set([T, nQ, nKV, hd, cap, pos0, count, nC * hd]);
  new Float32Array(uniforms, 32).set(ropeFrequencySplit(theta, hd));

  await ctx.dispatch({
    label: 'qkv_rope',
    key,
    bindings: buffers,
    uniforms: new Uint8Array(uniforms),
    workgroups: ctx.grid(Math.ceil(count / WG)),
  });
}

/**
 * RoPE frequencies in turns per position, f = θ^(−2i/hd) / 2π for i < hd/2, each split as f = hi + mid + lo
 * where hi and mid keep 8 significant bits each (so pos·hi and pos·mid are exact in f32 for pos < 2^16) and
 * lo = f32(f − hi − mid). Returns [hi0, mid0, lo0, 0, hi1, …] (2·hd values: one vec4 per pair index).
 */
export function ropeFrequencySplit(theta: number, hd: number): Float32Array {
  const out = new Float32Array(2 * hd);
  for (let i = 0; i < hd / 2; i++) {
    const f = theta ** (-(2 * i) / hd) / (2 * Math.PI);
    const hi = keep8Bits(f);
    const mid = keep8Bits(f - hi);
    out.set([hi, mid, f - hi - mid, 0], 4 * i);
  }
  return out;
}

/** x truncated to its 8 leading significant bits (x > 0), exactly representable in f32. */
function keep8Bits(x: number): number {
  if (x <= 0) return 0;
  let quantum = 2 ** (Math.floor(Math.log2(x)) - 7);
  if (x / quantum >= 256) quantum *= 2; // guard log2 rounding: x / quantum must lie in [128, 256)
  if (x / quantum < 128) quantum /= 2;
  return Math.floor(x / quantum) * quantum;
}
