/**
 * The model configuration, read from a HF-style `config.json` (InternLM2 keys + TroL extension keys).
 * Field comments give the paper/spec symbol (docs/trol-model.md §1.2–1.3) and the TroL-1.8B value.
 *
 * Required keys: hidden_size, num_hidden_layers, num_attention_heads, intermediate_size, vocab_size.
 * Defaults for absent (or null) keys: InternLM2Config's class defaults — num_key_value_heads = heads,
 * rms_norm_eps 1e-6, rope_theta 1e4, max_position_embeddings 2048, bos/eos/pad 1/2/0, tie_word_embeddings
 * false, bias TRUE, hidden_act silu — plus max_length 4096, img_size 490, lora_r/lora_alpha 256/256 (the
 * official code's values) and CLIP ViT-L/14 for `vision_config` (filled key by key). The TroL configs set
 * every LLM key, so these matter only for hand-written configs. Any present key with the wrong type or an
 * impossible value is a `ConfigError` naming the key and the file.
 */
import { ConfigError } from '../errors.ts';
import type { ModelFiles } from '../weights/byte-source.ts';

export interface VisionConfig {
  /** Dv: ViT width (1024). */
  hiddenSize: number;
  /** ViT MLP width (4096). */
  intermediateSize: number;
  /** ViT encoder layers (24). */
  numLayers: number;
  /** ViT attention heads (16; head dim Dv/heads = 64). */
  numHeads: number;
  /** Patch side in pixels (14). */
  patchSize: number;
  /** LayerNorm eps (1e-5). */
  layerNormEps: number;
  hiddenAct: 'quick_gelu';
  /** Input channels (3, RGB). */
  numChannels: number;
}

export interface TrolConfig {
  /** d: residual width (2048). */
  hiddenSize: number;
  /** N: decoder layers, each traversed twice in prefill (24). */
  numLayers: number;
  /** nQ: query heads (16). */
  numHeads: number;
  /** nKV: key/value heads (8); g = nQ/nKV query heads share one KV head. */
  numKVHeads: number;
  /** hd = d / nQ (128). */
  headDim: number;
  /** I: SwiGLU width (8192). */
  intermediateSize: number;
  /** V: output vocabulary (92544); the embedding table has V+1 rows (the extra row is `<image>`). */
  vocabSize: number;
  /** RMSNorm eps (1e-5). */
  rmsNormEps: number;
  /** RoPE base θ (1e6). */
  ropeTheta: number;
  /** `rope_scaling` as stored (dynamic NTK only beyond maxPositionEmbeddings), or null. */
  ropeScaling: { type: string; factor: number } | null;
  maxPositionEmbeddings: number;
  /** Stored generation length (4096); unused by the forward pass. */
  maxLength: number;
  bosId: number;
  eosId: number;
  padId: number;
  /** Square input image side (490). */
  imgSize: number;
  /** P-LoRA rank r (256). */
  loraR: number;
  /** P-LoRA alpha (256). */
  loraAlpha: number;
  /** loraAlpha / loraR (1). */
  loraScale: number;
  vision: VisionConfig;
  /** P = (imgSize / patch)² image tokens (1225). */
  imageTokens: number;
  tieWordEmbeddings: boolean;
  /** Biases in the decoder linears (false for TroL). */
  bias: boolean;
}

/** CLIP ViT-L/14 as hard-coded by the official TroL code. */
export const DEFAULT_VISION: Readonly<VisionConfig> = {
  hiddenSize: 1024,
  intermediateSize: 4096,
  numLayers: 24,
  numHeads: 16,
  patchSize: 14,
  layerNormEps: 1e-5,
  hiddenAct: 'quick_gelu',
  numChannels: 3,
};

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

class Reader {
  constructor(
    private readonly obj: Record<string, unknown>,
    private readonly file: string,
    private readonly prefix = '',
  ) {}

  private err(key: string, msg: string): ConfigError {
    const full = this.prefix + key;
    return new ConfigError(`${this.file}: "${full}" ${msg}`, { file: this.file, key: full });
  }

  private get(key: string, fallback: unknown): unknown {
    const v = this.obj[key];
    if (v === undefined || (v === null && fallback !== undefined)) {
      if (fallback === undefined) throw this.err(key, 'is required but missing');
      return fallback;
    }
    return v;
  }

  /** A positive integer (or ≥ 0 with `allowZero`). `fallback` undefined = required. */
  int(key: string, fallback?: number, allowZero = false): number {
    const v = this.get(key, fallback);
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < (allowZero ? 0 : 1)) {
      throw this.err(key, `must be a ${allowZero ? 'non-negative' : 'positive'} integer, got ${JSON.stringify(v)}`);
    }
    return v;
  }

  /** A finite number > 0. */
  positive(key: string, fallback?: number): number {
    const v = this.get(key, fallback);
    if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) {
      throw this.err(key, `must be a positive number, got ${JSON.stringify(v)}`);
    }
    return v;
  }

  bool(key: string, fallback?: boolean): boolean {
    const v = this.get(key, fallback);
    if (typeof v !== 'boolean') throw this.err(key, `must be true or false, got ${JSON.stringify(v)}`);
    return v;
  }

  str(key: string, fallback?: string): string {
    const v = this.get(key, fallback);
    if (typeof v !== 'string') throw this.err(key, `must be a string, got ${JSON.stringify(v)}`);
    return v;
  }

  raw(key: string): unknown {
    return this.obj[key];
  }

  fail(key: string, msg: string): ConfigError {
    return this.err(key, msg);
  }
}

function parseVision(r: Reader, v: unknown, file: string): VisionConfig {
  if (v === undefined || v === null) return { ...DEFAULT_VISION };
  if (!isObject(v)) throw r.fail('vision_config', 'must be an object');
  const vr = new Reader(v, file, 'vision_config.');
  const d = DEFAULT_VISION;
  const vision: VisionConfig = {
    hiddenSize: vr.int('hidden_size', d.hiddenSize),
    intermediateSize: vr.int('intermediate_size', d.intermediateSize),
    numLayers: vr.int('num_hidden_layers', d.numLayers),
    numHeads: vr.int('num_attention_heads', d.numHeads),
    patchSize: vr.int('patch_size', d.patchSize),
    layerNormEps: vr.positive('layer_norm_eps', d.layerNormEps),
    hiddenAct: 'quick_gelu',
    numChannels: vr.int('num_channels', d.numChannels),
  };
  const act = vr.str('hidden_act', d.hiddenAct);
  if (act !== 'quick_gelu') throw vr.fail('hidden_act', `must be "quick_gelu" (CLIP), got ${JSON.stringify(act)}`);
  if (vision.hiddenSize % vision.numHeads !== 0) {
    throw vr.fail('num_attention_heads', `(${vision.numHeads}) must divide hidden_size (${vision.hiddenSize})`);
  }
  return vision;
}

/** Validates a parsed config.json and returns the engine's view of it. */
export function parseConfig(json: unknown, fileName = 'config.json'): TrolConfig {
  if (!isObject(json)) throw new ConfigError(`${fileName}: not a JSON object`, { file: fileName });
  const r = new Reader(json, fileName);

  const hiddenSize = r.int('hidden_size');
  const numLayers = r.int('num_hidden_layers');
  const numHeads = r.int('num_attention_heads');
  const intermediateSize = r.int('intermediate_size');
  const vocabSize = r.int('vocab_size');
  // InternLM2Config defaults for the rest (the TroL configs set all of them).
  const numKVHeads = r.int('num_key_value_heads', numHeads);
  const rmsNormEps = r.positive('rms_norm_eps', 1e-6);
  const ropeTheta = r.positive('rope_theta', 10000);
  const maxPositionEmbeddings = r.int('max_position_embeddings', 2048);
  const maxLength = r.int('max_length', 4096);
  const bosId = r.int('bos_token_id', 1, true);
  const eosId = r.int('eos_token_id', 2, true);
  const padId = r.int('pad_token_id', 0, true);
  const tieWordEmbeddings = r.bool('tie_word_embeddings', false);
  const bias = r.bool('bias', true);
  const act = r.str('hidden_act', 'silu');
  if (act !== 'silu') throw r.fail('hidden_act', `must be "silu" (InternLM2 SwiGLU), got ${JSON.stringify(act)}`);

  if (hiddenSize % numHeads !== 0) {
    throw r.fail('num_attention_heads', `(${numHeads}) must divide hidden_size (${hiddenSize})`);
  }
  const headDim = hiddenSize / numHeads;
  if (headDim % 2 !== 0) throw r.fail('num_attention_heads', `gives an odd head_dim ${headDim}; RoPE needs it even`);
  if (numHeads % numKVHeads !== 0) {
    throw r.fail('num_key_value_heads', `(${numKVHeads}) must divide num_attention_heads (${numHeads})`);
  }
  for (const [key, id] of [
    ['bos_token_id', bosId],
    ['eos_token_id', eosId],
    ['pad_token_id', padId],
  ] as const) {
    if (id >= vocabSize) throw r.fail(key, `(${id}) must be below vocab_size (${vocabSize})`);
  }

  let ropeScaling: TrolConfig['ropeScaling'] = null;
  const rs = r.raw('rope_scaling');
  if (rs !== undefined && rs !== null) {
    if (!isObject(rs)) throw r.fail('rope_scaling', 'must be an object or null');
    const sr = new Reader(rs, fileName, 'rope_scaling.');
    ropeScaling = { type: sr.str('type'), factor: sr.positive('factor') };
  }

  const imgSize = r.int('img_size', 490);
  const loraR = r.int('lora_r', 256);
  const loraAlpha = r.positive('lora_alpha', 256);
  const vision = parseVision(r, r.raw('vision_config'), fileName);
  if (imgSize % vision.patchSize !== 0) {
    throw r.fail('img_size', `(${imgSize}) must be divisible by vision_config.patch_size (${vision.patchSize})`);
  }
  const side = imgSize / vision.patchSize;

  return {
    hiddenSize,
    numLayers,
    numHeads,
    numKVHeads,
    headDim,
    intermediateSize,
    vocabSize,
    rmsNormEps,
    ropeTheta,
    ropeScaling,
    maxPositionEmbeddings,
    maxLength,
    bosId,
    eosId,
    padId,
    imgSize,
    loraR,
    loraAlpha,
    loraScale: loraAlpha / loraR,
    vision,
    imageTokens: side * side,
    tieWordEmbeddings,
    bias,
  };
}

/** Reads and validates `config.json` from a model folder. */
export async function readConfig(files: ModelFiles): Promise<TrolConfig> {
  const src = await files.get('config.json');
  if (!src) throw new ConfigError('config.json not found among the model files', { file: 'config.json' });
  const size = await src.size();
  if (size > 16 * 1024 * 1024)
    throw new ConfigError(`${src.name}: too large for a config (${size} bytes)`, { file: src.name });
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(await src.read(0, size)));
  } catch (e) {
    throw new ConfigError(`${src.name}: not valid JSON (${(e as Error).message})`, { file: src.name });
  }
  return parseConfig(json, src.name);
}
