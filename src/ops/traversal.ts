/**
 * The TroL gate, fused (shaders/traversal.wgsl). Per token t of the layer's two passes h1 = L(x), h2 = L(h1):
 *   s[t] = 0.5·tanh(dot(h1[t], w) + b) + 0.5,   y[t] = (1 − s[t])·h1[t] + s[t]·h2[t],   gate[t] = s[t].
 * h1, h2, y: activations [T, D] of one dtype; w: f32 [D]; b: the gate bias; gate: f32 [T] (for inspection).
 * y may be h1 or h2 (in place).
 *
 * Order in every op file: shape checks → pipeline key → dispatch size → uniforms → dispatch.
 */
import { FeatureUnavailableError, ShapeError } from '../errors.ts';
import type { Binding, GpuContext } from '../gpu/context.ts';
import type { PipelineKey } from '../gpu/shaders.ts';
import type { Tensor } from '../gpu/tensor.ts';

function bind(t: Tensor): Binding {
  return { buffer: t.buffer, size: Math.max(4, Math.ceil(t.byteLength / 4) * 4) };
}

export async function traversalGateMix(
  ctx: GpuContext,
  h1: Tensor,
  h2: Tensor,
  w: Tensor,
  b: number,
  y: Tensor,
  gate: Tensor,
): Promise<void> {
  if (h1.dtype !== 'f16' && h1.dtype !== 'f32') {
    throw new ShapeError(`traversalGateMix: h1 '${h1.label}' is ${h1.dtype}; activations must be f16 or f32`);
  }
  if (h1.shape.length !== 2) throw new ShapeError(`traversalGateMix: h1 must be [T, D], got [${h1.shape}]`);
  const [T, D] = h1.shape;
  for (const [name, t] of [
    ['h2', h2],
    ['y', y],
  ] as const) {
    if (t.dtype !== h1.dtype || t.shape.length !== 2 || t.shape[0] !== T || t.shape[1] !== D) {
      throw new ShapeError(`traversalGateMix: ${name} is ${t.dtype} [${t.shape}], h1 is ${h1.dtype} [${T},${D}]`);
    }
  }
  if (w.dtype !== 'f32' || w.numel !== D) {
    throw new ShapeError(`traversalGateMix: w must be f32 [${D}], got ${w.dtype} [${w.shape}]`);
  }
  if (gate.dtype !== 'f32' || gate.numel !== T) {
    throw new ShapeError(`traversalGateMix: gate must be f32 [${T}], got ${gate.dtype} [${gate.shape}]`);
  }
  if (h1.buffer === h2.buffer) throw new ShapeError('traversalGateMix: h1 and h2 must be different tensors');
  for (const t of [h1, h2, w, y, gate]) {
    if (t.byteLength > t.buffer.size) {
      throw new ShapeError(
        `traversalGateMix: '${t.label}' claims ${t.byteLength} bytes but its buffer has ${t.buffer.size}`,
      );
    }
    if (t !== y && t !== h1 && t !== h2 && t.buffer === y.buffer) {
      throw new ShapeError(`traversalGateMix: y must not share a buffer with '${t.label}'`);
    }
  }
  if (gate.buffer === h1.buffer || gate.buffer === h2.buffer || gate.buffer === w.buffer) {
    throw new ShapeError('traversalGateMix: gate must not share a buffer with h1, h2 or w');
  }
  if (!Number.isFinite(b)) throw new ShapeError(`traversalGateMix: bias must be finite, got ${b}`);
  if (h1.dtype === 'f16' && !ctx.hasF16) {
    throw new FeatureUnavailableError(`traversalGateMix on f16 activations needs 'shader-f16'`, {
      feature: 'shader-f16',
    });
  }
  if (T === 0) return;

  const WG = D >= 1024 ? 256 : 64;
  const intoH1 = y.buffer === h1.buffer;
  const intoH2 = y.buffer === h2.buffer;
  const inplace = intoH1 || intoH2;
  const key: PipelineKey = inplace
    ? { shader: 'traversal', entry: 'gate_mix_inplace', act: h1.dtype, constants: { WG, INTO_H2: intoH2 ? 1 : 0 } }
    : { shader: 'traversal', entry: 'gate_mix', act: h1.dtype, constants: { WG } };
  const workgroups = ctx.grid(T);
  const uniforms = new Uint32Array(4);
  uniforms[0] = T;
  uniforms[1] = D;
  new Float32Array(uniforms.buffer)[2] = b;
  const bindings = inplace
    ? [bind(y), bind(intoH2 ? h1 : h2), bind(w), bind(gate)]
    : [bind(h1), bind(h2), bind(w), bind(y), bind(gate)];
  await ctx.dispatch({ label: 'traversalGateMix', key, bindings, uniforms, workgroups });
}
