/**
 * Kernel self-check: run each kernel once on tiny seeded inputs and compare it with a small f64 CPU reference
 * written here, independently of the WGSL. It answers "does this adapter compute our kernels correctly?" on
 * the user's own machine (wrong output on some GPUs is a recurring complaint with other engines). The run
 * takes a few seconds on a CPU adapter, almost all of it pipeline compilation.
 *
 * Each check is a named async function of a `CheckScope` (the context plus `track()` for its buffers); adding
 * a kernel means adding one entry to `KERNEL_CHECKS`. Activations use the context's own dtype (`ctx.act`), so
 * the check covers the path the engine will take on this device. Checks run one after another; a check that throws is reported as failed with its error
 * (the remaining checks still run). Every GPU buffer a check allocates is destroyed when it ends.
 */

import { readAct, uploadAct } from '../gpu/act-io.ts';
import type { ActDType, GpuContext } from '../gpu/context.ts';
import { destroyMatrix, Tensor, type WeightFormat } from '../gpu/tensor.ts';
import { attention } from '../ops/attention.ts';
import { copyKernel } from '../ops/copy.ts';
import { linear } from '../ops/linear.ts';
import { rmsNorm } from '../ops/norm.ts';
import { argmax } from '../ops/sampling.ts';
import { traversalGateMix } from '../ops/traversal.ts';
import { roundToF16 } from '../util/f16.ts';
import { Rng } from '../util/rng.ts';
import { uploadMatrix } from '../weights/upload-matrix.ts';

export interface SelfCheckResult {
  name: string;
  ok: boolean;
  /** Largest |gpu − reference| over the output (NaN if the output held a NaN). */
  maxAbsErr: number;
  /** Index of that largest error (−1 when the check threw before comparing). */
  worstIndex: number;
  /** Wall time of the check: upload, pipeline compile (first time), dispatch and read-back. */
  ms: number;
  /** Set when the check threw: the error's class name and message. */
  error?: { name: string; message: string };
}

export interface CheckOutcome {
  ok: boolean;
  maxAbsErr: number;
  worstIndex: number;
}

/** Buffers a check creates, destroyed when it ends (pass or fail). */
export class CheckScope {
  private readonly owned: { destroy(): void }[] = [];
  constructor(readonly ctx: GpuContext) {}
  /** Register a buffer/tensor/matrix-like object for destruction; returns it (an arrow, so it destructures). */
  readonly track = <T extends { destroy(): void }>(x: T): T => {
    this.owned.push(x);
    return x;
  };
  dispose(): void {
    // Flush anything a failed check left recorded, so no later submission refers to a destroyed buffer.
    try {
      this.ctx.submit();
    } catch {
      // The device is gone; destroying is still fine.
    }
    for (const x of this.owned.splice(0)) x.destroy();
  }
}

export interface KernelCheck {
  name: string;
  run(scope: CheckScope): Promise<CheckOutcome>;
}

/**
 * |a − e| ≤ atol + rtol·|e| everywhere; reports the largest absolute error and where it is. A NaN anywhere
 * fails and is reported as the worst index.
 */
export function compareOutputs(
  actual: ArrayLike<number>,
  expected: ArrayLike<number>,
  atol: number,
  rtol: number,
): CheckOutcome {
  if (actual.length !== expected.length) return { ok: false, maxAbsErr: Number.NaN, worstIndex: -1 };
  let ok = true;
  let maxAbsErr = 0;
  let worstIndex = actual.length > 0 ? 0 : -1;
  for (let i = 0; i < actual.length; i++) {
    const d = Math.abs(actual[i] - expected[i]);
    if (!(d <= atol + rtol * Math.abs(expected[i]))) ok = false;
    if (Number.isNaN(d)) {
      if (!Number.isNaN(maxAbsErr)) {
        maxAbsErr = Number.NaN;
        worstIndex = i;
      }
    } else if (d > maxAbsErr) {
      maxAbsErr = d;
      worstIndex = i;
    }
  }
  return { ok, maxAbsErr, worstIndex };
}

/** Seeded numbers, so every run checks the same data (the engine's generator). */
export { Rng as SeededRandom };

function u32s(rng: Rng, n: number): Uint32Array {
  const a = new Uint32Array(n);
  for (let i = 0; i < n; i++) a[i] = Math.floor(rng.next() * 4294967296) >>> 0;
  return a;
}

// ------------------------------------------------------------------ helpers

/**
 * Tolerances, |gpu − ref| ≤ atol + rtol·|ref|. f32: sums of ≤ 70 products and a few transcendentals (exp, tanh
 * differ by a few ulp between drivers). f16 activations: inputs are rounded to f16 before the reference, so
 * the tolerance covers one rounding of the output (half an ulp: 2^-11 relative ≈ 4.9e-4, so rtol is about twice
 * that) plus f32 noise.
 */
function tolerance(act: ActDType): { atol: number; rtol: number } {
  return act === 'f16' ? { atol: 5e-4, rtol: 1e-3 } : { atol: 1e-5, rtol: 1e-4 };
}

/** What storing `values` as `act` does to them (the reference starts from the stored values). */
function asStored(values: Float32Array, act: ActDType): Float32Array {
  return act === 'f16' ? values.map(roundToF16) : values;
}

async function uploadF32(scope: CheckScope, label: string, values: Float32Array): Promise<Tensor> {
  const buffer = scope.track(await scope.ctx.upload(label, values));
  return new Tensor(buffer, 'f32', [values.length]);
}

async function readF32(ctx: GpuContext, t: Tensor): Promise<Float32Array> {
  return new Float32Array(await ctx.read(t.buffer, 0, t.byteLength));
}

function concat(...parts: ArrayLike<number>[]): Float64Array {
  const out = new Float64Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(Array.from(p), o);
    o += p.length;
  }
  return out;
}

// ------------------------------------------------------------------ checks

/** copy: 257 vec4<u32> (not a multiple of the 256-thread workgroup) must arrive bit-exact. */
const copyCheck: KernelCheck = {
  name: 'copy (257 × vec4<u32>)',
  async run({ ctx, track }) {
    const n4 = 257;
    const data = u32s(new Rng(1), n4 * 4);
    const src = track(await ctx.upload('selfcheck.copy.src', data));
    const dst = track(await ctx.upload('selfcheck.copy.dst', new Uint32Array(n4 * 4 + 4).fill(0xdeadbeef)));
    await copyKernel(ctx, src, dst, n4 * 16);
    const out = new Uint32Array(await ctx.read(dst));
    // The reference is the input itself, plus the guard vec4 past the end left untouched.
    const expected = new Float64Array(out.length);
    expected.set(data);
    expected.fill(0xdeadbeef, data.length);
    return compareOutputs(out, expected, 0, 0);
  },
};

/**
 * Weights every format stores exactly: multiples of 1/16 in [−7/16, 7/16], with ±7/16 at the start of each
 * 32-column group, so the q4 group scale is exactly 1/16 (max|w|/7) and every value is a whole multiple of it.
 */
function exactWeights(n: number, k: number, rng: Rng): Float32Array {
  const w = new Float32Array(n * k);
  for (let r = 0; r < n; r++) {
    for (let c = 0; c < k; c++) {
      const q = c % 32 === 0 ? (rng.next() < 0.5 ? -7 : 7) : Math.floor(rng.next() * 15) - 7;
      w[r * k + c] = q / 16;
    }
  }
  return w;
}

/** out[m, n] = Σ_k x[m, k] · w[n, k] + bias[n]. */
function linearRef(x: Float32Array, w: Float32Array, bias: Float32Array, m: number, n: number, k: number) {
  const out = new Float64Array(m * n);
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < n; j++) {
      let acc = bias[j];
      for (let c = 0; c < k; c++) acc += x[i * k + c] * w[j * k + c];
      out[i * n + j] = acc;
    }
  }
  return out;
}

function linearCheck(format: WeightFormat, split: boolean): KernelCheck {
  const n = 37;
  const k = 67;
  return {
    name: `linear, ${format} weights [${n}, ${k}]${split ? ' in 3 row blocks' : ''}, bias (M = 1, 7)`,
    async run(scope) {
      const { ctx, track } = scope;
      const rng = new Rng(format === 'f32' ? 11 : format === 'f16' ? 12 : 13);
      const w = exactWeights(n, k, rng);
      const bias = rng.floats(n, -0.5, 0.5);
      const rowBytes = format === 'q4' ? (Math.ceil(k / 32) * 32) / 2 : format === 'f16' ? Math.ceil(k / 2) * 4 : k * 4;
      const W = await uploadMatrix(
        ctx,
        'selfcheck.linear.w',
        format,
        n,
        k,
        w,
        split ? { maxPartBytes: 13 * rowBytes } : {},
      );
      track({ destroy: () => destroyMatrix(W) });
      if (split && W.parts.length !== 3) throw new Error(`expected 3 row blocks, got ${W.parts.length}`);
      const b = await uploadF32(scope, 'selfcheck.linear.bias', bias);
      const actual: Float32Array[] = [];
      const expected: Float64Array[] = [];
      for (const m of [1, 7]) {
        const x = asStored(rng.floats(m * k), ctx.act);
        const xt = track(await uploadAct(ctx, 'selfcheck.linear.x', x, [m, k]));
        const out = track(
          await uploadAct(ctx, 'selfcheck.linear.out', new Float32Array(m * n).fill(Number.NaN), [m, n]),
        );
        await linear(ctx, xt, W, out, { bias: b });
        actual.push(await readAct(ctx, out));
        expected.push(linearRef(x, w, bias, m, n, k));
      }
      const t = tolerance(ctx.act);
      return compareOutputs(concat(...actual), concat(...expected), t.atol, t.rtol);
    },
  };
}

/** y[r, :] = x[r, :] / sqrt(mean(x[r, :]²) + eps) · w. */
const rmsNormCheck: KernelCheck = {
  name: 'rmsNorm [3, 257], eps 1e-5',
  async run(scope) {
    const { ctx, track } = scope;
    const rows = 3;
    const d = 257;
    const eps = 1e-5;
    const rng = new Rng(21);
    const x = asStored(rng.floats(rows * d, -2, 2), ctx.act);
    const w = rng.floats(d, 0.5, 1.5);
    const xt = track(await uploadAct(ctx, 'selfcheck.rms.x', x, [rows, d]));
    const wt = await uploadF32(scope, 'selfcheck.rms.w', w);
    const out = track(await uploadAct(ctx, 'selfcheck.rms.out', new Float32Array(rows * d), [rows, d]));
    await rmsNorm(ctx, xt, wt, out, eps);
    const expected = new Float64Array(rows * d);
    for (let r = 0; r < rows; r++) {
      let ss = 0;
      for (let c = 0; c < d; c++) ss += x[r * d + c] ** 2;
      const inv = 1 / Math.sqrt(ss / d + eps);
      for (let c = 0; c < d; c++) expected[r * d + c] = x[r * d + c] * inv * w[c];
    }
    const t = tolerance(ctx.act);
    return compareOutputs(await readAct(ctx, out), expected, t.atol, t.rtol);
  },
};

/**
 * Causal GQA attention: query t of the chunk sits at position past + t and sees cache rows 0..past+t; query
 * head j reads kv head ⌊j / (nQ/nKV)⌋; softmax(q·k · 1/√hd) · v.
 */
function attentionRef(
  q: Float32Array,
  k: Float32Array,
  v: Float32Array,
  p: { T: number; past: number; nQ: number; nKV: number; hd: number; cap: number },
): Float64Array {
  const { T, past, nQ, nKV, hd, cap } = p;
  const g = nQ / nKV;
  const out = new Float64Array(T * nQ * hd);
  for (let t = 0; t < T; t++) {
    for (let j = 0; j < nQ; j++) {
      const kv = Math.floor(j / g);
      const n = past + t + 1;
      const scores = new Float64Array(n);
      let max = Number.NEGATIVE_INFINITY;
      for (let s = 0; s < n; s++) {
        let dot = 0;
        for (let e = 0; e < hd; e++) dot += q[t * nQ * hd + j * hd + e] * k[(kv * cap + s) * hd + e];
        scores[s] = dot / Math.sqrt(hd);
        max = Math.max(max, scores[s]);
      }
      let sum = 0;
      for (let s = 0; s < n; s++) {
        scores[s] = Math.exp(scores[s] - max);
        sum += scores[s];
      }
      for (let e = 0; e < hd; e++) {
        let acc = 0;
        for (let s = 0; s < n; s++) acc += scores[s] * v[(kv * cap + s) * hd + e];
        out[t * nQ * hd + j * hd + e] = acc / sum;
      }
    }
  }
  return out;
}

function attentionCheck(T: number, past: number, decodeChunk?: number): KernelCheck {
  const nQ = 4;
  const nKV = 2;
  const hd = 16;
  const cap = 16;
  const what = T > 1 ? 'prefill' : decodeChunk ? `decode, ${Math.ceil((past + 1) / decodeChunk)} chunks` : 'decode';
  return {
    name: `attention ${what} (T = ${T}, past = ${past}, nQ = ${nQ}, nKV = ${nKV}, hd = ${hd})`,
    async run({ ctx, track }) {
      const rng = new Rng(31 + T + past);
      const q = asStored(rng.floats(T * nQ * hd, -1.5, 1.5), ctx.act);
      const k = asStored(rng.floats(nKV * cap * hd, -1.5, 1.5), ctx.act);
      const v = asStored(rng.floats(nKV * cap * hd), ctx.act);
      const qt = track(await uploadAct(ctx, 'selfcheck.attn.q', q, [T, nQ * hd]));
      const kt = track(await uploadAct(ctx, 'selfcheck.attn.k', k, [nKV, cap, hd]));
      const vt = track(await uploadAct(ctx, 'selfcheck.attn.v', v, [nKV, cap, hd]));
      const out = track(await uploadAct(ctx, 'selfcheck.attn.out', new Float32Array(T * nQ * hd), [T, nQ * hd]));
      await attention(ctx, qt, kt, vt, out, { T, past, nQ, nKV, hd }, decodeChunk ? { decodeChunk } : {});
      const expected = attentionRef(q, k, v, { T, past, nQ, nKV, hd, cap });
      const t = tolerance(ctx.act);
      return compareOutputs(await readAct(ctx, out), expected, t.atol, t.rtol);
    },
  };
}

/** s[t] = 0.5·tanh(h1[t]·w + b) + 0.5; y[t] = (1 − s[t])·h1[t] + s[t]·h2[t]. Checks y and the gate s. */
const traversalCheck: KernelCheck = {
  name: 'traversalGateMix [3, 257] (y and gate)',
  async run(scope) {
    const { ctx, track } = scope;
    const T = 3;
    const d = 257;
    const b = 0.1;
    const rng = new Rng(41);
    const h1 = asStored(rng.floats(T * d), ctx.act);
    const h2 = asStored(rng.floats(T * d), ctx.act);
    const w = rng.floats(d, -0.1, 0.1);
    const h1t = track(await uploadAct(ctx, 'selfcheck.trol.h1', h1, [T, d]));
    const h2t = track(await uploadAct(ctx, 'selfcheck.trol.h2', h2, [T, d]));
    const wt = await uploadF32(scope, 'selfcheck.trol.w', w);
    const y = track(await uploadAct(ctx, 'selfcheck.trol.y', new Float32Array(T * d), [T, d]));
    const gate = await uploadF32(scope, 'selfcheck.trol.gate', new Float32Array(T));
    await traversalGateMix(ctx, h1t, h2t, wt, b, y, gate);
    const yRef = new Float64Array(T * d);
    const sRef = new Float64Array(T);
    for (let t = 0; t < T; t++) {
      let dot = b;
      for (let c = 0; c < d; c++) dot += h1[t * d + c] * w[c];
      const s = 0.5 * Math.tanh(dot) + 0.5;
      sRef[t] = s;
      for (let c = 0; c < d; c++) yRef[t * d + c] = (1 - s) * h1[t * d + c] + s * h2[t * d + c];
    }
    const tol = tolerance(ctx.act);
    const yOut = compareOutputs(await readAct(ctx, y), yRef, tol.atol, tol.rtol);
    const sOut = compareOutputs(await readF32(ctx, gate), sRef, 1e-5, 1e-4);
    // Report the worse of the two; gate indices follow the T·D entries of y.
    const worst = Number.isNaN(sOut.maxAbsErr) || sOut.maxAbsErr > yOut.maxAbsErr ? sOut : yOut;
    return {
      ok: yOut.ok && sOut.ok,
      maxAbsErr: worst.maxAbsErr,
      worstIndex: worst === sOut ? T * d + sOut.worstIndex : yOut.worstIndex,
    };
  },
};

/** argmax over 5000 f32 logits (two first-pass workgroups), with the maximum tied at two places: the lower wins. */
const argmaxCheck: KernelCheck = {
  name: 'argmax [5000], tied maximum',
  async run(scope) {
    const { ctx, track } = scope;
    const V = 5000;
    const logits = new Rng(51).floats(V, -10, 10);
    logits[4321] = 20;
    logits[4700] = 20;
    let expected = 0;
    for (let i = 1; i < V; i++) if (logits[i] > logits[expected]) expected = i;
    const lt = await uploadF32(scope, 'selfcheck.argmax.logits', logits);
    const out = new Tensor(track(await ctx.upload('selfcheck.argmax.out', new Uint32Array([0xffffffff]))), 'u32', [1]);
    await argmax(ctx, lt, out);
    const got = new Uint32Array(await ctx.read(out.buffer, 0, 4))[0];
    return compareOutputs([got], [expected], 0, 0);
  },
};

/** The checks the worker runs, in order. */
export const KERNEL_CHECKS: readonly KernelCheck[] = [
  copyCheck,
  linearCheck('f32', false),
  linearCheck('f16', true),
  linearCheck('q4', false),
  rmsNormCheck,
  attentionCheck(5, 3),
  attentionCheck(1, 9),
  attentionCheck(1, 9, 4),
  traversalCheck,
  argmaxCheck,
];

/** Run `checks` one at a time on `ctx`; `onResult` (optional) hears each result as it lands. */
export async function runKernelSelfCheck(
  ctx: GpuContext,
  checks: readonly KernelCheck[] = KERNEL_CHECKS,
  onResult?: (r: SelfCheckResult) => void,
): Promise<SelfCheckResult[]> {
  const results: SelfCheckResult[] = [];
  for (const check of checks) {
    const scope = new CheckScope(ctx);
    const t0 = performance.now();
    let result: SelfCheckResult;
    try {
      const o = await check.run(scope);
      result = { name: check.name, ok: o.ok, maxAbsErr: o.maxAbsErr, worstIndex: o.worstIndex, ms: 0 };
    } catch (e) {
      const err = e as Error;
      result = {
        name: check.name,
        ok: false,
        maxAbsErr: Number.NaN,
        worstIndex: -1,
        ms: 0,
        error: { name: err?.name ?? 'Error', message: String(err?.message ?? e) },
      };
    } finally {
      scope.dispose();
    }
    result.ms = performance.now() - t0;
    results.push(result);
    onResult?.(result);
  }
  return results;
}
