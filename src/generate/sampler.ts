/**
 * Choosing the next token.
 *
 * Greedy (temperature 0): the GPU argmax (first index on ties) — 4 bytes read back.
 * Sampling: the repetition penalty is applied to the logits on the GPU, then the GPU returns the top
 * candidates (top_k, or at most MAX_CANDIDATES when top_k is off), and the CPU applies temperature, top-p and
 * draws with a seeded generator — so the same seed gives the same tokens. Sampling from the 256 most likely
 * tokens rather than all 92544 changes nothing measurable (the rest hold a negligible share of the mass
 * after any temperature ≤ 2), and it keeps the read-back tiny.
 */
import { ArgumentError } from '../errors.ts';
import type { GpuContext } from '../gpu/context.ts';
import { Tensor } from '../gpu/tensor.ts';
import { applyRepetitionPenalty, argmax, topK } from '../ops/sampling.ts';
import { Rng } from '../util/rng.ts';

export const MAX_CANDIDATES = 256;

export interface SamplingOptions {
  /** 0 (or absent) = greedy. */
  temperature?: number;
  /** Keep the k most likely tokens (0/absent = off, i.e. up to MAX_CANDIDATES). */
  topK?: number;
  /** Nucleus sampling: smallest set whose probability reaches top_p (1/absent = off). */
  topP?: number;
  /** HF-style repetition penalty over the prompt and generated ids (1/absent = off). */
  repetitionPenalty?: number;
  /** Seed for the sampler's generator (default 0). */
  seed?: number;
}

export function validateSampling(o: SamplingOptions): void {
  const t = o.temperature ?? 0;
  if (!(t >= 0) || !Number.isFinite(t)) throw new ArgumentError(`temperature must be ≥ 0 (got ${o.temperature})`);
  const k = o.topK ?? 0;
  if (!Number.isInteger(k) || k < 0) throw new ArgumentError(`top_k must be a whole number ≥ 0 (got ${o.topK})`);
  if (k > MAX_CANDIDATES) throw new ArgumentError(`top_k must be ≤ ${MAX_CANDIDATES} (got ${k})`);
  const p = o.topP ?? 1;
  if (!(p > 0 && p <= 1)) throw new ArgumentError(`top_p must be in (0, 1] (got ${o.topP})`);
  const r = o.repetitionPenalty ?? 1;
  if (!(r > 0) || !Number.isFinite(r)) throw new ArgumentError(`repetition_penalty must be > 0 (got ${r})`);
}

/** Pick from candidates sorted by descending logit; pure CPU, deterministic given `rng`. */
export function sampleFromCandidates(values: Float32Array, indices: Uint32Array, o: SamplingOptions, rng: Rng): number {
  const t = o.temperature ?? 0;
  if (t === 0 || values.length === 1) return indices[0];
  const n = values.length;
  const probs = new Float64Array(n);
  const max = values[0];
  let sum = 0;
  for (let i = 0; i < n; i++) {
    probs[i] = Math.exp((values[i] - max) / t);
    sum += probs[i];
  }
  let keep = n;
  const topP = o.topP ?? 1;
  if (topP < 1) {
    let acc = 0;
    for (let i = 0; i < n; i++) {
      acc += probs[i] / sum;
      if (acc >= topP) {
        keep = i + 1;
        break;
      }
    }
  }
  let kept = 0;
  for (let i = 0; i < keep; i++) kept += probs[i];
  let u = rng.next() * kept;
  for (let i = 0; i < keep; i++) {
    u -= probs[i];
    if (u < 0) return indices[i];
  }
  return indices[keep - 1];
}

/** GPU-side state for sampling from the model's logits tensor. */
export class Sampler {
  private readonly rng: Rng;
  private constructor(
    private readonly ctx: GpuContext,
    private readonly opts: SamplingOptions,
    private readonly out: Tensor,
    private readonly values: Tensor,
    private readonly indices: Tensor,
    private penaltyIds: Tensor | null,
  ) {
    this.rng = new Rng(opts.seed ?? 0);
  }

  static async create(ctx: GpuContext, opts: SamplingOptions): Promise<Sampler> {
    validateSampling(opts);
    const usage = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST;
    const out = new Tensor(await ctx.allocate('sample.argmax', 4, usage), 'u32', [1]);
    const k = candidateCount(opts);
    const values = new Tensor(await ctx.allocate('sample.values', k * 4, usage), 'f32', [k]);
    const indices = new Tensor(await ctx.allocate('sample.indices', k * 4, usage), 'u32', [k]);
    return new Sampler(ctx, opts, out, values, indices, null);
  }

  /** Choose the next token from `logits` (f32 [V]); `history` are the ids the penalty applies to. */
  async next(logits: Tensor, history: number[]): Promise<number> {
    const { ctx, opts } = this;
    const penalty = opts.repetitionPenalty ?? 1;
    if (penalty !== 1 && history.length > 0) {
      const ids = Uint32Array.from(new Set(history));
      if (!this.penaltyIds || this.penaltyIds.numel < ids.length) {
        this.penaltyIds?.destroy();
        const cap = Math.max(ids.length * 2, 256);
        this.penaltyIds = new Tensor(
          await ctx.allocate('sample.penalty_ids', cap * 4, GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST),
          'u32',
          [cap],
        );
      }
      ctx.write(this.penaltyIds.buffer, ids);
      await applyRepetitionPenalty(ctx, logits, this.penaltyIds, ids.length, penalty);
    }
    if ((opts.temperature ?? 0) === 0) {
      await argmax(ctx, logits, this.out);
      return new Uint32Array(await ctx.read(this.out.buffer, 0, 4))[0];
    }
    const k = Math.min(this.values.numel, logits.numel);
    await topK(ctx, logits, k, this.values, this.indices);
    const values = new Float32Array(await ctx.read(this.values.buffer, 0, k * 4));
    const indices = new Uint32Array(await ctx.read(this.indices.buffer, 0, k * 4));
    return sampleFromCandidates(values, indices, opts, this.rng);
  }

  destroy(): void {
    this.out.destroy();
    this.values.destroy();
    this.indices.destroy();
    this.penaltyIds?.destroy();
  }
}

function candidateCount(o: SamplingOptions): number {
  const k = o.topK ?? 0;
  return k > 0 ? k : MAX_CANDIDATES;
}
