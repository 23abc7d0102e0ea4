/**
 * Token embedding gather (shaders/embedding.wgsl): out[t] = table row ids[t], dequantised to the activation
 * dtype. The table is a `Matrix` (n = vocabulary rows, k = D) in f32, f16 or q4, possibly split into
 * row-block parts: one dispatch per part writes the tokens whose id falls in that part. Ids ≥ n read nothing
 * and give a zero row (the engine validates ids on the CPU; this only keeps the GPU in bounds).
 *
 * Order in every op file: shape checks → pipeline key → dispatch size → uniforms → dispatch.
 */
import { FeatureUnavailableError, ShapeError } from '../errors.ts';
import type { Binding, GpuContext } from '../gpu/context.ts';
import type { PipelineKey } from '../gpu/shaders.ts';
import { type Matrix, q4Dims, type Tensor } from '../gpu/tensor.ts';

const WG = 256;

function bind(t: Tensor): Binding {
  return { buffer: t.buffer, size: Math.max(4, Math.ceil(t.byteLength / 4) * 4) };
}

/** out [T, D] = table[ids[t], :]. ids: u32 (or i32) [T]; out: act [T, D] with D = table.k. */
export async function embedding(ctx: GpuContext, table: Matrix, ids: Tensor, out: Tensor): Promise<void> {
  if (table.format !== 'f32' && table.format !== 'f16' && table.format !== 'q4') {
    throw new ShapeError(`embedding: table '${table.label}' has unsupported format ${table.format}`);
  }
  if (table.parts.length === 0 || table.n < 1 || table.k < 1) {
    throw new ShapeError(`embedding: table '${table.label}' is empty (${table.n}×${table.k})`);
  }
  if ((ids.dtype !== 'u32' && ids.dtype !== 'i32') || ids.shape.length !== 1) {
    throw new ShapeError(`embedding: ids must be u32 [T], got ${ids.dtype} [${ids.shape}]`);
  }
  const T = ids.shape[0];
  const D = table.k;
  if (out.dtype !== 'f16' && out.dtype !== 'f32') {
    throw new ShapeError(`embedding: out '${out.label}' is ${out.dtype}; activations must be f16 or f32`);
  }
  if (out.shape.length !== 2 || out.shape[0] !== T || out.shape[1] !== D) {
    throw new ShapeError(`embedding: out must be [${T}, ${D}], got [${out.shape}]`);
  }
  for (const t of [ids, out]) {
    if (t.byteLength > t.buffer.size) {
      throw new ShapeError(`embedding: '${t.label}' claims ${t.byteLength} bytes but its buffer has ${t.buffer.size}`);
    }
  }
  if (table.format === 'q4' && table.parts.some((p) => !p.scales)) {
    throw new ShapeError(`embedding: q4 table '${table.label}' has a part without scales`);
  }
  if (out.dtype === 'f16' && !ctx.hasF16) {
    throw new FeatureUnavailableError(`embedding into f16 activations needs 'shader-f16'`, { feature: 'shader-f16' });
  }
  if (T === 0) return;

  const entry = `embed_${table.format}`;
  const key: PipelineKey = { shader: 'embedding', entry, act: out.dtype, constants: { WG } };
  const workgroups = ctx.grid(Math.ceil((T * D) / WG));
  const q4 = table.format === 'q4' ? q4Dims(D) : null;
  const words = table.format === 'f16' ? Math.ceil(D / 2) : (q4?.wordsPerRow ?? 0);
  const lastStart = Math.max(...table.parts.map((p) => p.rowStart));
  for (const part of table.parts) {
    const uniforms = new Uint32Array([
      T,
      D,
      part.rowStart,
      part.rowCount,
      table.n,
      words,
      q4?.scaleWordsPerRow ?? 0,
      part.rowStart === lastStart ? 1 : 0,
    ]);
    const bindings: (GPUBuffer | Binding)[] = q4
      ? [bind(ids), part.data, part.scales!, bind(out)]
      : [bind(ids), part.data, bind(out)];
    await ctx.dispatch({ label: `embedding[${part.rowStart}]`, key, bindings, uniforms, workgroups });
  }
}
