/**
 * TrolModel: the InternLM2 decoder with P-LoRA and TroL layer traversal, on the GPU.
 *
 * Prefill (any chunk of T > 1 new tokens, first turn or follow-up):
 *   for every layer ℓ, chunk by chunk (layer-major, so chunking never changes the result):
 *     h1 = L(x)   — pass 1: attends to the cache (past + this prompt's earlier chunks), writes its K/V there
 *     h2 = L(h1)  — pass 2: attends to the past's cached pass-1 K/V plus this prompt's pass-2 K/V (scratch)
 *     s = 0.5·tanh(h1·w_ℓ + b_ℓ) + 0.5;  x = (1−s)·h1 + s·h2           (fused, s kept for the trace)
 *   P-LoRA is added on `<image>` rows in both passes. Then final RMSNorm + head on the last row.
 * Decode (one token): every layer once, no gate, no P-LoRA, attending to the cache; its K/V appended.
 * A single-token follow-up chunk is decoded (T = 1 is never traversed, as in the official code).
 */
import { ContextOverflowError, ShapeError } from '../errors.ts';
import { createAct, readAct, uploadU32 } from '../gpu/act-io.ts';
import type { GpuContext } from '../gpu/context.ts';
import { Tensor } from '../gpu/tensor.ts';
import { attention } from '../ops/attention.ts';
import { castToF32 } from '../ops/cast.ts';
import { swiglu } from '../ops/elementwise.ts';
import { embedding } from '../ops/embedding.ts';
import { linear } from '../ops/linear.ts';
import { loraAdd } from '../ops/lora.ts';
import { rmsNorm } from '../ops/norm.ts';
import { qkvRope } from '../ops/qkv-rope.ts';
import { traversalGateMix } from '../ops/traversal.ts';
import type { TrolConfig } from './config.ts';
import { KVCache } from './kv-cache.ts';
import type { DecoderLayerWeights, LoraLinear, TrolWeights } from './weights.ts';

export interface ModelOptions {
  /** Most tokens a conversation may hold (prompt + answers). */
  contextLength?: number;
  /** Tokens per prefill chunk (bounds temporary buffers). */
  chunkSize?: number;
}

/** Intermediates recorded during prefill when asked (CLI --dump, golden tests). Layouts as the goldens. */
export interface PrefillDebug {
  embeds?: Float32Array; // [T, d]
  layer0H1?: Float32Array; // [T, d]
  layer0H2?: Float32Array; // [T, d]
  layer0Gate?: Float32Array; // [T]
  layer0Y?: Float32Array; // [T, d]
  layer0K?: Float32Array; // [nKV, T, hd] (cache rows of this prompt)
  layer0V?: Float32Array;
  layersY?: Float32Array; // [L, T, d]
}

export interface PrefillResult {
  /** f32 logits of the last position, on the GPU ([V]); valid until the next prefill/decode. */
  logits: Tensor;
  /** Gate value per layer per new token, [L][T]. */
  gates: Float32Array[];
}

interface Scratch {
  xc: Tensor; // [C, d] chunk residual stream
  h2: Tensor; // [C, d] pass-2 stream
  a: Tensor; // [C, d] normed input
  qkv: Tensor; // [C, (nQ+2nKV)·hd]
  q: Tensor; // [C, nQ·hd]
  attn: Tensor; // [C, nQ·hd]
  g1: Tensor; // [C, I]
  g3: Tensor; // [C, I]
  loraTmp: Tensor; // [C, r]
  gate: Tensor; // f32 [C]
  X: Tensor; // [capacity, d] whole-prompt residual (layer-major prefill)
  gatesAll: Tensor; // f32 [L, capacity]
  last: Tensor; // [1, d]
  logitsAct: Tensor; // [1, V]
  logits: Tensor; // f32 [V]
}

function view(t: Tensor, rows: number): Tensor {
  return new Tensor(t.buffer, t.dtype, [rows, ...t.shape.slice(1)]);
}

export class TrolModel {
  readonly cache: KVCache;
  private readonly s: Scratch;
  readonly chunkSize: number;
  private readonly owned: Tensor[];

  private constructor(
    readonly ctx: GpuContext,
    readonly cfg: TrolConfig,
    readonly w: TrolWeights,
    cache: KVCache,
    s: Scratch,
    chunkSize: number,
    owned: Tensor[],
  ) {
    this.cache = cache;
    this.s = s;
    this.chunkSize = chunkSize;
    this.owned = owned;
  }

  static async create(ctx: GpuContext, cfg: TrolConfig, w: TrolWeights, opts: ModelOptions = {}): Promise<TrolModel> {
    const capacity = opts.contextLength ?? Math.min(cfg.maxLength, 4096);
    const C = Math.min(opts.chunkSize ?? 512, capacity);
    const d = cfg.hiddenSize;
    const hd = cfg.headDim;
    const owned: Tensor[] = [];
    let cache: KVCache | null = null;
    const act = async (label: string, shape: number[]) => {
      const t = await createAct(ctx, label, shape);
      owned.push(t);
      return t;
    };
    const f32 = async (label: string, n: number) => {
      const t = new Tensor(
        await ctx.allocate(label, n * 4, GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST),
        'f32',
        [n],
      );
      owned.push(t);
      return t;
    };
    try {
      cache = await KVCache.create(ctx, cfg.numLayers, cfg.numKVHeads, hd, capacity);
      const s: Scratch = {
        xc: await act('dec.xc', [C, d]),
        h2: await act('dec.h2', [C, d]),
        a: await act('dec.a', [C, d]),
        qkv: await act('dec.qkv', [C, (cfg.numHeads + 2 * cfg.numKVHeads) * hd]),
        q: await act('dec.q', [C, cfg.numHeads * hd]),
        attn: await act('dec.attn', [C, cfg.numHeads * hd]),
        g1: await act('dec.g1', [C, cfg.intermediateSize]),
        g3: await act('dec.g3', [C, cfg.intermediateSize]),
        loraTmp: await act('dec.lora_tmp', [C, cfg.loraR]),
        gate: await f32('dec.gate', C),
        X: await act('dec.X', [capacity, d]),
        gatesAll: await f32('dec.gates_all', cfg.numLayers * capacity),
        last: await act('dec.last', [1, d]),
        logitsAct: await act('dec.logits_act', [1, cfg.vocabSize]),
        logits: await f32('dec.logits', cfg.vocabSize),
      };
      return new TrolModel(ctx, cfg, w, cache, s, C, owned);
    } catch (e) {
      for (const t of owned) t.destroy();
      cache?.destroy();
      throw e;
    }
  }

  get capacity(): number {
    return this.cache.capacity;
  }

  /** Forget the conversation (the cache is simply overwritten from position 0). */
  reset(): void {
    this.cache.length = 0;
  }

  private rowBytes(t: Tensor): number {
    return (t.shape.slice(1).reduce((a, b) => a * b, 1) * (t.dtype === 'f16' ? 2 : 4)) | 0;
  }

  private async loraLinear(
    x: Tensor,
    L: LoraLinear,
    out: Tensor,
    img: { rows: Tensor; count: number } | null,
    accumulate: boolean,
  ): Promise<void> {
    await linear(this.ctx, x, L.base, out, accumulate ? { accumulate: true } : undefined);
    if (img && img.count > 0) {
      await loraAdd(this.ctx, x, L.loraA, L.loraB, img.rows, img.count, out, this.cfg.loraScale, this.s.loraTmp);
    }
  }

  /** One decoder layer in place on x [c, d]; K/V of these tokens go to (kc, vc) at rows pos0… */
  private async layer(
    W: DecoderLayerWeights,
    x: Tensor,
    kc: Tensor,
    vc: Tensor,
    pos0: number,
    img: { rows: Tensor; count: number } | null,
  ): Promise<void> {
    const { ctx, cfg, s } = this;
    const c = x.shape[0];
    const a = view(s.a, c);
    const qkv = view(s.qkv, c);
    const q = view(s.q, c);
    const attn = view(s.attn, c);
    const g1 = view(s.g1, c);
    const g3 = view(s.g3, c);
    const dims = { nQ: cfg.numHeads, nKV: cfg.numKVHeads, hd: cfg.headDim };
    await rmsNorm(ctx, x, W.attnNorm, a, cfg.rmsNormEps);
    await this.loraLinear(a, W.wqkv, qkv, img, false);
    await qkvRope(ctx, qkv, q, kc, vc, { T: c, ...dims, theta: cfg.ropeTheta, pos0 });
    await attention(ctx, q, kc, vc, attn, { T: c, past: pos0, ...dims });
    await this.loraLinear(attn, W.wo, x, img, true);
    await rmsNorm(ctx, x, W.ffnNorm, a, cfg.rmsNormEps);
    await this.loraLinear(a, W.w1, g1, img, false);
    await this.loraLinear(a, W.w3, g3, img, false);
    await swiglu(ctx, g1, g3, g1);
    await this.loraLinear(g1, W.w2, x, img, true);
  }

  private checkIds(ids: ArrayLike<number>): void {
    const n = this.cfg.vocabSize + 1;
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i];
      if (!Number.isInteger(id) || id < 0 || id >= n) {
        throw new ShapeError(`Token id ${id} at position ${i} is outside the vocabulary (0..${n - 1})`);
      }
    }
  }

  /**
   * Prefill `ids` after whatever the cache holds. `imageFeatures` (act [P, d]) replace the embeddings of the
   * `<image>` tokens, in order; their count must equal the number of `<image>` ids.
   */
  async prefill(ids: number[], imageFeatures: Tensor | null, debug?: PrefillDebug): Promise<PrefillResult> {
    const { ctx, cfg, s, w } = this;
    const T = ids.length;
    const past = this.cache.length;
    if (T === 0) throw new ShapeError('prefill needs at least one token');
    if (past + T > this.capacity) {
      throw new ContextOverflowError(
        `The conversation needs ${past + T} tokens but the context holds ${this.capacity}.`,
        { needed: past + T, capacity: this.capacity },
      );
    }
    this.checkIds(ids);
    const imgId = cfg.vocabSize; // `<image>` is the extra embedding row
    const imgPositions: number[] = [];
    ids.forEach((id, i) => {
      if (id === imgId) imgPositions.push(i);
    });
    if (imgPositions.length > 0 && !imageFeatures) {
      throw new ShapeError(`The prompt has ${imgPositions.length} <image> tokens but no image was given`);
    }
    if (imageFeatures && imageFeatures.shape[0] !== imgPositions.length) {
      throw new ShapeError(
        `The prompt has ${imgPositions.length} <image> tokens but the image gives ${imageFeatures.shape[0]} features`,
      );
    }
    if (T === 1) {
      // A one-token chunk is a decode step in the official code (no traversal, no P-LoRA).
      await this.decode(ids[0]);
      return { logits: s.logits, gates: [] };
    }
    const d = cfg.hiddenSize;
    const rowB = this.rowBytes(s.X);
    const temps: Tensor[] = [];
    try {
      // Embeddings (+ image features at the <image> rows, copied run by run).
      const idsT = await uploadU32(ctx, 'prefill.ids', Uint32Array.from(ids));
      temps.push(idsT);
      const X = view(s.X, T);
      await embedding(ctx, w.embed, idsT, X);
      if (imageFeatures) {
        let i = 0;
        while (i < imgPositions.length) {
          let j = i;
          while (j + 1 < imgPositions.length && imgPositions[j + 1] === imgPositions[j] + 1) j++;
          ctx.copy(imageFeatures.buffer, i * rowB, s.X.buffer, imgPositions[i] * rowB, (j - i + 1) * rowB);
          i = j + 1;
        }
      }
      if (debug) debug.embeds = await readAct(ctx, X);

      // Per-chunk image rows (relative to the chunk), uploaded once.
      const C = this.chunkSize;
      const chunks: { c0: number; c: number; img: { rows: Tensor; count: number } | null }[] = [];
      for (let c0 = 0; c0 < T; c0 += C) {
        const c = Math.min(C, T - c0);
        const rows = imgPositions.filter((p) => p >= c0 && p < c0 + c).map((p) => p - c0);
        let img: { rows: Tensor; count: number } | null = null;
        if (rows.length > 0) {
          const t = await uploadU32(ctx, `prefill.img_rows${c0}`, Uint32Array.from(rows));
          temps.push(t);
          img = { rows: t, count: rows.length };
        }
        chunks.push({ c0, c, img });
      }
      if (debug) {
        debug.layersY = new Float32Array(cfg.numLayers * T * d);
        debug.layer0H1 = new Float32Array(T * d);
        debug.layer0H2 = new Float32Array(T * d);
      }

      for (let l = 0; l < cfg.numLayers; l++) {
        const W = w.layers[l];
        this.cache.copyPastToScratch(ctx, l, past);
        for (const { c0, c, img } of chunks) {
          const xc = view(s.xc, c);
          const h2 = view(s.h2, c);
          const pos0 = past + c0;
          ctx.copy(s.X.buffer, c0 * rowB, s.xc.buffer, 0, c * rowB);
          await this.layer(W, xc, this.cache.k[l], this.cache.v[l], pos0, img); // h1
          ctx.copy(s.xc.buffer, 0, s.h2.buffer, 0, c * rowB);
          await this.layer(W, h2, this.cache.scratchK, this.cache.scratchV, pos0, img); // h2
          if (debug && l === 0) {
            debug.layer0H1!.set(await readAct(ctx, xc), c0 * d);
            debug.layer0H2!.set(await readAct(ctx, h2), c0 * d);
          }
          const gate = view(s.gate, c);
          await traversalGateMix(ctx, xc, h2, W.gateW, W.gateB, xc, gate);
          ctx.copy(s.gate.buffer, 0, s.gatesAll.buffer, (l * this.capacity + c0) * 4, c * 4);
          ctx.copy(s.xc.buffer, 0, s.X.buffer, c0 * rowB, c * rowB);
          if (debug) debug.layersY!.set(await readAct(ctx, xc), (l * T + c0) * d);
        }
        ctx.submit();
      }
      this.cache.length = past + T;
      if (debug) {
        const kv = await this.cache.readLayer(0, past + T, (t) => readAct(ctx, t));
        debug.layer0K = sliceRows(kv.k, cfg.numKVHeads, past + T, cfg.headDim, past);
        debug.layer0V = sliceRows(kv.v, cfg.numKVHeads, past + T, cfg.headDim, past);
        debug.layer0Y = debug.layersY!.slice(0, T * d);
      }
      ctx.copy(s.X.buffer, (T - 1) * rowB, s.last.buffer, 0, rowB);
      await this.head();
      const gatesAll = new Float32Array(await ctx.read(s.gatesAll.buffer));
      const gates: Float32Array[] = [];
      for (let l = 0; l < cfg.numLayers; l++) gates.push(gatesAll.slice(l * this.capacity, l * this.capacity + T));
      if (debug) debug.layer0Gate = gates[0];
      return { logits: s.logits, gates };
    } finally {
      if (temps.length > 0) {
        await ctx.finish().catch(() => {});
        for (const t of temps) t.destroy();
      }
    }
  }

  /** Final RMSNorm and the head on `s.last` → f32 logits in `s.logits`. */
  private async head(): Promise<void> {
    const { ctx, cfg, s, w } = this;
    const normed = view(s.a, 1);
    await rmsNorm(ctx, s.last, w.norm, normed, cfg.rmsNormEps);
    await linear(ctx, normed, w.head, s.logitsAct);
    await castToF32(ctx, s.logitsAct, s.logits);
  }

  /** Feed one token; returns the f32 logits tensor (valid until the next call). */
  async decode(id: number): Promise<Tensor> {
    const { ctx, cfg, s, w } = this;
    const pos = this.cache.length;
    if (pos + 1 > this.capacity) {
      throw new ContextOverflowError(`The conversation reached the context length (${this.capacity} tokens).`, {
        needed: pos + 1,
        capacity: this.capacity,
      });
    }
    this.checkIds([id]);
    if (!this.decodeIds) this.decodeIds = await uploadU32(ctx, 'decode.id', new Uint32Array(1));
    const idT = this.decodeIds;
    ctx.write(idT.buffer, new Uint32Array([id]));
    const x = view(s.last, 1);
    await embedding(ctx, w.embed, idT, x);
    for (let l = 0; l < cfg.numLayers; l++) {
      await this.layer(w.layers[l], x, this.cache.k[l], this.cache.v[l], pos, null);
    }
    this.cache.length = pos + 1;
    await this.head();
    ctx.submit();
    return s.logits;
  }
  private decodeIds: Tensor | null = null;

  async readLogits(): Promise<Float32Array> {
    return new Float32Array(await this.ctx.read(this.s.logits.buffer));
  }

  destroy(): void {
    for (const t of this.owned) t.destroy();
    this.decodeIds?.destroy();
    this.cache.destroy();
  }
}

/** Rows [from, rows) of every head of an [nKV, rows, hd] array. */
function sliceRows(a: Float32Array, nKV: number, rows: number, hd: number, from: number): Float32Array {
  const n = rows - from;
  const out = new Float32Array(nKV * n * hd);
  for (let h = 0; h < nKV; h++) out.set(a.subarray((h * rows + from) * hd, (h * rows + rows) * hd), h * n * hd);
  return out;
}
