/** castToF32: out (f32) = x (act), element for element. Used for logits, which sampling reads in f32. */

import { ShapeError } from '../errors.ts';
import type { GpuContext } from '../gpu/context.ts';
import type { PipelineKey } from '../gpu/shaders.ts';
import type { Tensor } from '../gpu/tensor.ts';

const WG = 256;

export async function castToF32(ctx: GpuContext, x: Tensor, out: Tensor): Promise<void> {
  if (x.dtype !== 'f16' && x.dtype !== 'f32') throw new ShapeError(`castToF32: input is ${x.dtype}`);
  if (out.dtype !== 'f32') throw new ShapeError(`castToF32: output is ${out.dtype}, want f32`);
  if (out.numel !== x.numel) throw new ShapeError(`castToF32: ${x.numel} elements into ${out.numel}`);
  const key: PipelineKey = { shader: 'copy', entry: 'cast_to_f32', act: x.dtype, constants: { WG } };
  await ctx.dispatch({
    label: 'cast_to_f32',
    key,
    bindings: [x.buffer, out.buffer],
    uniforms: new Uint32Array([x.numel, 0, 0, 0]),
    workgroups: ctx.grid(Math.ceil(x.numel / WG)),
  });
}
