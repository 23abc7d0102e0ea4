/**
 * copy: dst[0..bytes) = src[0..bytes) through a compute kernel (not copyBufferToBuffer), so the benchmark
 * measures what a shader can stream. `bytes` must be a multiple of 16.
 *
 * Order in every op file: shape checks → pipeline key → dispatch size → uniforms → dispatch.
 */

import { ShapeError } from '../errors.ts';
import type { GpuContext } from '../gpu/context.ts';
import type { PipelineKey } from '../gpu/shaders.ts';

const WG = 256;

export async function copyKernel(ctx: GpuContext, src: GPUBuffer, dst: GPUBuffer, bytes: number): Promise<void> {
  if (bytes % 16 !== 0) throw new ShapeError(`copy: byte count ${bytes} is not a multiple of 16`);
  if (bytes > src.size || bytes > dst.size) throw new ShapeError(`copy: ${bytes} bytes exceed a buffer`);
  const key: PipelineKey = { shader: 'copy', entry: 'copy_vec4', act: 'f32', constants: { WG } };
  const n4 = bytes / 16;
  await ctx.dispatch({
    label: 'copy',
    key,
    bindings: [src, dst],
    uniforms: new Uint32Array([n4, 0, 0, 0]),
    workgroups: ctx.grid(Math.ceil(n4 / WG)),
  });
}
