/**
 * Attention ops (kernels in shaders/attention.wgsl).
 *
 * attention — causal GQA over a layer's KV cache (decoder):
 *   q       act [≥T, nQ·hd]        token-major; query t is at absolute position past + t
 *   kCache  act [nKV, cap, hd]     rows 0..past+T−1 valid (keys post-RoPE)
 *   vCache  act [nKV, cap, hd]
 *   out     act [≥T, nQ·hd]        token-major, ready for `wo`
 *   Query head j uses kv head ⌊j / G⌋, G = nQ / nKV ≤ 8; query t attends to rows 0..past+t;
 *   softmax(q·kᵀ·scale) in f32, scale = 1/√hd unless given.
 *   Variants: T > 1 → attn_rows (flash-style tiles, online softmax); T = 1 → flash-decoding: the context is
 *   split into chunks of `decodeChunk` keys, one pass per chunk and a combine pass (a single chunk writes
 *   the output directly).
 *
 * attentionBidirectional — the CLIP vision tower's full multi-head attention:
 *   q, k, v, out  act [≥T, nH·hd] token-major (outputs of separate q/k/v linears).
 *
 * hd must be a multiple of 4 and ≤ 128. Workgroups have ≤ 64 invocations and ≤ 16 KiB workgroup memory
 * (8 KiB by default in attn_rows, ≤ 14 KiB in decode).
 * Order in each op: checks → pipeline key → dispatch size → uniforms → dispatch.
 */
import { FeatureUnavailableError, ShapeError } from '../errors.ts';
import type { ActDType, GpuContext } from '../gpu/context.ts';
import type { PipelineKey } from '../gpu/shaders.ts';
import type { Tensor } from '../gpu/tensor.ts';

/** Invocations per workgroup (attn_rows and decode). */
const WG = 64;
/** Invocations per combine workgroup (one per vec4 column: hd/4 ≤ 32). */
const WG_COMBINE = 32;
const MAX_HD = 128;
const MAX_G = 8;
const MAX_TILE_KEYS = 32;
const MAX_DECODE_CHUNK = 256;
const LOG2E = Math.LOG2E;

export interface AttentionParams {
  /** Query tokens in this chunk (1 = decode). */
  T: number;
  /** Tokens already in the cache before this chunk (= absolute position of query 0). */
  past: number;
  nQ: number;
  nKV: number;
  /** Head dim: a multiple of 4, at most 128. */
  hd: number;
  /** Softmax scale; default 1/√hd. */
  scale?: number;
}

export interface BidirectionalParams {
  T: number;
  nH: number;
  hd: number;
  scale?: number;
}

/** Kernel tunables, for tests and benchmarks; the defaults are chosen from hd, G and the adapter. */
export interface AttentionTuning {
  /** Shape from the uniforms rather than override constants, so one pipeline per entry point serves every
   * shape (default: on for CPU adapters, whose fully unrolled constant-bound loops took 5–25 s per pipeline
   * to compile; off on GPUs, where constant bounds keep the per-row q and accumulator in registers). */
  dynamicLoops?: boolean;
  /** attn_rows: keys per staged K/V tile (1..32). Default: 8 KiB of f32 K+V tiles, i.e. 8 for hd = 128. */
  tileKeys?: number;
  /** Decode: keys per chunk (a multiple of 4 in 4..256). Default 256 (128 when G = 8). */
  decodeChunk?: number;
}

/** Default staged tile: K and V tiles of f32 take 8 KiB together. */
export function defaultTileKeys(hd: number): number {
  return Math.max(1, Math.min(MAX_TILE_KEYS, Math.floor(8192 / (hd * 8))));
}

export function defaultDecodeChunk(g: number): number {
  return g <= 4 ? 256 : 128;
}

/** Per-device scratch for the flash-decoding partials, grown on demand (an old one is dropped, not destroyed,
 * because recorded but unsubmitted passes may still use it). */
const scratch = new WeakMap<GpuContext, GPUBuffer>();

async function decodeScratch(ctx: GpuContext, bytes: number): Promise<GPUBuffer> {
  const have = scratch.get(ctx);
  if (have && have.size >= bytes) return have;
  const buffer = await ctx.allocate(
    'attn-decode-partials',
    Math.max(bytes, have ? 2 * have.size : 0),
    GPUBufferUsage.STORAGE,
  );
  scratch.set(ctx, buffer);
  return buffer;
}

export async function attention(
  ctx: GpuContext,
  q: Tensor,
  kCache: Tensor,
  vCache: Tensor,
  out: Tensor,
  p: AttentionParams,
  tuning: AttentionTuning = {},
): Promise<void> {
  // ---- checks
  const where = 'attention';
  const { T, past, nQ, nKV, hd } = p;
  checkCounts(where, { T, nQ, nKV, hd }, { past });
  checkHeadDim(where, hd);
  if (nQ % nKV !== 0) throw new ShapeError(`${where}: nQ = ${nQ} is not a multiple of nKV = ${nKV}`);
  const g = nQ / nKV;
  if (g > MAX_G) throw new ShapeError(`${where}: ${g} query heads per kv head; at most ${MAX_G} are supported`);
  const act = checkActs(ctx, where, { q, kCache, vCache, out });
  checkRows(where, 'q', q, T, nQ * hd);
  checkRows(where, 'out', out, T, nQ * hd);
  const cap = checkCaches(where, kCache, vCache, nKV, hd);
  if (past + T > cap) throw new ShapeError(`${where}: past ${past} + T ${T} exceeds the cache capacity ${cap}`);
  if (out.buffer === q.buffer || out.buffer === kCache.buffer || out.buffer === vCache.buffer) {
    throw new ShapeError(`${where}: out must not alias q or the caches`);
  }
  const scale = checkScale(where, p.scale, hd);
  const hd4 = hd / 4;
  const tileKeys = tuning.tileKeys ?? defaultTileKeys(hd);
  const chunk = tuning.decodeChunk ?? defaultDecodeChunk(g);
  checkTuning(where, tileKeys, chunk, hd);
  const dyn = tuning.dynamicLoops ?? ctx.adapterSummary.software;

  if (T > 1) {
    // ---- prefill: pipeline key → dispatch size → uniforms → dispatch
    const key: PipelineKey = {
      shader: 'attention',
      entry: 'attn_rows',
      act,
      constants: { ...shapeConstants('rows', dyn, g, hd4, tileKeys, chunk), CAUSAL: 1 },
    };
    const nBlocks = nKV * Math.ceil(T / Math.floor(WG / g));
    await ctx.dispatch({
      label: 'attn_prefill',
      key,
      bindings: [q.buffer, kCache.buffer, vCache.buffer, out.buffer],
      uniforms: attnUniforms({
        T,
        past,
        nQ,
        nKV,
        kHead4: cap * hd4,
        kRow4: hd4,
        nBlocks,
        nChunks: 0,
        ctxLen: 0,
        scale,
        hd4,
        tileKeys,
        chunk,
      }),
      workgroups: ctx.grid(nBlocks),
    });
    return;
  }

  // ---- decode (T = 1)
  const ctxLen = past + 1;
  const nChunks = Math.ceil(ctxLen / chunk);
  const constants = shapeConstants('decode', dyn, g, hd4, tileKeys, chunk);
  const nBlocks = nKV * nChunks;
  const uniforms = attnUniforms({
    T,
    past,
    nQ,
    nKV,
    kHead4: cap * hd4,
    kRow4: hd4,
    nBlocks,
    nChunks,
    ctxLen,
    scale,
    hd4,
    tileKeys,
    chunk,
  });
  if (nChunks === 1) {
    const key: PipelineKey = { shader: 'attention', entry: 'attn_decode_direct', act, constants };
    await ctx.dispatch({
      label: 'attn_decode',
      key,
      bindings: [q.buffer, kCache.buffer, vCache.buffer, out.buffer],
      uniforms,
      workgroups: ctx.grid(nBlocks),
    });
    return;
  }
  const splitKey: PipelineKey = { shader: 'attention', entry: 'attn_decode_split', act, constants };
  const combineKey: PipelineKey = {
    shader: 'attention',
    entry: 'attn_decode_combine',
    act,
    constants: { WG: WG_COMBINE, HD4: dyn ? MAX_HD / 4 : hd4, DYN: Number(dyn) },
  };
  // Size the partials for the whole cache so decoding never regrows them.
  const part = await decodeScratch(ctx, nQ * Math.ceil(cap / chunk) * (hd4 + 1) * 16);
  await ctx.pipeline(combineKey); // compile both before recording either
  await ctx.dispatch({
    label: 'attn_decode_split',
    key: splitKey,
    bindings: [q.buffer, kCache.buffer, vCache.buffer, part],
    uniforms,
    workgroups: ctx.grid(nBlocks),
  });
  await ctx.dispatch({
    label: 'attn_decode_combine',
    key: combineKey,
    bindings: [part, out.buffer],
    uniforms,
    workgroups: ctx.grid(nQ),
  });
}

export async function attentionBidirectional(
  ctx: GpuContext,
  q: Tensor,
  k: Tensor,
  v: Tensor,
  out: Tensor,
  p: BidirectionalParams,
  tuning: AttentionTuning = {},
): Promise<void> {
  // ---- checks
  const where = 'attentionBidirectional';
  const { T, nH, hd } = p;
  checkCounts(where, { T, nH, hd }, {});
  checkHeadDim(where, hd);
  const act = checkActs(ctx, where, { q, k, v, out });
  for (const [name, t] of [
    ['q', q],
    ['k', k],
    ['v', v],
    ['out', out],
  ] as const) {
    checkRows(where, name, t, T, nH * hd);
  }
  if (out.buffer === q.buffer || out.buffer === k.buffer || out.buffer === v.buffer) {
    throw new ShapeError(`${where}: out must not alias q, k or v`);
  }
  const scale = checkScale(where, p.scale, hd);
  const hd4 = hd / 4;
  const tileKeys = tuning.tileKeys ?? defaultTileKeys(hd);
  checkTuning(where, tileKeys, defaultDecodeChunk(1), hd);
  const dyn = tuning.dynamicLoops ?? ctx.adapterSummary.software;

  // ---- pipeline key
  const key: PipelineKey = {
    shader: 'attention',
    entry: 'attn_rows',
    act,
    constants: { ...shapeConstants('rows', dyn, 1, hd4, tileKeys, 0), CAUSAL: 0 },
  };
  // ---- dispatch size
  const nBlocks = nH * Math.ceil(T / WG);
  // ---- uniforms
  const uniforms = attnUniforms({
    T,
    past: 0,
    nQ: nH,
    nKV: nH,
    kHead4: hd4,
    kRow4: nH * hd4,
    nBlocks,
    nChunks: 0,
    ctxLen: 0,
    scale,
    hd4,
    tileKeys,
    chunk: 0,
  });
  await ctx.dispatch({
    label: 'attn_bidir',
    key,
    bindings: [q.buffer, k.buffer, v.buffer, out.buffer],
    uniforms,
    workgroups: ctx.grid(nBlocks),
  });
}

// ---------------------------------------------------------------------------------------- helpers

/**
 * Override constants of attention.wgsl. On GPUs (dyn = false) they are the shape, so loops have constant
 * bounds. On CPU adapters (dyn = true) the shape is read from the uniforms and the constants are only the
 * workgroup-array capacities, fixed so that one pipeline per entry point serves every shape: those drivers
 * unroll constant-bound loops fully and took 5–25 s to compile each specialised pipeline.
 */
function shapeConstants(
  entry: 'rows' | 'decode',
  dyn: boolean,
  g: number,
  hd4: number,
  tileKeys: number,
  chunk: number,
): Record<string, number> {
  if (dyn) {
    // Capacities: K+V tiles of 16 KiB (8·tileKeys·hd ≤ 16384 is checked); decode arrays of 14 KiB.
    return entry === 'rows'
      ? { WG, G: 1, HD4: MAX_HD / 4, BK: MAX_WORKGROUP_BYTES / (8 * MAX_HD), DYN: 1 }
      : { WG, G: MAX_G, HD4: MAX_HD / 4, C: MAX_DECODE_CHUNK, DYN: 1 };
  }
  return entry === 'rows' ? { WG, G: g, HD4: hd4, BK: tileKeys, DYN: 0 } : { WG, G: g, HD4: hd4, C: chunk, DYN: 0 };
}

interface AttnUniforms {
  T: number;
  past: number;
  nQ: number;
  nKV: number;
  kHead4: number;
  kRow4: number;
  nBlocks: number;
  nChunks: number;
  ctxLen: number;
  scale: number;
  hd4: number;
  tileKeys: number;
  chunk: number;
}

/** The `Params` block of attention.wgsl: 9 u32, qscale = scale·log2(e) as f32, then hd4, bk and chunk. */
function attnUniforms(u: AttnUniforms): Uint32Array {
  const data = new Uint32Array(16);
  data.set([
    u.T,
    u.past,
    u.nQ,
    u.nKV,
    u.kHead4,
    u.kRow4,
    u.nBlocks,
    u.nChunks,
    u.ctxLen,
    0,
    u.hd4,
    u.tileKeys,
    u.chunk,
  ]);
  new Float32Array(data.buffer, 9 * 4, 1)[0] = u.scale * LOG2E;
  return data;
}

function checkCounts(where: string, positive: Record<string, number>, nonNegative: Record<string, number>): void {
  for (const [name, value] of Object.entries(positive)) {
    if (!Number.isInteger(value) || value < 1) throw new ShapeError(`${where}: ${name} = ${value} must be ≥ 1`);
  }
  for (const [name, value] of Object.entries(nonNegative)) {
    if (!Number.isInteger(value) || value < 0) throw new ShapeError(`${where}: ${name} = ${value} must be ≥ 0`);
  }
}

function checkHeadDim(where: string, hd: number): void {
  if (hd % 4 !== 0 || hd > MAX_HD) {
    throw new ShapeError(`${where}: head dim ${hd} must be a multiple of 4 and at most ${MAX_HD}`);
  }
}

function checkActs(ctx: GpuContext, where: string, tensors: Record<string, Tensor>): ActDType {
  const entries = Object.entries(tensors);
  const act = entries[0][1].dtype;
  if (act !== 'f16' && act !== 'f32') throw new ShapeError(`${where}: ${entries[0][0]} is ${act}, not an activation`);
  for (const [name, t] of entries) {
    if (t.dtype !== act) throw new ShapeError(`${where}: ${name} is ${t.dtype} but ${entries[0][0]} is ${act}`);
  }
  if (act === 'f16' && !ctx.hasF16) {
    throw new FeatureUnavailableError(`${where}: f16 activations need 'shader-f16'`, { feature: 'shader-f16' });
  }
  return act;
}

/** Checks t is [≥rows, cols]. */
export function checkRows(where: string, name: string, t: Tensor, rows: number, cols: number): void {
  if (t.shape.length !== 2 || t.shape[1] !== cols || t.shape[0] < rows) {
    throw new ShapeError(`${where}: ${name} has shape [${t.shape}], want [≥${rows}, ${cols}]`);
  }
}

function checkScale(where: string, scale: number | undefined, hd: number): number {
  const s = scale ?? 1 / Math.sqrt(hd);
  if (!Number.isFinite(s)) throw new ShapeError(`${where}: scale ${s} is not finite`);
  return s;
}

/** Workgroup memory budget (phones and SwiftShader: 16 KiB). Decode uses at most 14 KiB (G ≤ 8, hd ≤ 128,
 * C ≤ 256); attn_rows uses 8·tileKeys·hd bytes. */
const MAX_WORKGROUP_BYTES = 16384;

function checkTuning(where: string, tileKeys: number, chunk: number, hd: number): void {
  if (!Number.isInteger(tileKeys) || tileKeys < 1 || tileKeys > MAX_TILE_KEYS) {
    throw new ShapeError(`${where}: tileKeys ${tileKeys} must be in 1..${MAX_TILE_KEYS}`);
  }
  if (tileKeys * hd * 8 > MAX_WORKGROUP_BYTES) {
    throw new ShapeError(
      `${where}: tileKeys ${tileKeys} at hd ${hd} needs more than ${MAX_WORKGROUP_BYTES} bytes of workgroup memory`,
    );
  }
  if (!Number.isInteger(chunk) || chunk < 4 || chunk > MAX_DECODE_CHUNK || chunk % 4 !== 0) {
    throw new ShapeError(`${where}: decodeChunk ${chunk} must be a multiple of 4 in 4..${MAX_DECODE_CHUNK}`);
  }
}

/** Checks a K/V cache pair is [nKV, cap, hd] each with one capacity; returns the capacity. */
export function checkCaches(where: string, kCache: Tensor, vCache: Tensor, nKV: number, hd: number): number {
  for (const [name, c] of [
    ['kCache', kCache],
    ['vCache', vCache],
  ] as const) {
    if (c.shape.length !== 3 || c.shape[0] !== nKV || c.shape[2] !== hd) {
      throw new ShapeError(`${where}: ${name} has shape [${c.shape}], want [${nKV}, cap, ${hd}]`);
    }
  }
  const cap = kCache.shape[1];
  if (vCache.shape[1] !== cap) throw new ShapeError(`${where}: kCache and vCache capacities differ`);
  return cap;
}
