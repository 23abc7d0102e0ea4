/**
 * The checkpoint's weight map as data: every tensor name in `model.safetensors` (docs/trol-model.md §3.2) and
 * in `trol_gating.pt` (§2.4) with its shape, derived from the config. Used on load to check every name and
 * shape before anything is uploaded.
 *
 * Symbols: d = hiddenSize, hd = headDim, nQ/nKV heads, I = intermediateSize, V = vocabSize, r = loraR,
 * Dv = vision width, P = image tokens, p = patch side, C = channels.
 */
import { WeightsFormatError } from '../errors.ts';
import type { TrolConfig } from './config.ts';

export interface ExpectedTensor {
  name: string;
  shape: number[];
  /** Present in the released checkpoint but not needed by inference (e.g. the ViT post_layernorm). */
  optional?: boolean;
}

/** The five P-LoRA-wrapped linears of a decoder layer: [path, out features, in features]. */
function decoderLinears(c: TrolConfig): [string, number, number][] {
  const d = c.hiddenSize;
  const qkv = (c.numHeads + 2 * c.numKVHeads) * c.headDim;
  return [
    ['attention.wqkv', qkv, d],
    ['attention.wo', d, d],
    ['feed_forward.w1', c.intermediateSize, d],
    ['feed_forward.w3', c.intermediateSize, d],
    ['feed_forward.w2', d, c.intermediateSize],
  ];
}

/** Every tensor of `model.safetensors`, in a stable order. */
export function expectedTensors(cfg: TrolConfig): ExpectedTensor[] {
  const d = cfg.hiddenSize;
  const r = cfg.loraR;
  const out: ExpectedTensor[] = [{ name: 'model.tok_embeddings.weight', shape: [cfg.vocabSize + 1, d] }];
  for (let i = 0; i < cfg.numLayers; i++) {
    const L = `model.layers.${i}`;
    out.push({ name: `${L}.attention_norm.weight`, shape: [d] });
    out.push({ name: `${L}.ffn_norm.weight`, shape: [d] });
    for (const [path, n, k] of decoderLinears(cfg)) {
      out.push({ name: `${L}.${path}.ffn.weight`, shape: [n, k] });
      if (cfg.bias) out.push({ name: `${L}.${path}.ffn.bias`, shape: [n] });
      out.push({ name: `${L}.${path}.lora_A.weight`, shape: [r, k] });
      out.push({ name: `${L}.${path}.lora_B.weight`, shape: [n, r] });
    }
  }
  out.push({ name: 'model.norm.weight', shape: [d] });
  if (!cfg.tieWordEmbeddings) out.push({ name: 'output.weight', shape: [cfg.vocabSize, d] });

  const v = cfg.vision;
  const Dv = v.hiddenSize;
  const V = 'vit.vision_tower.vision_model';
  out.push({ name: `${V}.embeddings.class_embedding`, shape: [Dv] });
  out.push({ name: `${V}.embeddings.patch_embedding.weight`, shape: [Dv, v.numChannels, v.patchSize, v.patchSize] });
  out.push({ name: `${V}.embeddings.position_embedding.weight`, shape: [cfg.imageTokens + 1, Dv] });
  out.push({ name: `${V}.pre_layrnorm.weight`, shape: [Dv] });
  out.push({ name: `${V}.pre_layrnorm.bias`, shape: [Dv] });
  for (let j = 0; j < v.numLayers; j++) {
    const E = `${V}.encoder.layers.${j}`;
    for (const p of ['q_proj', 'k_proj', 'v_proj', 'out_proj']) {
      out.push({ name: `${E}.self_attn.${p}.weight`, shape: [Dv, Dv] });
      out.push({ name: `${E}.self_attn.${p}.bias`, shape: [Dv] });
    }
    for (const n of ['layer_norm1', 'layer_norm2']) {
      out.push({ name: `${E}.${n}.weight`, shape: [Dv] });
      out.push({ name: `${E}.${n}.bias`, shape: [Dv] });
    }
    out.push({ name: `${E}.mlp.fc1.weight`, shape: [v.intermediateSize, Dv] });
    out.push({ name: `${E}.mlp.fc1.bias`, shape: [v.intermediateSize] });
    out.push({ name: `${E}.mlp.fc2.weight`, shape: [Dv, v.intermediateSize] });
    out.push({ name: `${E}.mlp.fc2.bias`, shape: [Dv] });
  }
  out.push({ name: `${V}.post_layernorm.weight`, shape: [Dv], optional: true });
  out.push({ name: `${V}.post_layernorm.bias`, shape: [Dv], optional: true });

  out.push({ name: 'vision_proj.0.weight', shape: [d, Dv] });
  out.push({ name: 'vision_proj.0.bias', shape: [d] });
  out.push({ name: 'vision_proj.2.weight', shape: [d, d] });
  out.push({ name: 'vision_proj.2.bias', shape: [d] });
  return out;
}

/** The TroL gate file: one `nn.Linear(d, 1)` per layer. */
export function expectedGateTensors(cfg: TrolConfig): ExpectedTensor[] {
  const out: ExpectedTensor[] = [];
  for (let i = 0; i < cfg.numLayers; i++) {
    out.push({ name: `${i}.weight`, shape: [1, cfg.hiddenSize] });
    out.push({ name: `${i}.bias`, shape: [1] });
  }
  return out;
}

export interface TensorCheck {
  /** Required names not found. */
  missing: string[];
  /** Found with another shape. */
  wrongShape: { name: string; expected: number[]; found: number[] }[];
  /** Found but not expected (ignored by the engine). */
  extra: string[];
}

/** Compares found tensors with the expected list; no throwing. */
export function compareTensors(found: Map<string, { shape: number[] }>, expected: ExpectedTensor[]): TensorCheck {
  const res: TensorCheck = { missing: [], wrongShape: [], extra: [] };
  const want = new Set<string>();
  for (const e of expected) {
    want.add(e.name);
    const f = found.get(e.name);
    if (!f) {
      if (!e.optional) res.missing.push(e.name);
    } else if (f.shape.length !== e.shape.length || f.shape.some((s, i) => s !== e.shape[i])) {
      res.wrongShape.push({ name: e.name, expected: e.shape, found: f.shape });
    }
  }
  for (const name of found.keys()) if (!want.has(name)) res.extra.push(name);
  return res;
}

/**
 * Throws a `WeightsFormatError` naming `file` and the first few problems when a required tensor is missing or
 * has the wrong shape. Extra tensors are allowed. Returns the comparison for logging.
 */
export function checkTensors(
  found: Map<string, { shape: number[] }>,
  expected: ExpectedTensor[],
  file: string,
): TensorCheck {
  const res = compareTensors(found, expected);
  if (res.missing.length || res.wrongShape.length) {
    const parts: string[] = [];
    if (res.missing.length) {
      parts.push(
        `${res.missing.length} missing (${res.missing.slice(0, 5).join(', ')}${res.missing.length > 5 ? ', …' : ''})`,
      );
    }
    if (res.wrongShape.length) {
      const s = res.wrongShape.slice(0, 5).map((w) => `${w.name}: [${w.found}] instead of [${w.expected}]`);
      parts.push(
        `${res.wrongShape.length} with the wrong shape (${s.join('; ')}${res.wrongShape.length > 5 ? '; …' : ''})`,
      );
    }
    throw new WeightsFormatError(`${file}: does not match config.json: ${parts.join('; ')}`, {
      file,
      missing: res.missing,
      wrongShape: res.wrongShape.map((w) => w.name),
    });
  }
  return res;
}
