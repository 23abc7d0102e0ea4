/**
 * `--dump DIR`: every intermediate the fixture's golden/index.json names, without its img_/txt_ prefix, in the
 * same dtype, shape and layout (little-endian), plus an index.json listing them.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { GenerateRequest, GenerateResult, TrolEngine } from '../engine.ts';

type Debug = NonNullable<GenerateRequest['debug']>;

export async function writeDump(dir: string, engine: TrolEngine, r: GenerateResult, dbg: Debug): Promise<void> {
  await mkdir(dir, { recursive: true });
  const cfg = engine.cfg;
  const T = r.promptIds.length;
  const d = cfg.hiddenSize;
  const P = cfg.imageTokens;
  const S = cfg.imgSize;
  const entries: { name: string; file: string; dtype: string; shape: number[] }[] = [];
  const put = async (name: string, dtype: string, shape: number[], data: ArrayBufferView | undefined) => {
    if (!data) return;
    const file = `${name}.bin`;
    await writeFile(join(dir, file), new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
    entries.push({ name, file, dtype, shape });
  };
  const gates = new Float32Array(cfg.numLayers * T);
  for (const [l, g] of r.gates.entries()) gates.set(g, l * T);
  const V = cfg.vocabSize;
  const genLogits = new Float32Array(r.logits.length * V);
  for (const [k, row] of r.logits.entries()) genLogits.set(row, k * V);
  await put('prompt_ids', 'int32', [T], Int32Array.from(r.promptIds));
  await put('resized_u8', 'uint8', [3, S, S], dbg.resized);
  await put('pixel_values', 'float32', [3, S, S], dbg.pixels);
  await put('vision_out', 'float32', [P, cfg.vision.hiddenSize], dbg.visionOut);
  await put('proj_out', 'float32', [P, d], dbg.projOut);
  await put('embeds', 'float32', [T, d], dbg.embeds);
  await put('layer0_h1', 'float32', [T, d], dbg.layer0H1);
  await put('layer0_h2', 'float32', [T, d], dbg.layer0H2);
  await put('layer0_gate', 'float32', [T], dbg.layer0Gate);
  await put('layer0_y', 'float32', [T, d], dbg.layer0Y);
  await put('layer0_k', 'float32', [cfg.numKVHeads, T, cfg.headDim], dbg.layer0K);
  await put('layer0_v', 'float32', [cfg.numKVHeads, T, cfg.headDim], dbg.layer0V);
  await put('gates', 'float32', [cfg.numLayers, T], gates);
  await put('layers_y', 'float32', [cfg.numLayers, T, d], dbg.layersY);
  await put('prefill_logits_last', 'float32', [V], r.logits[0]);
  await put('gen_ids', 'int32', [r.generatedIds.length], Int32Array.from(r.generatedIds));
  await put('gen_logits', 'float32', [r.logits.length, V], genLogits);
  await writeFile(join(dir, 'index.json'), `${JSON.stringify({ files: entries }, null, 2)}\n`);
}
