/**
 * Loading the TroL checkpoint onto the GPU, tensor by tensor (never the whole file in memory).
 *
 * Weight modes (chosen at load):
 *  - `f32`: every matrix f32 (exact reference path; 2× the memory of the f16 checkpoint).
 *  - `f16`: every matrix kept as the checkpoint's f16 bits (exact).
 *  - `q4`:  decoder linears (wqkv, wo, w1, w2, w3), their P-LoRA A/B, and the output head are quantized to
 *           int4 (group 32, f16 scale) while loading. These stay f16: token embeddings, the whole vision tower,
 *           the projector. Norm weights, biases and the TroL gate are f32 in every mode.
 */
import { ConfigError, WeightsFormatError } from '../errors.ts';
import type { GpuContext } from '../gpu/context.ts';
import { destroyMatrix, type Matrix, Tensor, type WeightFormat } from '../gpu/tensor.ts';
import type { SafetensorsIndex } from '../weights/safetensors.ts';
import type { PtTensor } from '../weights/torch-pickle.ts';
import { uploadMatrix } from '../weights/upload-matrix.ts';
import type { TrolConfig } from './config.ts';
import { checkTensors, expectedGateTensors, expectedTensors } from './weight-names.ts';

export type WeightMode = 'f32' | 'f16' | 'q4';
export type GateMode = 'per-layer' | 'last';

export interface LinearWeights {
  w: Matrix;
  bias?: Tensor;
}
export interface LoraLinear {
  base: Matrix;
  loraA: Matrix;
  loraB: Matrix;
}
export interface DecoderLayerWeights {
  attnNorm: Tensor;
  wqkv: LoraLinear;
  wo: LoraLinear;
  ffnNorm: Tensor;
  w1: LoraLinear;
  w3: LoraLinear;
  w2: LoraLinear;
  gateW: Tensor; // f32 [d]
  gateB: number;
}
export interface VisionLayerWeights {
  ln1w: Tensor;
  ln1b: Tensor;
  q: LinearWeights;
  k: LinearWeights;
  v: LinearWeights;
  o: LinearWeights;
  ln2w: Tensor;
  ln2b: Tensor;
  fc1: LinearWeights;
  fc2: LinearWeights;
}
export interface TrolWeights {
  mode: WeightMode;
  gateMode: GateMode;
  embed: Matrix; // [vocab+1, d]
  layers: DecoderLayerWeights[];
  norm: Tensor;
  head: Matrix; // [vocab, d]
  vision: {
    patch: Matrix; // [Dv, C·p·p]
    cls: Tensor; // f32 [Dv]
    pos: Tensor; // f32 [P+1, Dv]
    preLnW: Tensor;
    preLnB: Tensor;
    layers: VisionLayerWeights[];
  };
  proj1: LinearWeights;
  proj2: LinearWeights;
  /** Raw gate values per layer as stored in trol_gating.pt (for the traversal trace UI). */
  gateRaw: { w: Float32Array; b: number }[];
  destroy(): void;
}

export interface LoadProgress {
  tensor: string;
  loaded: number;
  total: number;
}

const V = 'vit.vision_tower.vision_model.';

export async function loadTrolWeights(
  ctx: GpuContext,
  st: SafetensorsIndex,
  gating: Map<string, PtTensor>,
  cfg: TrolConfig,
  mode: WeightMode,
  gateMode: GateMode,
  onProgress?: (p: LoadProgress) => void,
): Promise<TrolWeights> {
  // Every expected name and shape is checked before anything is uploaded.
  checkTensors(st.tensors, expectedTensors(cfg), st.files[0] ?? 'model.safetensors');
  checkTensors(gating, expectedGateTensors(cfg), 'trol_gating.pt');
  const owned: (Matrix | Tensor)[] = [];
  // Tensors this loader uploads (the vision post_layernorm is stored but unused).
  const total = expectedTensors(cfg).filter((t) => !t.optional).length + (cfg.tieWordEmbeddings ? 1 : 0);
  let loaded = 0;
  const tick = (name: string) => onProgress?.({ tensor: name, loaded: ++loaded, total });

  const info = (name: string, shape: number[]) => {
    const t = st.tensors.get(name);
    if (!t) throw new WeightsFormatError(`model.safetensors has no tensor '${name}'`, { tensor: name });
    if (t.shape.length !== shape.length || t.shape.some((s, i) => s !== shape[i])) {
      throw new WeightsFormatError(`Tensor '${name}' has shape [${t.shape}] but the config implies [${shape}]`, {
        tensor: name,
        shape: t.shape,
        expected: shape,
      });
    }
    return t;
  };
  // Reads row ranges of a tensor on demand: f16 bits when the target is f16 (exact), else f32.
  const rowReader = (name: string, format: WeightFormat) => (start: number, count: number) =>
    format === 'f16' ? st.readF16Bits(name, { start, count }) : st.readF32(name, { start, count });
  const matrix = async (name: string, n: number, k: number, format: WeightFormat): Promise<Matrix> => {
    info(name, k === -1 ? [n] : [n, k]);
    const m = await uploadMatrix(ctx, name, format, n, k, rowReader(name, format));
    owned.push(m);
    tick(name);
    return m;
  };
  // Conv weight [D, C, p, p] flattened to [D, C·p·p].
  const convMatrix = async (name: string, shape: number[], format: WeightFormat): Promise<Matrix> => {
    info(name, shape);
    const k = shape.slice(1).reduce((a, b) => a * b, 1);
    const m = await uploadMatrix(ctx, name, format, shape[0], k, rowReader(name, format));
    owned.push(m);
    tick(name);
    return m;
  };
  const vectorF32 = async (name: string, shape: number[]): Promise<Tensor> => {
    info(name, shape);
    const data = await st.readF32(name);
    const buffer = await ctx.upload(name, data);
    const t = new Tensor(buffer, 'f32', shape);
    owned.push(t);
    tick(name);
    return t;
  };

  const d = cfg.hiddenSize;
  const hd = cfg.headDim;
  const qkvN = (cfg.numHeads + 2 * cfg.numKVHeads) * hd;
  const I = cfg.intermediateSize;
  const r = cfg.loraR;
  const big: WeightFormat = mode === 'q4' ? 'q4' : mode;
  const keep16: WeightFormat = mode === 'f32' ? 'f32' : 'f16';

  try {
    const embed = await matrix('model.tok_embeddings.weight', cfg.vocabSize + 1, d, keep16);
    // Tied head: the first vocab_size rows of the embedding table (the extra row is <image>).
    const tiedHead = async (): Promise<Matrix> => {
      const reader = rowReader('model.tok_embeddings.weight', big);
      const m = await uploadMatrix(ctx, 'output(tied)', big, cfg.vocabSize, d, reader);
      owned.push(m);
      tick('output(tied)');
      return m;
    };
    const lora = async (prefix: string, n: number, k: number): Promise<LoraLinear> => ({
      base: await matrix(`${prefix}.ffn.weight`, n, k, big),
      loraA: await matrix(`${prefix}.lora_A.weight`, r, k, big),
      loraB: await matrix(`${prefix}.lora_B.weight`, n, r, big),
    });
    const gateRaw = readGates(gating, cfg);
    const layers: DecoderLayerWeights[] = [];
    for (let i = 0; i < cfg.numLayers; i++) {
      const p = `model.layers.${i}`;
      const g = gateMode === 'last' ? gateRaw[cfg.numLayers - 1] : gateRaw[i];
      const gateBuffer = await ctx.upload(`gate${i}.w`, g.w);
      const gateW = new Tensor(gateBuffer, 'f32', [d]);
      owned.push(gateW);
      layers.push({
        attnNorm: await vectorF32(`${p}.attention_norm.weight`, [d]),
        wqkv: await lora(`${p}.attention.wqkv`, qkvN, d),
        wo: await lora(`${p}.attention.wo`, d, cfg.numHeads * hd),
        ffnNorm: await vectorF32(`${p}.ffn_norm.weight`, [d]),
        w1: await lora(`${p}.feed_forward.w1`, I, d),
        w3: await lora(`${p}.feed_forward.w3`, I, d),
        w2: await lora(`${p}.feed_forward.w2`, d, I),
        gateW,
        gateB: g.b,
      });
    }
    const norm = await vectorF32('model.norm.weight', [d]);
    const head = cfg.tieWordEmbeddings ? await tiedHead() : await matrix('output.weight', cfg.vocabSize, d, big);

    const vc = cfg.vision;
    const Dv = vc.hiddenSize;
    const P = cfg.imageTokens;
    const linear = async (prefix: string, n: number, k: number, format: WeightFormat): Promise<LinearWeights> => ({
      w: await matrix(`${prefix}.weight`, n, k, format),
      bias: await vectorF32(`${prefix}.bias`, [n]),
    });
    const vlayers: VisionLayerWeights[] = [];
    for (let j = 0; j < vc.numLayers; j++) {
      const p = `${V}encoder.layers.${j}`;
      vlayers.push({
        ln1w: await vectorF32(`${p}.layer_norm1.weight`, [Dv]),
        ln1b: await vectorF32(`${p}.layer_norm1.bias`, [Dv]),
        q: await linear(`${p}.self_attn.q_proj`, Dv, Dv, keep16),
        k: await linear(`${p}.self_attn.k_proj`, Dv, Dv, keep16),
        v: await linear(`${p}.self_attn.v_proj`, Dv, Dv, keep16),
        o: await linear(`${p}.self_attn.out_proj`, Dv, Dv, keep16),
        ln2w: await vectorF32(`${p}.layer_norm2.weight`, [Dv]),
        ln2b: await vectorF32(`${p}.layer_norm2.bias`, [Dv]),
        fc1: await linear(`${p}.mlp.fc1`, vc.intermediateSize, Dv, keep16),
        fc2: await linear(`${p}.mlp.fc2`, Dv, vc.intermediateSize, keep16),
      });
    }
    const vision = {
      patch: await convMatrix(
        `${V}embeddings.patch_embedding.weight`,
        [Dv, vc.numChannels, vc.patchSize, vc.patchSize],
        keep16,
      ),
      cls: await vectorF32(`${V}embeddings.class_embedding`, [Dv]),
      pos: await vectorF32(`${V}embeddings.position_embedding.weight`, [P + 1, Dv]),
      preLnW: await vectorF32(`${V}pre_layrnorm.weight`, [Dv]),
      preLnB: await vectorF32(`${V}pre_layrnorm.bias`, [Dv]),
      layers: vlayers,
    };
    const proj1 = await linear('vision_proj.0', d, Dv, keep16);
    const proj2 = await linear('vision_proj.2', d, d, keep16);
    return {
      mode,
      gateMode,
      embed,
      layers,
      norm,
      head,
      vision,
      proj1,
      proj2,
      gateRaw,
      destroy: () => destroyAll(owned),
    };
  } catch (e) {
    destroyAll(owned);
    throw e;
  }
}

function destroyAll(owned: (Matrix | Tensor)[]): void {
  for (const o of owned) {
    if (o instanceof Tensor) o.destroy();
    else destroyMatrix(o);
  }
  owned.length = 0;
}

/** Gate entries `{i}.weight` [1, d] and `{i}.bias` [1] for every layer, checked against the config. */
export function readGates(gating: Map<string, PtTensor>, cfg: TrolConfig): { w: Float32Array; b: number }[] {
  const out: { w: Float32Array; b: number }[] = [];
  for (let i = 0; i < cfg.numLayers; i++) {
    const w = gating.get(`${i}.weight`);
    const b = gating.get(`${i}.bias`);
    if (!w || !b) {
      throw new WeightsFormatError(`trol_gating.pt has no entry for layer ${i} ('${i}.weight'/'${i}.bias')`, {
        file: 'trol_gating.pt',
        layer: i,
      });
    }
    const wn = w.shape.reduce((a, c) => a * c, 1);
    if (wn !== cfg.hiddenSize || b.data.length !== 1) {
      throw new WeightsFormatError(
        `trol_gating.pt entry ${i} has weight [${w.shape}] / bias [${b.shape}]; expected [1, ${cfg.hiddenSize}] / [1]`,
        { file: 'trol_gating.pt', layer: i },
      );
    }
    out.push({ w: Float32Array.from(w.data), b: b.data[0] });
  }
  if (out.length === 0) throw new ConfigError('config has no decoder layers');
  return out;
}
