/** Moving activations between the CPU (always f32 values) and GPU tensors stored as `act` (f16 or f32). */
import { fromF16Array, toF16Array } from '../util/f16.ts';
import type { ActDType, GpuContext } from './context.ts';
import { Tensor } from './tensor.ts';

const ACT_USAGE = () => GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST;

/** An uninitialised activation tensor. */
export async function createAct(ctx: GpuContext, label: string, shape: readonly number[], dtype: ActDType = ctx.act) {
  const numel = shape.reduce((a, b) => a * b, 1);
  const buffer = await ctx.allocate(label, numel * (dtype === 'f16' ? 2 : 4), ACT_USAGE());
  return new Tensor(buffer, dtype, shape);
}

/** Upload f32 values as an activation tensor of `dtype` (rounding to f16 when asked). */
export async function uploadAct(
  ctx: GpuContext,
  label: string,
  values: Float32Array,
  shape: readonly number[],
  dtype: ActDType = ctx.act,
): Promise<Tensor> {
  const t = await createAct(ctx, label, shape, dtype);
  ctx.write(t.buffer, dtype === 'f16' ? toF16Array(values) : values);
  return t;
}

/** Read an f16/f32 tensor back as f32 values. */
export async function readAct(ctx: GpuContext, t: Tensor): Promise<Float32Array> {
  const bytes = await ctx.read(t.buffer, 0, t.byteLength);
  if (t.dtype === 'f16') return fromF16Array(new Uint16Array(bytes));
  if (t.dtype === 'f32') return new Float32Array(bytes);
  throw new Error(`readAct: tensor '${t.label}' is ${t.dtype}, not an activation`);
}

export async function uploadU32(ctx: GpuContext, label: string, values: Uint32Array | Int32Array): Promise<Tensor> {
  const buffer = await ctx.upload(label, values);
  return new Tensor(buffer, values instanceof Int32Array ? 'i32' : 'u32', [values.length]);
}
