import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError, InputError, WeightsFormatError } from '../../src/errors.ts';
import { DEFAULT_VISION, parseConfig, readConfig } from '../../src/model/config.ts';
import { checkTensors, expectedGateTensors, expectedTensors } from '../../src/model/weight-names.ts';
import { bytesSource, dirFiles, mapFiles } from '../../src/weights/byte-source.ts';

const FIXTURE = join(import.meta.dirname, '../fixtures/tiny-trol');
const fixtureJson = (): Record<string, unknown> => JSON.parse(readFileSync(join(FIXTURE, 'config.json'), 'utf8'));

/** TroL-1.8B's LLM keys as given in docs/trol-model.md §1.2 (no extension keys). */
const TROL_18B = {
  architectures: ['TroLForCausalLM'],
  bias: false,
  bos_token_id: 1,
  eos_token_id: 2,
  pad_token_id: 2,
  hidden_act: 'silu',
  hidden_size: 2048,
  img_size: 490,
  intermediate_size: 8192,
  max_length: 4096,
  max_position_embeddings: 32768,
  model_type: 'internlm',
  num_attention_heads: 16,
  num_hidden_layers: 24,
  num_key_value_heads: 8,
  rms_norm_eps: 1e-5,
  rope_scaling: { factor: 2.0, type: 'dynamic' },
  rope_theta: 1000000,
  tie_word_embeddings: false,
  torch_dtype: 'float16',
  vocab_size: 92544,
};

function configError(json: unknown, file = 'models/x/config.json'): ConfigError {
  try {
    parseConfig(json, file);
  } catch (e) {
    expect(e).toBeInstanceOf(ConfigError);
    expect(e).toBeInstanceOf(InputError);
    expect((e as ConfigError).message).toContain(file);
    return e as ConfigError;
  }
  throw new Error('expected a ConfigError');
}

describe('config.json', () => {
  it('reads the fixture', async () => {
    const cfg = await readConfig(dirFiles(FIXTURE));
    expect(cfg).toEqual({
      hiddenSize: 64,
      numLayers: 2,
      numHeads: 4,
      numKVHeads: 2,
      headDim: 16,
      intermediateSize: 160,
      vocabSize: 640,
      rmsNormEps: 1e-5,
      ropeTheta: 1e6,
      ropeScaling: { type: 'dynamic', factor: 2 },
      maxPositionEmbeddings: 32768,
      maxLength: 4096,
      bosId: 1,
      eosId: 2,
      padId: 2,
      imgSize: 56,
      loraR: 8,
      loraAlpha: 8,
      loraScale: 1,
      vision: {
        hiddenSize: 32,
        intermediateSize: 64,
        numLayers: 2,
        numHeads: 2,
        patchSize: 14,
        layerNormEps: 1e-5,
        hiddenAct: 'quick_gelu',
        numChannels: 3,
      },
      imageTokens: 16,
      tieWordEmbeddings: false,
      bias: false,
    });
  });

  it('uses CLIP ViT-L/14 and r = alpha = 256 when the extension keys are absent (TroL-1.8B)', () => {
    const cfg = parseConfig(TROL_18B);
    expect(cfg.vision).toEqual(DEFAULT_VISION);
    expect(cfg.vision).toEqual({
      hiddenSize: 1024,
      intermediateSize: 4096,
      numLayers: 24,
      numHeads: 16,
      patchSize: 14,
      layerNormEps: 1e-5,
      hiddenAct: 'quick_gelu',
      numChannels: 3,
    });
    expect([cfg.loraR, cfg.loraAlpha, cfg.loraScale]).toEqual([256, 256, 1]);
    expect([cfg.headDim, cfg.imageTokens, cfg.numKVHeads]).toEqual([128, 1225, 8]);
    // A partial vision_config keeps ViT-L/14 values for the keys it leaves out.
    expect(parseConfig({ ...TROL_18B, vision_config: { num_hidden_layers: 2 } }).vision).toEqual({
      ...DEFAULT_VISION,
      numLayers: 2,
    });
  });

  it("TroL-1.8B's weight map matches the parameter counts of trol-model.md §3.3", () => {
    const cfg = parseConfig(TROL_18B);
    const list = expectedTensors(cfg);
    const byName = new Map(list.map((t) => [t.name, t.shape]));
    expect(byName.get('model.tok_embeddings.weight')).toEqual([92545, 2048]);
    expect(byName.get('model.layers.23.attention.wqkv.ffn.weight')).toEqual([4096, 2048]);
    expect(byName.get('model.layers.0.attention.wqkv.lora_B.weight')).toEqual([4096, 256]);
    expect(byName.get('model.layers.0.feed_forward.w2.lora_A.weight')).toEqual([256, 8192]);
    expect(byName.get('vit.vision_tower.vision_model.embeddings.position_embedding.weight')).toEqual([1226, 1024]);
    expect(byName.get('vision_proj.0.weight')).toEqual([2048, 1024]);
    expect(byName.size).toBe(list.length); // no duplicates
    const count = (pred: (n: string) => boolean) =>
      list.filter((t) => pred(t.name)).reduce((a, t) => a + t.shape.reduce((x, y) => x * y, 1), 0);
    expect(count((n) => n.includes('.lora_'))).toBe(251_658_240);
    expect(count((n) => n.endsWith('.ffn.weight'))).toBe(1_509_949_440);
    expect(count((n) => n.startsWith('model.') || n === 'output.weight')).toBe(2_140_770_304);
    expect(count((n) => n.startsWith('vit.'))).toBe(304_172_032);
    expect(count((n) => n.startsWith('vision_proj.'))).toBe(6_295_552);
    const gate = expectedGateTensors(cfg);
    expect(gate.length).toBe(48);
    expect(gate.reduce((a, t) => a + t.shape.reduce((x, y) => x * y, 1), 0)).toBe(49_176);
  });

  it('checkTensors names missing and mis-shaped tensors', () => {
    const cfg = parseConfig(fixtureJson());
    const found = new Map(expectedTensors(cfg).map((t) => [t.name, { shape: [...t.shape] }]));
    found.delete('vit.vision_tower.vision_model.post_layernorm.weight'); // optional
    expect(checkTensors(found, expectedTensors(cfg), 'm.safetensors').missing).toEqual([]);
    found.delete('model.norm.weight');
    found.get('output.weight')!.shape = [641, 64];
    found.set('model.trol_gating.0.weight', { shape: [1, 64] });
    let err: unknown;
    try {
      checkTensors(found, expectedTensors(cfg), 'm.safetensors');
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(WeightsFormatError);
    const msg = (err as Error).message;
    expect(msg).toContain('m.safetensors');
    expect(msg).toContain('model.norm.weight');
    expect(msg).toContain('output.weight: [641,64] instead of [640,64]');
    // tied embeddings: no output.weight expected; biases when bias = true
    const tied = expectedTensors(parseConfig({ ...fixtureJson(), tie_word_embeddings: true, bias: true })).map(
      (t) => t.name,
    );
    expect(tied).not.toContain('output.weight');
    expect(tied).toContain('model.layers.1.feed_forward.w2.ffn.bias');
  });

  it('a missing required key is a ConfigError naming the key and the file', () => {
    for (const key of ['hidden_size', 'num_hidden_layers', 'num_attention_heads', 'intermediate_size', 'vocab_size']) {
      const j = fixtureJson();
      delete j[key];
      const e = configError(j);
      expect(e.message).toContain(`"${key}"`);
      expect(e.message).toMatch(/required/);
      expect(e.details).toMatchObject({ file: 'models/x/config.json', key });
    }
  });

  it('wrong types and impossible values are ConfigErrors naming the key', () => {
    const bad: [Record<string, unknown>, string][] = [
      [{ hidden_size: '64' }, 'hidden_size'],
      [{ hidden_size: 64.5 }, 'hidden_size'],
      [{ num_hidden_layers: 0 }, 'num_hidden_layers'],
      [{ vocab_size: -3 }, 'vocab_size'],
      [{ rms_norm_eps: 0 }, 'rms_norm_eps'],
      [{ rope_theta: 'big' }, 'rope_theta'],
      [{ bias: 'false' }, 'bias'],
      [{ tie_word_embeddings: 0 }, 'tie_word_embeddings'],
      [{ hidden_act: 'gelu' }, 'hidden_act'],
      [{ lora_r: 0 }, 'lora_r'],
      [{ rope_scaling: 'dynamic' }, 'rope_scaling'],
      [{ rope_scaling: { type: 'dynamic' } }, 'rope_scaling.factor'],
      [{ vision_config: [] }, 'vision_config'],
      [{ vision_config: { hidden_act: 'gelu' } }, 'vision_config.hidden_act'],
      [{ vision_config: { patch_size: '14' } }, 'vision_config.patch_size'],
      [{ vision_config: { hidden_size: 30, num_attention_heads: 4 } }, 'vision_config.num_attention_heads'],
      [{ num_attention_heads: 5 }, 'num_attention_heads'], // 64 / 5
      [{ num_attention_heads: 64 }, 'num_attention_heads'], // head_dim 1 is odd
      [{ num_key_value_heads: 3 }, 'num_key_value_heads'], // 4 % 3
      [{ img_size: 50 }, 'img_size'], // 50 % 14
      [{ eos_token_id: 640 }, 'eos_token_id'],
    ];
    for (const [patch, key] of bad) {
      const e = configError({ ...fixtureJson(), ...patch });
      expect(e.message, JSON.stringify(patch)).toContain(`"${key}"`);
      expect(e.details.key).toBe(key);
    }
    configError([1, 2]);
    configError(null);
  });

  it('readConfig: missing file and bad JSON are ConfigErrors naming the file', async () => {
    await expect(readConfig(mapFiles(new Map()))).rejects.toThrow(/config\.json not found/);
    const bad = mapFiles(
      new Map([['config.json', bytesSource('repo/config.json', new TextEncoder().encode('{"hidden_size": 64,'))]]),
    );
    const e = await readConfig(bad).catch((x) => x);
    expect(e).toBeInstanceOf(ConfigError);
    expect(e.message).toMatch(/repo\/config\.json: not valid JSON/);
  });
});
