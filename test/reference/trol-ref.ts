/**
 * An independent float64 CPU reference of the whole TroL forward pass (TroL-1.8B family: InternLM2 decoder with
 * P-LoRA, CLIP vision tower, mlp2x_gelu projector, TroL layer traversal), written from
 * /work/shared/docs/trol-model.md and the tiny-trol fixture README, not from any GPU code in this repo.
 *
 * Everything is Float64Array and plain loops; slow but obviously correct. Weights come in through the small
 * `RefWeights` interface (f16 values widened exactly to f64), so any reader can feed it.
 *
 * Shapes use the paper/config symbols: T tokens in a chunk, d = hiddenSize, nQ = numHeads, nKV = numKVHeads,
 * g = nQ / nKV, hd = headDim, I = intermediateSize, V = vocabSize, L = numLayers, r = loraR,
 * Dv = vision hidden size, P = image tokens = (imgSize / patchSize)², S = imgSize, p = patchSize.
 *
 * Semantics (fixture README "Semantics the goldens pin down"):
 * - vision: patch conv (no bias, row-major patches) → [CLS; patches] + positions → pre_layrnorm → pre-LN encoder
 *   layers (q/k/v/out with bias, bidirectional softmax attention, quick_gelu MLP) → last layer, CLS dropped, no
 *   post_layernorm. Projector: Linear → GELU(erf) → Linear.
 * - decoder layer: RMSNorm → fused wqkv laid out [nKV][g q-heads, k, v][hd] → RoPE rotate_half at absolute
 *   positions → causal GQA attention over cache + chunk → wo → residual; RMSNorm → w2(silu(w1 f) ⊙ w3 f) →
 *   residual. Every linear is P-LoRA: on `<image>` rows y += (x Aᵀ) Bᵀ · alpha/r.
 * - prefill (a chunk of T > 1 tokens, fresh cache or a follow-up turn): every layer traverses twice,
 *   h1 = L(x), h2 = L(h1) with the same positions, mask and P-LoRA rows; pass 2 attends to the cached past
 *   (pass-1 K/V) plus its own chunk's pass-2 K/V (InternLM2 semantics), s = 0.5·tanh(h1·w + b) + 0.5,
 *   y = (1 − s)·h1 + s·h2. The cache keeps pass-1 K/V (projected from x, post-RoPE).
 * - decode: one token, one pass per layer, no gate, no P-LoRA, position = cache length.
 */

import { readConfig } from '../../src/model/config.ts';
import { dirFiles, fileSource } from '../../src/weights/byte-source.ts';
import { SafetensorsIndex } from '../../src/weights/safetensors.ts';
import { readTorchStateDict } from '../../src/weights/torch-pickle.ts';

// ---------------------------------------------------------------------------------------------------------------
// Interfaces

export interface RefTensor {
  shape: number[];
  data: Float64Array;
}

/**
 * Weight source by checkpoint name (`model.*`, `output.weight`, `vit.vision_tower.vision_model.*`,
 * `vision_proj.*`). The TroL gate (separate `trol_gating.pt`) is served as `trol_gating.{i}.weight` [1, d] and
 * `trol_gating.{i}.bias` [1].
 */
export interface RefWeights {
  get(name: string): RefTensor;
}

export interface RefVisionConfig {
  hiddenSize: number; // Dv
  intermediateSize: number;
  numLayers: number;
  numHeads: number;
  patchSize: number; // p
  layerNormEps: number;
}

/** Same fields as the engine's TrolConfig (src/model/config.ts), so either can be passed. */
export interface RefConfig {
  hiddenSize: number; // d
  numLayers: number; // L
  numHeads: number; // nQ
  numKVHeads: number; // nKV
  headDim: number; // hd
  intermediateSize: number; // I
  vocabSize: number; // V (the <image> id; tok_embeddings has V + 1 rows)
  rmsNormEps: number;
  ropeTheta: number;
  imgSize: number; // S
  loraR: number;
  loraAlpha: number;
  loraScale: number; // alpha / r
  vision: RefVisionConfig;
  imageTokens: number; // P
}

export type GateMode = 'per-layer' | 'last';

export interface PrefillOptions {
  /** 'per-layer': gate i for layer i (the paper, the goldens). 'last': entry L−1 for all (official loader). */
  gateMode: GateMode;
}

export interface PrefillLayer0 {
  h1: Float64Array; // [T, d]
  h2: Float64Array; // [T, d]
  gate: Float64Array; // [T]
  y: Float64Array; // [T, d]
  k: Float64Array; // [nKV, T, hd] pass-1 keys of this chunk, post-RoPE
  v: Float64Array; // [nKV, T, hd] pass-1 values of this chunk
}

export interface PrefillResult {
  logitsLast: Float64Array; // [V] at the chunk's last token
  gates: Float64Array[]; // L × [T]
  layersY: Float64Array[]; // L × [T·d] mixed output of every layer
  layer0: PrefillLayer0;
}

// ---------------------------------------------------------------------------------------------------------------
// Scalar math

/** erf(x) to ~1e-16: erf(x) = 2/√π · e^{−x²} · Σ 2ⁿ x^{2n+1} / (1·3·…·(2n+1)) (all terms positive). */
export function erf(x: number): number {
  const ax = Math.abs(x);
  if (ax >= 6) return Math.sign(x); // erfc(6) ≈ 2e−17
  let term = ax;
  let sum = ax;
  const x2 = ax * ax;
  for (let n = 0; n < 1000; n++) {
    term *= (2 * x2) / (2 * n + 3);
    sum += term;
    if (term < sum * 1e-17) break;
  }
  const r = (2 / Math.sqrt(Math.PI)) * Math.exp(-x2) * sum;
  return x < 0 ? -r : r;
}

const geluErf = (x: number): number => 0.5 * x * (1 + erf(x / Math.SQRT2));
const quickGelu = (x: number): number => x / (1 + Math.exp(-1.702 * x));
const silu = (x: number): number => x / (1 + Math.exp(-x));

// ---------------------------------------------------------------------------------------------------------------
// Tensor helpers (row-major, plain loops)

/** y[t, o] = Σ_i x[t, i]·W[o, i] (+ b[o]); x [T, nIn], W [nOut, nIn]. */
function linear(
  x: Float64Array,
  T: number,
  nIn: number,
  W: Float64Array,
  nOut: number,
  b?: Float64Array,
): Float64Array {
  const y = new Float64Array(T * nOut);
  for (let t = 0; t < T; t++) {
    const xo = t * nIn;
    for (let o = 0; o < nOut; o++) {
      const wo = o * nIn;
      let s = b ? b[o] : 0;
      for (let i = 0; i < nIn; i++) s += x[xo + i] * W[wo + i];
      y[t * nOut + o] = s;
    }
  }
  return y;
}

/** RMSNorm over rows: x / √(mean(x²) + eps) · w. */
function rmsNorm(x: Float64Array, T: number, n: number, w: Float64Array, eps: number): Float64Array {
  const y = new Float64Array(T * n);
  for (let t = 0; t < T; t++) {
    let ss = 0;
    for (let i = 0; i < n; i++) ss += x[t * n + i] ** 2;
    const inv = 1 / Math.sqrt(ss / n + eps);
    for (let i = 0; i < n; i++) y[t * n + i] = x[t * n + i] * inv * w[i];
  }
  return y;
}

/** LayerNorm over rows (biased variance): (x − μ) / √(σ² + eps) · w + b. */
function layerNorm(x: Float64Array, T: number, n: number, w: Float64Array, b: Float64Array, eps: number): Float64Array {
  const y = new Float64Array(T * n);
  for (let t = 0; t < T; t++) {
    let mean = 0;
    for (let i = 0; i < n; i++) mean += x[t * n + i];
    mean /= n;
    let v = 0;
    for (let i = 0; i < n; i++) v += (x[t * n + i] - mean) ** 2;
    const inv = 1 / Math.sqrt(v / n + eps);
    for (let i = 0; i < n; i++) y[t * n + i] = (x[t * n + i] - mean) * inv * w[i] + b[i];
  }
  return y;
}

function addInPlace(a: Float64Array, b: Float64Array): Float64Array {
  for (let i = 0; i < a.length; i++) a[i] += b[i];
  return a;
}

function softmaxInPlace(s: Float64Array, n: number): void {
  let m = Number.NEGATIVE_INFINITY;
  for (let i = 0; i < n; i++) m = Math.max(m, s[i]);
  let sum = 0;
  for (let i = 0; i < n; i++) {
    s[i] = Math.exp(s[i] - m);
    sum += s[i];
  }
  for (let i = 0; i < n; i++) s[i] /= sum;
}

function shapeEq(a: number[], b: number[]): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}

// ---------------------------------------------------------------------------------------------------------------
// Model

const VIT = 'vit.vision_tower.vision_model';

/** One decoder layer's per-token K/V cache: rows of [nKV·hd] (post-RoPE keys), appended in position order. */
export interface LayerCache {
  k: Float64Array[];
  v: Float64Array[];
}

export interface LayerOut {
  out: Float64Array; // [T, d]
  k: Float64Array[]; // T rows of [nKV·hd], post-RoPE
  v: Float64Array[]; // T rows of [nKV·hd]
}

export class RefModel {
  readonly config: RefConfig;
  private readonly weights: RefWeights;
  private readonly cache = new Map<string, Float64Array>();
  /** inv_freq[i] = θ^(−2i/hd), i < hd/2. */
  private readonly invFreq: Float64Array;

  constructor(config: RefConfig, weights: RefWeights) {
    this.config = config;
    this.weights = weights;
    const { headDim: hd, numHeads, numKVHeads } = config;
    if (numHeads % numKVHeads !== 0) throw new Error(`numHeads ${numHeads} not a multiple of numKVHeads`);
    if (hd % 2 !== 0) throw new Error(`headDim ${hd} must be even for rotate_half RoPE`);
    this.invFreq = new Float64Array(hd / 2);
    for (let i = 0; i < hd / 2; i++) this.invFreq[i] = 1 / config.ropeTheta ** ((2 * i) / hd);
    this.checkAllShapes();
  }

  get imageTokenId(): number {
    return this.config.vocabSize;
  }

  newSession(): RefSession {
    return new RefSession(this);
  }

  /** A weight with its shape checked against the config. */
  w(name: string, shape: number[]): Float64Array {
    const hit = this.cache.get(name);
    if (hit) return hit;
    const t = this.weights.get(name);
    if (!shapeEq(t.shape, shape)) {
      throw new Error(`weight ${name}: shape [${t.shape}] but the config implies [${shape}]`);
    }
    this.cache.set(name, t.data);
    return t.data;
  }

  /** Touch every tensor once so a wrong name or shape fails at load, not halfway through a forward. */
  private checkAllShapes(): void {
    const c = this.config;
    const v = c.vision;
    this.w('model.tok_embeddings.weight', [c.vocabSize + 1, c.hiddenSize]);
    this.w('model.norm.weight', [c.hiddenSize]);
    this.w('output.weight', [c.vocabSize, c.hiddenSize]);
    for (let l = 0; l < c.numLayers; l++) {
      this.layerWeights(l);
      this.gateWeights(l);
    }
    this.w(`${VIT}.embeddings.class_embedding`, [v.hiddenSize]);
    this.w(`${VIT}.embeddings.patch_embedding.weight`, [v.hiddenSize, 3, v.patchSize, v.patchSize]);
    this.w(`${VIT}.embeddings.position_embedding.weight`, [c.imageTokens + 1, v.hiddenSize]);
    this.w(`${VIT}.pre_layrnorm.weight`, [v.hiddenSize]);
    this.w(`${VIT}.pre_layrnorm.bias`, [v.hiddenSize]);
    for (let j = 0; j < v.numLayers; j++) this.vitLayerWeights(j);
    this.w('vision_proj.0.weight', [c.hiddenSize, v.hiddenSize]);
    this.w('vision_proj.0.bias', [c.hiddenSize]);
    this.w('vision_proj.2.weight', [c.hiddenSize, c.hiddenSize]);
    this.w('vision_proj.2.bias', [c.hiddenSize]);
  }

  private pLoraWeights(prefix: string, nOut: number, nIn: number) {
    const r = this.config.loraR;
    return {
      nIn,
      nOut,
      W: this.w(`${prefix}.ffn.weight`, [nOut, nIn]),
      A: this.w(`${prefix}.lora_A.weight`, [r, nIn]),
      B: this.w(`${prefix}.lora_B.weight`, [nOut, r]),
    };
  }

  layerWeights(l: number) {
    const c = this.config;
    const d = c.hiddenSize;
    const p = `model.layers.${l}`;
    const qkvOut = (c.numHeads + 2 * c.numKVHeads) * c.headDim;
    return {
      attnNorm: this.w(`${p}.attention_norm.weight`, [d]),
      wqkv: this.pLoraWeights(`${p}.attention.wqkv`, qkvOut, d),
      wo: this.pLoraWeights(`${p}.attention.wo`, d, c.numHeads * c.headDim),
      ffnNorm: this.w(`${p}.ffn_norm.weight`, [d]),
      w1: this.pLoraWeights(`${p}.feed_forward.w1`, c.intermediateSize, d),
      w3: this.pLoraWeights(`${p}.feed_forward.w3`, c.intermediateSize, d),
      w2: this.pLoraWeights(`${p}.feed_forward.w2`, d, c.intermediateSize),
    };
  }

  gateWeights(i: number) {
    const d = this.config.hiddenSize;
    return { w: this.w(`trol_gating.${i}.weight`, [1, d]), b: this.w(`trol_gating.${i}.bias`, [1])[0] };
  }

  vitLayerWeights(j: number) {
    const v = this.config.vision;
    const D = v.hiddenSize;
    const p = `${VIT}.encoder.layers.${j}`;
    const lin = (name: string, nOut: number, nIn: number) => ({
      W: this.w(`${p}.${name}.weight`, [nOut, nIn]),
      b: this.w(`${p}.${name}.bias`, [nOut]),
    });
    return {
      ln1w: this.w(`${p}.layer_norm1.weight`, [D]),
      ln1b: this.w(`${p}.layer_norm1.bias`, [D]),
      q: lin('self_attn.q_proj', D, D),
      k: lin('self_attn.k_proj', D, D),
      v: lin('self_attn.v_proj', D, D),
      o: lin('self_attn.out_proj', D, D),
      ln2w: this.w(`${p}.layer_norm2.weight`, [D]),
      ln2b: this.w(`${p}.layer_norm2.bias`, [D]),
      fc1: lin('mlp.fc1', v.intermediateSize, D),
      fc2: lin('mlp.fc2', D, v.intermediateSize),
    };
  }

  // ---- decoder pieces -------------------------------------------------------------------------------------

  /** P-LoRA linear: y = x Wᵀ; on rows with imMask[t], y += (x Aᵀ) Bᵀ · alpha/r. imMask null = no image rows. */
  pLinear(
    x: Float64Array,
    T: number,
    lw: { W: Float64Array; A: Float64Array; B: Float64Array; nIn: number; nOut: number },
    imMask: boolean[] | null,
  ): Float64Array {
    const { nIn, nOut } = lw;
    const y = linear(x, T, nIn, lw.W, nOut);
    if (!imMask) return y;
    const r = this.config.loraR;
    const scale = this.config.loraScale;
    const ax = new Float64Array(r);
    for (let t = 0; t < T; t++) {
      if (!imMask[t]) continue;
      for (let j = 0; j < r; j++) {
        let s = 0;
        for (let i = 0; i < nIn; i++) s += x[t * nIn + i] * lw.A[j * nIn + i];
        ax[j] = s;
      }
      for (let o = 0; o < nOut; o++) {
        let s = 0;
        for (let j = 0; j < r; j++) s += ax[j] * lw.B[o * r + j];
        y[t * nOut + o] += s * scale;
      }
    }
    return y;
  }

  /** rotate_half RoPE in place on one head vector at offset `off`: out[j] = x[j]cos − x[j+h]sin, … */
  private rope(buf: Float64Array, off: number, pos: number): void {
    const h = this.config.headDim / 2;
    for (let j = 0; j < h; j++) {
      const ang = pos * this.invFreq[j];
      const c = Math.cos(ang);
      const s = Math.sin(ang);
      const a = buf[off + j];
      const b = buf[off + j + h];
      buf[off + j] = a * c - b * s;
      buf[off + j + h] = b * c + a * s;
    }
  }

  /**
   * One InternLM2 decoder layer on a chunk x [T, d] at positions pos0..pos0+T−1, attending causally to
   * `past` (K/V rows of positions 0..pos0−1) and to the chunk's own K/V. Returns the output and the chunk's K/V.
   */
  decoderLayer(l: number, x: Float64Array, T: number, pos0: number, past: LayerCache, imMask: boolean[] | null) {
    const c = this.config;
    const d = c.hiddenSize;
    const hd = c.headDim;
    const nQ = c.numHeads;
    const nKV = c.numKVHeads;
    const g = nQ / nKV;
    const lw = this.layerWeights(l);
    if (past.k.length !== pos0) throw new Error(`cache holds ${past.k.length} rows but pos0 = ${pos0}`);

    // attention block
    const a = rmsNorm(x, T, d, lw.attnNorm, c.rmsNormEps);
    const qkv = this.pLinear(a, T, lw.wqkv, imMask); // [T, nKV, g + 2, hd]
    const qkvW = (g + 2) * hd * nKV;
    const q = new Float64Array(T * nQ * hd); // [T, nQ, hd], query head = kv·g + gi
    const kRows: Float64Array[] = [];
    const vRows: Float64Array[] = [];
    for (let t = 0; t < T; t++) {
      const kr = new Float64Array(nKV * hd);
      const vr = new Float64Array(nKV * hd);
      for (let kv = 0; kv < nKV; kv++) {
        const base = t * qkvW + kv * (g + 2) * hd;
        for (let gi = 0; gi < g; gi++) {
          const qo = (t * nQ + kv * g + gi) * hd;
          for (let e = 0; e < hd; e++) q[qo + e] = qkv[base + gi * hd + e];
          this.rope(q, qo, pos0 + t);
        }
        for (let e = 0; e < hd; e++) {
          kr[kv * hd + e] = qkv[base + g * hd + e];
          vr[kv * hd + e] = qkv[base + (g + 1) * hd + e];
        }
        this.rope(kr, kv * hd, pos0 + t);
      }
      kRows.push(kr);
      vRows.push(vr);
    }
    const keys = past.k.concat(kRows);
    const vals = past.v.concat(vRows);
    const attn = new Float64Array(T * nQ * hd); // [T, nQ·hd]
    const scale = 1 / Math.sqrt(hd);
    const scores = new Float64Array(pos0 + T);
    for (let t = 0; t < T; t++) {
      const n = pos0 + t + 1; // causal: keys at positions ≤ pos0 + t
      for (let h = 0; h < nQ; h++) {
        const kv = Math.floor(h / g);
        const qo = (t * nQ + h) * hd;
        for (let j = 0; j < n; j++) {
          let s = 0;
          for (let e = 0; e < hd; e++) s += q[qo + e] * keys[j][kv * hd + e];
          scores[j] = s * scale;
        }
        softmaxInPlace(scores, n);
        for (let e = 0; e < hd; e++) {
          let s = 0;
          for (let j = 0; j < n; j++) s += scores[j] * vals[j][kv * hd + e];
          attn[qo + e] = s;
        }
      }
    }
    const h = addInPlace(this.pLinear(attn, T, lw.wo, imMask), x);

    // feed-forward block
    const f = rmsNorm(h, T, d, lw.ffnNorm, c.rmsNormEps);
    const g1 = this.pLinear(f, T, lw.w1, imMask);
    const u3 = this.pLinear(f, T, lw.w3, imMask);
    for (let i = 0; i < g1.length; i++) g1[i] = silu(g1[i]) * u3[i];
    const out = addInPlace(this.pLinear(g1, T, lw.w2, imMask), h);
    return { out, k: kRows, v: vRows } satisfies LayerOut;
  }

  /** Embedding rows for ids; `<image>` rows (id = V) take the next row of imageFeatures [P·k, d], in order. */
  embed(ids: number[], imageFeatures?: Float64Array): Float64Array {
    const d = this.config.hiddenSize;
    const V = this.config.vocabSize;
    const table = this.w('model.tok_embeddings.weight', [V + 1, d]);
    const nImg = ids.filter((id) => id === V).length;
    if (imageFeatures && imageFeatures.length !== nImg * d) {
      throw new Error(`imageFeatures has ${imageFeatures.length / d} rows but the ids hold ${nImg} <image> tokens`);
    }
    if (!imageFeatures && nImg > 0) throw new Error(`${nImg} <image> tokens but no imageFeatures`);
    const x = new Float64Array(ids.length * d);
    let img = 0;
    ids.forEach((id, t) => {
      if (!Number.isInteger(id) || id < 0 || id > V) throw new Error(`token id ${id} outside [0, ${V}]`);
      if (id === V && imageFeatures) {
        x.set(imageFeatures.subarray(img * d, (img + 1) * d), t * d);
        img++;
      } else {
        x.set(table.subarray(id * d, (id + 1) * d), t * d);
      }
    });
    return x;
  }

  /** Final RMSNorm + untied head on one row. */
  logits(row: Float64Array): Float64Array {
    const c = this.config;
    const n = rmsNorm(row, 1, c.hiddenSize, this.w('model.norm.weight', [c.hiddenSize]), c.rmsNormEps);
    return linear(n, 1, c.hiddenSize, this.w('output.weight', [c.vocabSize, c.hiddenSize]), c.vocabSize);
  }

  // ---- vision ---------------------------------------------------------------------------------------------

  /** CLIP tower on pixels [3, S, S] → last-layer hidden states without CLS [P, Dv] (no post_layernorm). */
  visionTower(pixels: ArrayLike<number>): Float64Array {
    const c = this.config;
    const v = c.vision;
    const D = v.hiddenSize;
    const S = c.imgSize;
    const p = v.patchSize;
    const G = S / p;
    const P = G * G;
    if (!Number.isInteger(G) || P !== c.imageTokens) throw new Error(`imgSize ${S} / patch ${p} ≠ ${c.imageTokens}`);
    if (pixels.length !== 3 * S * S) throw new Error(`pixels has ${pixels.length} values, want 3·${S}·${S}`);
    const conv = this.w(`${VIT}.embeddings.patch_embedding.weight`, [D, 3, p, p]);
    const cls = this.w(`${VIT}.embeddings.class_embedding`, [D]);
    const pos = this.w(`${VIT}.embeddings.position_embedding.weight`, [P + 1, D]);
    const N = P + 1;
    let x: Float64Array = new Float64Array(N * D); // [N, D]
    for (let o = 0; o < D; o++) x[o] = cls[o] + pos[o];
    for (let py = 0; py < G; py++) {
      for (let px = 0; px < G; px++) {
        const t = 1 + py * G + px;
        for (let o = 0; o < D; o++) {
          let s = 0;
          for (let ch = 0; ch < 3; ch++) {
            for (let ky = 0; ky < p; ky++) {
              for (let kx = 0; kx < p; kx++) {
                const pix = pixels[(ch * S + py * p + ky) * S + px * p + kx];
                s += pix * conv[((o * 3 + ch) * p + ky) * p + kx];
              }
            }
          }
          x[t * D + o] = s + pos[t * D + o];
        }
      }
    }
    const eps = v.layerNormEps;
    x = layerNorm(x, N, D, this.w(`${VIT}.pre_layrnorm.weight`, [D]), this.w(`${VIT}.pre_layrnorm.bias`, [D]), eps);
    const H = v.numHeads;
    const hd = D / H;
    const scale = 1 / Math.sqrt(hd);
    const scores = new Float64Array(N);
    for (let j = 0; j < v.numLayers; j++) {
      const lw = this.vitLayerWeights(j);
      const a = layerNorm(x, N, D, lw.ln1w, lw.ln1b, eps);
      const q = linear(a, N, D, lw.q.W, D, lw.q.b);
      const k = linear(a, N, D, lw.k.W, D, lw.k.b);
      const vv = linear(a, N, D, lw.v.W, D, lw.v.b);
      const attn = new Float64Array(N * D);
      for (let h = 0; h < H; h++) {
        for (let t = 0; t < N; t++) {
          for (let u = 0; u < N; u++) {
            let s = 0;
            for (let e = 0; e < hd; e++) s += q[t * D + h * hd + e] * k[u * D + h * hd + e];
            scores[u] = s * scale;
          }
          softmaxInPlace(scores, N);
          for (let e = 0; e < hd; e++) {
            let s = 0;
            for (let u = 0; u < N; u++) s += scores[u] * vv[u * D + h * hd + e];
            attn[t * D + h * hd + e] = s;
          }
        }
      }
      x = addInPlace(linear(attn, N, D, lw.o.W, D, lw.o.b), x);
      const m = layerNorm(x, N, D, lw.ln2w, lw.ln2b, eps);
      const f1 = linear(m, N, D, lw.fc1.W, v.intermediateSize, lw.fc1.b);
      for (let i = 0; i < f1.length; i++) f1[i] = quickGelu(f1[i]);
      x = addInPlace(linear(f1, N, v.intermediateSize, lw.fc2.W, D, lw.fc2.b), x);
    }
    return x.slice(D); // drop CLS
  }

  /** mlp2x_gelu projector: Linear(Dv→d) → GELU(erf) → Linear(d→d); [P, Dv] → [P, d]. */
  project(visionOut: Float64Array): Float64Array {
    const c = this.config;
    const D = c.vision.hiddenSize;
    const d = c.hiddenSize;
    const P = visionOut.length / D;
    const h = linear(visionOut, P, D, this.w('vision_proj.0.weight', [d, D]), d, this.w('vision_proj.0.bias', [d]));
    for (let i = 0; i < h.length; i++) h[i] = geluErf(h[i]);
    return linear(h, P, d, this.w('vision_proj.2.weight', [d, d]), d, this.w('vision_proj.2.bias', [d]));
  }
}

/** Vision tower + projector on pixel values [3, S, S] (already resized and normalised). */
export function refVision(model: RefModel, pixels: Float32Array): { visionOut: Float64Array; projOut: Float64Array } {
  const visionOut = model.visionTower(pixels);
  return { visionOut, projOut: model.project(visionOut) };
}

// ---------------------------------------------------------------------------------------------------------------
// Session (KV cache, prefill with traversal, decode)

export class RefSession {
  readonly model: RefModel;
  private readonly layers: LayerCache[];

  constructor(model: RefModel) {
    this.model = model;
    this.layers = Array.from({ length: model.config.numLayers }, () => ({ k: [], v: [] }));
  }

  /** Tokens in the cache (= the position of the next token). */
  get length(): number {
    return this.layers[0].k.length;
  }

  /** Layer l's cached keys (post-RoPE) or values as [nKV, length, hd]. */
  cached(l: number, which: 'k' | 'v'): Float64Array {
    return toHeadMajor(this.layers[l][which], this.model.config.numKVHeads, this.model.config.headDim);
  }

  /**
   * Prefill a chunk (the first prompt, or a follow-up turn on a non-empty cache: positions continue).
   * T > 1: TroL traversal on every layer. T = 1: the official code runs the layer once (no gate); that case is
   * reported as gate 0 and h2 = h1 (y = h1), with P-LoRA still on `<image>` rows.
   */
  prefill(
    ids: number[],
    imageFeatures?: Float64Array,
    opts: PrefillOptions = { gateMode: 'per-layer' },
  ): PrefillResult {
    const m = this.model;
    const c = m.config;
    const d = c.hiddenSize;
    const T = ids.length;
    if (T === 0) throw new Error('prefill needs at least one token');
    let x = m.embed(ids, imageFeatures);
    const imMask = ids.map((id) => id === m.imageTokenId);
    const mask = imMask.some(Boolean) ? imMask : null;
    const pos0 = this.length;
    const gates: Float64Array[] = [];
    const layersY: Float64Array[] = [];
    let layer0: PrefillLayer0 | undefined;
    for (let l = 0; l < c.numLayers; l++) {
      const past = this.layers[l];
      const p1 = m.decoderLayer(l, x, T, pos0, past, mask);
      const h1 = p1.out;
      const gate = new Float64Array(T);
      let h2 = h1;
      let y = h1;
      if (T > 1) {
        h2 = m.decoderLayer(l, h1, T, pos0, past, mask).out; // pass-2 K/V discarded
        const gw = m.gateWeights(opts.gateMode === 'last' ? c.numLayers - 1 : l);
        y = new Float64Array(T * d);
        for (let t = 0; t < T; t++) {
          let s = gw.b;
          for (let i = 0; i < d; i++) s += h1[t * d + i] * gw.w[i];
          const sg = 0.5 * Math.tanh(s) + 0.5;
          gate[t] = sg;
          for (let i = 0; i < d; i++) y[t * d + i] = (1 - sg) * h1[t * d + i] + sg * h2[t * d + i];
        }
      }
      past.k.push(...p1.k);
      past.v.push(...p1.v);
      gates.push(gate);
      layersY.push(y);
      if (l === 0) {
        const k = toHeadMajor(p1.k, c.numKVHeads, c.headDim);
        const v = toHeadMajor(p1.v, c.numKVHeads, c.headDim);
        layer0 = { h1, h2, gate, y, k, v };
      }
      x = y;
    }
    return { logitsLast: m.logits(x.slice((T - 1) * d)), gates, layersY, layer0: layer0! };
  }

  /** One generated token: one pass per layer, no gate, no P-LoRA, position = cache length. */
  decode(id: number): Float64Array {
    const m = this.model;
    let x = m.embed([id]);
    const pos0 = this.length;
    for (let l = 0; l < m.config.numLayers; l++) {
      const past = this.layers[l];
      const r = m.decoderLayer(l, x, 1, pos0, past, null);
      past.k.push(...r.k);
      past.v.push(...r.v);
      x = r.out;
    }
    return m.logits(x);
  }
}

/** Token-major rows of [nKV·hd] → [nKV, T, hd]. */
function toHeadMajor(rows: Float64Array[], nKV: number, hd: number): Float64Array {
  const T = rows.length;
  const out = new Float64Array(nKV * T * hd);
  for (let t = 0; t < T; t++) {
    for (let kv = 0; kv < nKV; kv++) {
      for (let e = 0; e < hd; e++) out[(kv * T + t) * hd + e] = rows[t][kv * hd + e];
    }
  }
  return out;
}

/** Greedy argmax, first index on ties. */
export function argmax(v: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < v.length; i++) if (v[i] > v[best]) best = i;
  return best;
}

/** A tensor map as RefWeights (a missing name throws). */
export function mapWeights(tensors: Map<string, RefTensor>, label = 'weights'): RefWeights {
  return {
    get(name) {
      const t = tensors.get(name);
      if (!t) throw new Error(`weight ${name} not in ${label}`);
      return t;
    },
  };
}

/**
 * Every tensor of a checkpoint folder through the engine's readers (config.json via readConfig,
 * model.safetensors via SafetensorsIndex, trol_gating.pt via readTorchStateDict as `trol_gating.*`), widened to
 * f64. test/reference/ref-files.ts holds independent test-only readers that the tests check these against.
 */
export async function loadRefTensors(dir: string): Promise<{ config: RefConfig; tensors: Map<string, RefTensor> }> {
  const files = dirFiles(dir);
  const config = await readConfig(files);
  const st = await SafetensorsIndex.open(files);
  const tensors = new Map<string, RefTensor>();
  for (const [name, info] of st.tensors) {
    tensors.set(name, { shape: [...info.shape], data: Float64Array.from(await st.readF32(name)) });
  }
  const gate = await readTorchStateDict(await fileSource(`${dir}/trol_gating.pt`));
  for (const [k, t] of gate) tensors.set(`trol_gating.${k}`, { shape: [...t.shape], data: Float64Array.from(t.data) });
  return { config, tensors };
}

/** Load a checkpoint folder (config.json, model.safetensors, trol_gating.pt) into a reference model. */
export async function loadRefModel(dir: string): Promise<RefModel> {
  const { config, tensors } = await loadRefTensors(dir);
  return new RefModel(config, mapWeights(tensors, dir));
}
