/**
 * Benchmark helpers: GPU-timestamp timing with a wall-clock fallback, and random weights built directly in the
 * packed GPU formats (packing 190 M floats in JS would dominate the run).
 */
import type { GpuContext } from '../src/gpu/context.ts';
import { type Matrix, type MatrixPart, q4Dims } from '../src/gpu/tensor.ts';
import { f32ToF16Bits } from '../src/util/f16.ts';
import { rowsPerPart } from '../src/weights/upload-matrix.ts';

export interface Timing {
  /** Median milliseconds per run. */
  ms: number;
  /** Every sample, in run order. */
  samples: number[];
  source: 'gpu-timestamps' | 'wall-clock';
}

/** Log to stderr (stdout carries only the JSON with --json). */
export function log(...args: unknown[]): void {
  process.stderr.write(`${args.map(String).join(' ')}\n`);
}

function median(v: number[]): number {
  const s = [...v].sort((a, b) => a - b);
  const h = s.length >> 1;
  return s.length % 2 ? s[h] : (s[h - 1] + s[h]) / 2;
}

/** GPU time of `label` summed over the dispatches of one run, once the timestamp readback has landed. */
async function gpuTime(ctx: GpuContext, label: string): Promise<number | null> {
  const deadline = performance.now() + 3000;
  while (performance.now() < deadline) {
    const t = ctx.timings.get(label);
    if (t) return t.ms;
    await new Promise((r) => setTimeout(r, 1));
  }
  return null;
}

/**
 * Run `record` (which records dispatches labelled `label`) after `warmup` runs, `reps` times, each submitted and
 * waited for alone. Uses the kernel's GPU timestamps when the context records them, else wall clock around
 * `ctx.finish()`. `budgetMs` caps the timed runs (at least 2) for slow shapes.
 */
export async function timeRuns(
  ctx: GpuContext,
  label: string,
  record: () => Promise<void>,
  { warmup = 1, reps = 5, budgetMs = 4000 }: { warmup?: number; reps?: number; budgetMs?: number } = {},
): Promise<Timing> {
  let wallFirst = 0;
  for (let i = 0; i < warmup; i++) {
    const t0 = performance.now();
    await record();
    await ctx.finish();
    wallFirst = performance.now() - t0;
  }
  const n = Math.max(2, Math.min(reps, Math.floor(budgetMs / Math.max(wallFirst, 1e-3))));
  const samples: number[] = [];
  let source: Timing['source'] = 'gpu-timestamps';
  for (let i = 0; i < n; i++) {
    ctx.resetTimings();
    const t0 = performance.now();
    await record();
    await ctx.finish();
    const wall = performance.now() - t0;
    const gpu = ctx.hasTimestamps ? await gpuTime(ctx, label) : null;
    if (gpu === null || gpu <= 0) source = 'wall-clock';
    samples.push(gpu !== null && gpu > 0 ? gpu : wall);
  }
  return { ms: median(samples), samples, source };
}

/** xorshift32 fill: random words, fast enough for hundreds of MB. */
function fillRandom(words: Uint32Array, seed: number): void {
  let s = seed >>> 0 || 1;
  for (let i = 0; i < words.length; i++) {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    words[i] = s >>> 0;
  }
}

/**
 * A random q4 matrix [n, k] in the layout of src/gpu/tensor.ts (random nibbles, f16 scales in [0.005, 0.02],
 * zero padding past k), split into parts exactly as uploadMatrix would.
 */
export async function randomQ4Matrix(ctx: GpuContext, label: string, n: number, k: number, seed = 1): Promise<Matrix> {
  const d = q4Dims(k);
  const per = rowsPerPart(ctx, 'q4', k);
  const parts: MatrixPart[] = [];
  const scaleBits = Array.from({ length: 64 }, (_, i) => f32ToF16Bits(0.005 + (0.015 * i) / 63));
  for (let rowStart = 0; rowStart < n; rowStart += per) {
    const rowCount = Math.min(per, n - rowStart);
    const q = new Uint32Array(rowCount * d.wordsPerRow);
    fillRandom(q, seed + rowStart);
    if (d.kp !== k) {
      // Padding elements are q = 0 (nibble 8), as packQ4 writes them.
      for (let r = 0; r < rowCount; r++) {
        for (let i = k; i < d.kp; i++) {
          const w = r * d.wordsPerRow + (i >> 3);
          const sh = (i & 7) * 4;
          q[w] = ((q[w] & ~(15 << sh)) | (8 << sh)) >>> 0;
        }
      }
    }
    const s = new Uint32Array(rowCount * d.scaleWordsPerRow);
    fillRandom(s, seed * 7 + rowStart + 1);
    for (let i = 0; i < s.length; i++) s[i] = (scaleBits[s[i] & 63] | (scaleBits[(s[i] >>> 8) & 63] << 16)) >>> 0;
    const data = await ctx.allocate(
      `${label}.q[${rowStart}]`,
      q.byteLength,
      GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST,
    );
    ctx.write(data, q);
    const scales = await ctx.allocate(
      `${label}.s[${rowStart}]`,
      s.byteLength,
      GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST,
    );
    ctx.write(scales, s);
    parts.push({ rowStart, rowCount, data, scales });
  }
  return { format: 'q4', n, k, parts, label };
}

/** Bytes a q4 GEMV reads from the weights: nibbles + scales (x and the output are ignored). */
export function q4Bytes(n: number, k: number): number {
  const d = q4Dims(k);
  return n * (d.wordsPerRow + d.scaleWordsPerRow) * 4;
}
