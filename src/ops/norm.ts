/**
 * Row normalisations over the last dimension (shaders/norm.wgsl), one workgroup per row, statistics in f32:
 *   rmsNorm   — InternLM2 RMSNorm: y = x / sqrt(mean(x²) + eps) · w
 *   layerNorm — CLIP LayerNorm:    y = (x − mean(x)) / sqrt(var(x) + eps) · w + b   (biased variance)
 * x and out are activations (f16 or f32, the same dtype and shape: [rows, D] or [D]); weight and bias are f32 [D].
 * `out` must be a different tensor from `x`.
 *
 * Order in every op file: shape checks → pipeline key → dispatch size → uniforms → dispatch.
 */
import { FeatureUnavailableError, ShapeError } from '../errors.ts';
import type { Binding, GpuContext } from '../gpu/context.ts';
import type { PipelineKey } from '../gpu/shaders.ts';
import type { Tensor } from '../gpu/tensor.ts';

/** Invocations per row: a power of two (the reduction is a tree); ≤ 256 for SwiftShader. */
function workgroupSize(d: number): number {
  return d >= 1024 ? 256 : 64;
}

function bind(t: Tensor): Binding {
  return { buffer: t.buffer, size: Math.max(4, Math.ceil(t.byteLength / 4) * 4) };
}

/** Checks shared by both norms; returns rows, D and the activation dtype. */
function checkNorm(
  ctx: GpuContext,
  op: string,
  x: Tensor,
  params: { name: string; t: Tensor }[],
  out: Tensor,
  eps: number,
): { rows: number; d: number; act: 'f16' | 'f32' } {
  if (x.dtype !== 'f16' && x.dtype !== 'f32') {
    throw new ShapeError(`${op}: x '${x.label}' is ${x.dtype}; activations must be f16 or f32`);
  }
  if (x.shape.length < 1 || x.shape.length > 2) {
    throw new ShapeError(`${op}: x must be [rows, D] or [D], got [${x.shape}]`);
  }
  const d = x.shape[x.shape.length - 1];
  const rows = x.shape.length === 2 ? x.shape[0] : 1;
  if (d < 1) throw new ShapeError(`${op}: D must be ≥ 1, got [${x.shape}]`);
  if (out.dtype !== x.dtype || out.shape.length !== x.shape.length || out.shape.some((v, i) => v !== x.shape[i])) {
    throw new ShapeError(`${op}: out is ${out.dtype} [${out.shape}], x is ${x.dtype} [${x.shape}]`);
  }
  if (out.buffer === x.buffer) throw new ShapeError(`${op}: out must not be x (no in-place variant)`);
  for (const { name, t } of params) {
    if (t.dtype !== 'f32' || t.numel !== d) {
      throw new ShapeError(`${op}: ${name} must be f32 [${d}], got ${t.dtype} [${t.shape}]`);
    }
  }
  for (const t of [x, out, ...params.map((p) => p.t)]) {
    if (t.byteLength > t.buffer.size) {
      throw new ShapeError(`${op}: '${t.label}' claims ${t.byteLength} bytes but its buffer has ${t.buffer.size}`);
    }
  }
  if (!Number.isFinite(eps) || eps < 0) throw new ShapeError(`${op}: eps must be a finite value ≥ 0, got ${eps}`);
  if (x.dtype === 'f16' && !ctx.hasF16) {
    throw new FeatureUnavailableError(`${op} on f16 activations needs 'shader-f16'`, { feature: 'shader-f16' });
  }
  return { rows, d, act: x.dtype };
}

function normUniforms(rows: number, d: number, eps: number): Uint32Array {
  const u = new Uint32Array(4);
  u[0] = rows;
  u[1] = d;
  new Float32Array(u.buffer)[2] = eps;
  return u;
}

/** out = x / sqrt(mean(x²) + eps) · weight, per row of length D = x.shape[-1]. weight: f32 [D]. */
export async function rmsNorm(ctx: GpuContext, x: Tensor, weight: Tensor, out: Tensor, eps: number): Promise<void> {
  const { rows, d, act } = checkNorm(ctx, 'rmsNorm', x, [{ name: 'weight', t: weight }], out, eps);
  if (rows === 0) return;
  const WG = workgroupSize(d);
  const key: PipelineKey = { shader: 'norm', entry: 'rms_norm', act, constants: { WG } };
  const workgroups = ctx.grid(rows);
  const uniforms = normUniforms(rows, d, eps);
  await ctx.dispatch({ label: 'rmsNorm', key, bindings: [bind(x), bind(weight), bind(out)], uniforms, workgroups });
}

/** out = (x − mean) / sqrt(var + eps) · weight + bias, per row of length D = x.shape[-1]. weight, bias: f32 [D]. */
export async function layerNorm(
  ctx: GpuContext,
  x: Tensor,
  weight: Tensor,
  bias: Tensor,
  out: Tensor,
  eps: number,
): Promise<void> {
  const params = [
    { name: 'weight', t: weight },
    { name: 'bias', t: bias },
  ];
  const { rows, d, act } = checkNorm(ctx, 'layerNorm', x, params, out, eps);
  if (rows === 0) return;
  const WG = workgroupSize(d);
  const key: PipelineKey = { shader: 'norm', entry: 'layer_norm', act, constants: { WG } };
  const workgroups = ctx.grid(rows);
  const uniforms = normUniforms(rows, d, eps);
  await ctx.dispatch({
    label: 'layerNorm',
    key,
    bindings: [bind(x), bind(weight), bind(bias), bind(out)],
    uniforms,
    workgroups,
  });
}
