/**
 * PyTorch's CPU uint8 bicubic resize, bit-exact: `F.interpolate(u8, size, mode='bicubic', align_corners=False,
 * antialias=False)` on a uint8 tensor (torch ≥ 2.1; aten/src/ATen/native/cpu/UpSampleKernel.cpp,
 * `HelperInterpBase::_compute_index_ranges_int16_weights` + `_compute_indices_min_size_weights`, and the
 * separable uint8 loops). It is NOT float bicubic followed by rounding:
 *
 * - Separable: the horizontal pass (W → outW) first, stored as uint8, then the vertical pass (H → outH).
 * - Per output index i of a pass (in → out): scale = in/out (double), real = scale·(i + 0.5) − 0.5,
 *   idx = min(floorf(real), in − 1) — floor of real rounded to float32, as torch's `floorf` —,
 *   λ = clamp(real − idx, 0, 1). Taps idx−1..idx+2 get weights cubic(j − 1 − λ), j = 0..3, with a = −0.75;
 *   taps left of 0 are added onto the first in-range tap and taps right of in−1 onto the last (replicate).
 * - The double weights become int16 at a precision p per pass: the largest p ≤ 22 with
 *   int(0.5 + wmax·2^p) < 2^15, wmax being the largest value any weight slot takes in that pass, partial sums
 *   included; each weight rounds half away from zero.
 * - Each output = clamp((2^(p−1) + Σ w16·pixel) >> p, 0, 255) with an arithmetic shift.
 */

import { ShapeError } from '../errors.ts';

const A = -0.75;

/** torch's bicubic filter (UpSample.h cubic_convolution1/2), in double with torch's operation order. */
function cubic(x: number): number {
  const t = Math.abs(x);
  if (t < 1) return ((A + 2) * t - (A + 3)) * t * t + 1;
  if (t < 2) return ((A * t - 5 * A) * t + 8 * A) * t - 4 * A;
  return 0;
}

/** One axis of the resize: per output index, the first input tap, the tap count and 4 int16 weights. */
export interface AxisWeights {
  xmin: Int32Array;
  xsize: Int32Array;
  /** [out, 4] int16 weights (slots ≥ xsize are 0). */
  weights: Int16Array;
  precision: number;
}

export function bicubicAxisWeights(inSize: number, outSize: number): AxisWeights {
  const scale = inSize / outSize;
  const xmin = new Int32Array(outSize);
  const xsize = new Int32Array(outSize);
  const wf = new Float64Array(outSize * 4);
  let wmax = 0;
  for (let i = 0; i < outSize; i++) {
    const real = scale * (i + 0.5) - 0.5;
    const idx = Math.min(Math.floor(Math.fround(real)), inSize - 1);
    const lambda = Math.min(Math.max(real - idx, 0), 1);
    const unboundMin = idx - 1;
    const unboundMax = idx + 3;
    const lo = Math.max(unboundMin, 0);
    const size = Math.min(Math.max(Math.min(unboundMax, inSize) - lo, 0), 4);
    xmin[i] = lo;
    xsize[i] = size;
    let slot = 0;
    for (let j = 0; j < 4; j++) {
      const w = cubic(j - 1 - lambda);
      if (unboundMin + j <= 0) slot = 0;
      else if (unboundMin + j >= inSize - 1) slot = size - 1;
      wf[i * 4 + slot] += w;
      wmax = Math.max(wmax, wf[i * 4 + slot]);
      slot++;
    }
  }
  let precision = 0;
  for (precision = 0; precision < 22; precision++) {
    if (Math.trunc(0.5 + wmax * 2 ** (precision + 1)) >= 1 << 15) break;
  }
  const weights = new Int16Array(outSize * 4);
  for (let k = 0; k < wf.length; k++) {
    const v = wf[k] * 2 ** precision;
    weights[k] = v < 0 ? Math.trunc(-0.5 + v) : Math.trunc(0.5 + v);
  }
  return { xmin, xsize, weights, precision };
}

/** One separable pass over `count` lines: out[line, i] from src[line·lineStride + tap·tapStride]. */
function pass(
  src: Uint8Array,
  dst: Uint8Array,
  ax: AxisWeights,
  lines: number,
  outLen: number,
  srcLine: (line: number) => number,
  tapStride: number,
  dstIndex: (line: number, i: number) => number,
): void {
  const p = ax.precision;
  const half = 1 << (p - 1);
  for (let line = 0; line < lines; line++) {
    const base = srcLine(line);
    for (let i = 0; i < outLen; i++) {
      let sum = half;
      const first = base + ax.xmin[i] * tapStride;
      for (let k = 0; k < ax.xsize[i]; k++) sum += ax.weights[i * 4 + k] * src[first + k * tapStride];
      const v = sum >> p;
      dst[dstIndex(line, i)] = Math.min(255, Math.max(0, v));
    }
  }
}

/** Resizes a [C, H, W] uint8 image to [C, outH, outW] exactly as torch's uint8 bicubic (see the header). */
export function resizeBicubicU8(
  src: Uint8Array,
  C: number,
  H: number,
  W: number,
  outH: number,
  outW: number,
): Uint8Array {
  for (const [name, v] of Object.entries({ C, H, W, outH, outW })) {
    if (!Number.isInteger(v) || v < 1) throw new ShapeError(`resizeBicubicU8: ${name} must be a positive integer`);
  }
  if (src.length !== C * H * W) {
    throw new ShapeError(`resizeBicubicU8: src has ${src.length} bytes, expected C·H·W = ${C * H * W}`);
  }
  // torch skips a pass whose size does not change; its weights would be the identity anyway.
  let cur = src;
  if (outW !== W) {
    const ax = bicubicAxisWeights(W, outW);
    const dst = new Uint8Array(C * H * outW);
    pass(
      cur,
      dst,
      ax,
      C * H,
      outW,
      (line) => line * W,
      1,
      (line, i) => line * outW + i,
    );
    cur = dst;
  }
  if (outH !== H) {
    const ax = bicubicAxisWeights(H, outH);
    const dst = new Uint8Array(C * outH * outW);
    // A line is one (channel, column) pair; taps walk down the column.
    pass(
      cur,
      dst,
      ax,
      C * outW,
      outH,
      (line) => Math.floor(line / outW) * H * outW + (line % outW),
      outW,
      (line, i) => Math.floor(line / outW) * outH * outW + i * outW + (line % outW),
    );
    cur = dst;
  }
  return cur === src ? src.slice() : cur;
}
