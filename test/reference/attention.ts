/**
 * f64 references for RoPE, the fused-wqkv split and attention (written from the formulas, not from the
 * WGSL). Plain loops, token-major arrays. Exported for the model's CPU reference too.
 *
 * Shapes (all row-major):
 *   qkv [T, (nQ + 2·nKV)·hd] grouped per kv head h: [q(h,0), …, q(h,G−1), k(h), v(h)], G = nQ/nKV
 *   q   [T, nQ·hd], k / v [L, nKV·hd] (L = past + T keys for causal attention), out [T, nQ·hd]
 */

/**
 * rotate_half RoPE of `x` [T, nHeads·hd] in place, token t at position pos0 + t:
 * for i < hd/2, a = pos·θ^(−2i/hd): y[i] = x[i]·cos a − x[i+hd/2]·sin a, y[i+hd/2] = x[i+hd/2]·cos a + x[i]·sin a.
 */
export function ropeReference(
  x: Float64Array,
  T: number,
  nHeads: number,
  hd: number,
  theta: number,
  pos0: number,
): Float64Array {
  const half = hd / 2;
  for (let t = 0; t < T; t++) {
    const pos = pos0 + t;
    for (let hh = 0; hh < nHeads; hh++) {
      const o = (t * nHeads + hh) * hd;
      for (let i = 0; i < half; i++) {
        const a = pos * theta ** (-(2 * i) / hd);
        const c = Math.cos(a);
        const s = Math.sin(a);
        const x1 = x[o + i];
        const x2 = x[o + i + half];
        x[o + i] = x1 * c - x2 * s;
        x[o + i + half] = x2 * c + x1 * s;
      }
    }
  }
  return x;
}

/** Split the fused wqkv output into token-major q [T, nQ·hd], k and v [T, nKV·hd] (no RoPE). */
export function splitQkvReference(
  qkv: ArrayLike<number>,
  T: number,
  nQ: number,
  nKV: number,
  hd: number,
): { q: Float64Array; k: Float64Array; v: Float64Array } {
  const g = nQ / nKV;
  const q = new Float64Array(T * nQ * hd);
  const k = new Float64Array(T * nKV * hd);
  const v = new Float64Array(T * nKV * hd);
  const width = (nQ + 2 * nKV) * hd;
  for (let t = 0; t < T; t++) {
    for (let h = 0; h < nKV; h++) {
      for (let slot = 0; slot < g + 2; slot++) {
        const src = t * width + (h * (g + 2) + slot) * hd;
        let dst: Float64Array;
        let off: number;
        if (slot < g) {
          dst = q;
          off = (t * nQ + h * g + slot) * hd;
        } else {
          dst = slot === g ? k : v;
          off = (t * nKV + h) * hd;
        }
        for (let d = 0; d < hd; d++) dst[off + d] = qkv[src + d];
      }
    }
  }
  return { q, k, v };
}

/** splitQkvReference followed by RoPE on q and k at positions pos0..pos0+T−1. */
export function qkvRopeReference(
  qkv: ArrayLike<number>,
  p: { T: number; nQ: number; nKV: number; hd: number; theta: number; pos0: number },
): { q: Float64Array; k: Float64Array; v: Float64Array } {
  const r = splitQkvReference(qkv, p.T, p.nQ, p.nKV, p.hd);
  ropeReference(r.q, p.T, p.nQ, p.hd, p.theta, p.pos0);
  ropeReference(r.k, p.T, p.nKV, p.hd, p.theta, p.pos0);
  return r;
}

/**
 * Causal GQA attention. q [T, nQ·hd]; k, v [past + T, nKV·hd] (the whole context, token-major).
 * Query t (position past + t) attends to keys 0..past+t; head j uses kv head ⌊j / (nQ/nKV)⌋.
 */
export function causalAttentionReference(
  q: ArrayLike<number>,
  k: ArrayLike<number>,
  v: ArrayLike<number>,
  p: { T: number; past: number; nQ: number; nKV: number; hd: number; scale?: number },
): Float64Array {
  const { T, past, nQ, nKV, hd } = p;
  const g = nQ / nKV;
  const scale = p.scale ?? 1 / Math.sqrt(hd);
  const out = new Float64Array(T * nQ * hd);
  const scores = new Float64Array(past + T);
  for (let t = 0; t < T; t++) {
    for (let j = 0; j < nQ; j++) {
      const h = Math.floor(j / g);
      const n = past + t + 1;
      attendRow(q, (t * nQ + j) * hd, k, v, h * hd, nKV * hd, n, hd, scale, scores, out, (t * nQ + j) * hd);
    }
  }
  return out;
}

/** Full (non-causal) multi-head attention; q, k, v, out [T, nH·hd] token-major. */
export function bidirectionalAttentionReference(
  q: ArrayLike<number>,
  k: ArrayLike<number>,
  v: ArrayLike<number>,
  p: { T: number; nH: number; hd: number; scale?: number },
): Float64Array {
  const { T, nH, hd } = p;
  const scale = p.scale ?? 1 / Math.sqrt(hd);
  const out = new Float64Array(T * nH * hd);
  const scores = new Float64Array(T);
  for (let t = 0; t < T; t++) {
    for (let h = 0; h < nH; h++) {
      attendRow(q, (t * nH + h) * hd, k, v, h * hd, nH * hd, T, hd, scale, scores, out, (t * nH + h) * hd);
    }
  }
  return out;
}

/** out[oOff..] = Σ_s softmax_s(scale·q·k_s)·v_s over keys s < n, key s at kOff + s·rowStride. */
function attendRow(
  q: ArrayLike<number>,
  qOff: number,
  k: ArrayLike<number>,
  v: ArrayLike<number>,
  kOff: number,
  rowStride: number,
  n: number,
  hd: number,
  scale: number,
  scores: Float64Array,
  out: Float64Array,
  oOff: number,
): void {
  let max = Number.NEGATIVE_INFINITY;
  for (let s = 0; s < n; s++) {
    let dot = 0;
    for (let d = 0; d < hd; d++) dot += q[qOff + d] * k[kOff + s * rowStride + d];
    scores[s] = dot * scale;
    if (scores[s] > max) max = scores[s];
  }
  let sum = 0;
  for (let s = 0; s < n; s++) {
    scores[s] = Math.exp(scores[s] - max);
    sum += scores[s];
  }
  for (let d = 0; d < hd; d++) {
    let acc = 0;
    for (let s = 0; s < n; s++) acc += scores[s] * v[kOff + s * rowStride + d];
    out[oOff + d] = acc / sum;
  }
}
