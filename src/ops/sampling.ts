/**
 * Reductions for token selection over one row of f32 logits [V] (shaders/sampling.wgsl):
 *   argmax                 — the index of the largest logit; ties → the lowest index; NaN never wins over a
 *                            number (an all-NaN row gives 0).
 *   topK                   — the k ≤ 256 largest, descending, ties → lower index first (NaN last; −0 reads
 *                            back as +0). Multi-pass: per-workgroup sorted chunks of 1024, then merges.
 *   applyRepetitionPenalty — HF `RepetitionPenaltyLogitsProcessor`, in place: for each distinct id in
 *                            ids[0..n), logit = logit > 0 ? logit/penalty : logit·penalty. Ids ≥ V are skipped.
 *
 * The passes exchange intermediates through scratch buffers owned by this module, one set per GpuContext
 * (a WeakMap). Calls recorded one after another share them safely (passes run in recording order); do not
 * record two sampling ops concurrently (e.g. under Promise.all) on one context.
 *
 * Order in every op file: shape checks → pipeline key → dispatch size → uniforms → dispatch.
 */
import { ArgumentError, ShapeError } from '../errors.ts';
import type { Binding, GpuContext } from '../gpu/context.ts';
import type { PipelineKey } from '../gpu/shaders.ts';
import type { Tensor } from '../gpu/tensor.ts';

/** Invocations per workgroup (≤ 256 for SwiftShader; a power of two for the tree reductions). */
const WG = 256;
/** argmax: elements per invocation in the first pass (a workgroup covers WG·PER = 4096 logits). */
const PER = 16;
/** top-k: elements sorted per workgroup (power of two, ≥ 2·WG and ≥ MAX_K; 8 KiB of workgroup memory). */
const CHUNK = 1024;
export const MAX_K = 256;

// ---------------------------------------------------------------- scratch buffers

const scratch = new WeakMap<GpuContext, Map<string, GPUBuffer>>();

/** A per-context storage buffer of at least `bytes`. A grown buffer replaces the old one, which is not
 * destroyed here: commands already recorded may still use it (it is freed with its last reference). */
async function scratchBuffer(ctx: GpuContext, name: string, bytes: number): Promise<GPUBuffer> {
  let byName = scratch.get(ctx);
  if (!byName) {
    byName = new Map();
    scratch.set(ctx, byName);
  }
  const current = byName.get(name);
  if (current && current.size >= bytes) return current;
  const size = Math.max(256, bytes, current ? current.size * 2 : 0);
  const buffer = await ctx.allocate(`sampling.${name}`, size, GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC);
  byName.set(name, buffer);
  return buffer;
}

function bind(t: Tensor): Binding {
  return { buffer: t.buffer, size: Math.max(4, Math.ceil(t.byteLength / 4) * 4) };
}

function params(n: number, k = 0, v = 0, penalty = 0): Uint32Array {
  const u = new Uint32Array([n, k, v, 0]);
  new Float32Array(u.buffer)[3] = penalty;
  return u;
}

/** Logits must be f32 with V = numel ≥ 1 ([V] or [1, V]). */
function checkLogits(op: string, logits: Tensor): number {
  if (logits.dtype !== 'f32') throw new ShapeError(`${op}: logits must be f32, got ${logits.dtype}`);
  const rows = logits.shape.length === 2 ? logits.shape[0] : 1;
  if (logits.shape.length < 1 || logits.shape.length > 2 || rows !== 1 || logits.numel < 1) {
    throw new ShapeError(`${op}: logits must be [V] or [1, V] with V ≥ 1, got [${logits.shape}]`);
  }
  if (logits.byteLength > logits.buffer.size) {
    throw new ShapeError(
      `${op}: '${logits.label}' claims ${logits.byteLength} bytes; its buffer has ${logits.buffer.size}`,
    );
  }
  return logits.numel;
}

function checkU32(op: string, name: string, t: Tensor, minCount: number): void {
  if (t.dtype !== 'u32' || t.numel < minCount || t.byteLength > t.buffer.size) {
    throw new ShapeError(`${op}: ${name} must be u32 with at least ${minCount} elements, got ${t.dtype} [${t.shape}]`);
  }
}

// ---------------------------------------------------------------- argmax

/** out[0] = argmax(logits): first index on ties; NaN loses to every number (all NaN → 0). */
export async function argmax(ctx: GpuContext, logits: Tensor, out: Tensor): Promise<void> {
  const V = checkLogits('argmax', logits);
  checkU32('argmax', 'out', out, 1);
  if (out.buffer === logits.buffer) throw new ShapeError('argmax: out must not share the logits buffer');

  const constants = { WG, PER };
  const partialKey: PipelineKey = { shader: 'sampling', entry: 'argmax_partial', act: 'f32', constants };
  const finalKey: PipelineKey = { shader: 'sampling', entry: 'argmax_final', act: 'f32', constants };
  await ctx.pipeline(finalKey); // compile both before recording either
  const partials = Math.ceil(V / (WG * PER));
  const partialBuf = await scratchBuffer(ctx, 'argmax', partials * 8);
  await ctx.dispatch({
    label: 'argmax.partial',
    key: partialKey,
    bindings: [bind(logits), { buffer: partialBuf, size: partials * 8 }],
    uniforms: params(V),
    workgroups: ctx.grid(partials),
  });
  await ctx.dispatch({
    label: 'argmax.final',
    key: finalKey,
    bindings: [
      { buffer: partialBuf, size: partials * 8 },
      { buffer: out.buffer, size: 4 },
    ],
    uniforms: params(partials),
    workgroups: [1],
  });
}

// ---------------------------------------------------------------- top-k

/** The k largest logits in descending order (ties → lower index first) into outValues f32 [k] and
 * outIndices u32 [k]; 1 ≤ k ≤ min(256, V). */
export async function topK(
  ctx: GpuContext,
  logits: Tensor,
  k: number,
  outValues: Tensor,
  outIndices: Tensor,
): Promise<void> {
  const V = checkLogits('topK', logits);
  if (!Number.isInteger(k) || k < 1 || k > MAX_K) throw new ArgumentError(`topK: k must be 1..${MAX_K}, got ${k}`);
  if (k > V) throw new ShapeError(`topK: k = ${k} exceeds the ${V} logits`);
  if (outValues.dtype !== 'f32' || outValues.numel !== k || outValues.byteLength > outValues.buffer.size) {
    throw new ShapeError(`topK: outValues must be f32 [${k}], got ${outValues.dtype} [${outValues.shape}]`);
  }
  checkU32('topK', 'outIndices', outIndices, k);
  if (outIndices.numel !== k) throw new ShapeError(`topK: outIndices must be u32 [${k}], got [${outIndices.shape}]`);
  if (new Set([logits.buffer, outValues.buffer, outIndices.buffer]).size !== 3) {
    throw new ShapeError('topK: logits, outValues and outIndices must be different buffers');
  }

  const constants = { WG, CHUNK };
  const key = (entry: string): PipelineKey => ({ shader: 'sampling', entry, act: 'f32', constants });
  const outputs = [bind(outValues), bind(outIndices)];
  if (V <= CHUNK) {
    await ctx.dispatch({
      label: 'topK.single',
      key: key('topk_logits_final'),
      bindings: [bind(logits), ...outputs],
      uniforms: params(V, k),
      workgroups: [1],
    });
    return;
  }
  await Promise.all([
    ctx.pipeline(key('topk_logits')),
    ctx.pipeline(key('topk_merge')),
    ctx.pipeline(key('topk_final')),
  ]);
  // Pass sizes: V logits → chunks·k candidates → … → ≤ CHUNK candidates → k results.
  const chunks = Math.ceil(V / CHUNK);
  const firstCount = chunks * k;
  const secondCount = Math.ceil(firstCount / CHUNK) * k;
  let src = await scratchBuffer(ctx, 'topk.a', firstCount * 8);
  let dst = await scratchBuffer(ctx, 'topk.b', secondCount * 8);
  await ctx.dispatch({
    label: 'topK.chunks',
    key: key('topk_logits'),
    bindings: [bind(logits), { buffer: src, size: firstCount * 8 }],
    uniforms: params(V, k),
    workgroups: ctx.grid(chunks),
  });
  let count = firstCount;
  while (count > CHUNK) {
    const merged = Math.ceil(count / CHUNK);
    await ctx.dispatch({
      label: 'topK.merge',
      key: key('topk_merge'),
      bindings: [
        { buffer: src, size: count * 8 },
        { buffer: dst, size: merged * k * 8 },
      ],
      uniforms: params(count, k),
      workgroups: ctx.grid(merged),
    });
    count = merged * k;
    [src, dst] = [dst, src];
  }
  await ctx.dispatch({
    label: 'topK.final',
    key: key('topk_final'),
    bindings: [{ buffer: src, size: count * 8 }, ...outputs],
    uniforms: params(count, k),
    workgroups: [1],
  });
}

// ---------------------------------------------------------------- repetition penalty

/** In place on logits f32 [V]: for each distinct id in ids[0..n), logit > 0 ? logit/penalty : logit·penalty
 * (HF semantics; duplicates count once; ids ≥ V are skipped). penalty must be finite and > 0. */
export async function applyRepetitionPenalty(
  ctx: GpuContext,
  logits: Tensor,
  ids: Tensor,
  n: number,
  penalty: number,
): Promise<void> {
  const V = checkLogits('applyRepetitionPenalty', logits);
  if (!Number.isInteger(n) || n < 0) throw new ArgumentError(`applyRepetitionPenalty: n must be ≥ 0, got ${n}`);
  checkU32('applyRepetitionPenalty', 'ids', ids, n);
  if (ids.buffer === logits.buffer)
    throw new ShapeError('applyRepetitionPenalty: ids must not share the logits buffer');
  if (!Number.isFinite(penalty) || penalty <= 0) {
    throw new ArgumentError(`applyRepetitionPenalty: penalty must be finite and > 0, got ${penalty}`);
  }
  if (n === 0 || penalty === 1) return;

  const constants = { WG };
  const gatherKey: PipelineKey = { shader: 'sampling', entry: 'penalty_gather', act: 'f32', constants };
  const scatterKey: PipelineKey = { shader: 'sampling', entry: 'penalty_scatter', act: 'f32', constants };
  await ctx.pipeline(scatterKey); // compile both before recording either
  const workgroups = ctx.grid(Math.ceil(n / WG));
  const uniforms = params(n, 0, V, penalty);
  const tmp = await scratchBuffer(ctx, 'penalty', n * 4);
  const idsBinding = { buffer: ids.buffer, size: n * 4 };
  await ctx.dispatch({
    label: 'repetitionPenalty.gather',
    key: gatherKey,
    bindings: [bind(logits), idsBinding, { buffer: tmp, size: n * 4 }],
    uniforms,
    workgroups,
  });
  await ctx.dispatch({
    label: 'repetitionPenalty.scatter',
    key: scatterKey,
    bindings: [{ buffer: tmp, size: n * 4 }, idsBinding, bind(logits)],
    uniforms,
    workgroups,
  });
}
