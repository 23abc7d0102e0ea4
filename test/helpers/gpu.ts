/**
 * A fresh GpuContext per test file, on the adapter the run asks for:
 *   TROL_ADAPTER=llvmpipe (default; Mesa lavapipe, has shader-f16) or swiftshader (f32 only).
 * Set VK_ICD_FILENAMES to SwiftShader's ICD for the latter (scripts/test-all.sh does).
 */
import { afterAll } from 'vitest';
import { GpuContext, type GpuContextOptions } from '../../src/gpu/context.ts';

export function testAdapter(): 'llvmpipe' | 'swiftshader' {
  return process.env.TROL_ADAPTER === 'swiftshader' ? 'swiftshader' : 'llvmpipe';
}

/** Create a context and destroy it when the file's tests end. */
export async function createTestContext(options: GpuContextOptions = {}): Promise<GpuContext> {
  const adapter = testAdapter();
  const ctx = await GpuContext.create({ adapter: adapter === 'swiftshader' ? 'default' : 'llvmpipe', ...options });
  afterAll(() => ctx.destroy());
  return ctx;
}

/** The activation dtypes to test on this context: f16 (when the device has it) and f32. */
export function actDTypes(ctx: GpuContext): ('f16' | 'f32')[] {
  return ctx.hasF16 ? ['f32', 'f16'] : ['f32'];
}

export async function readF32(ctx: GpuContext, buffer: GPUBuffer, count?: number): Promise<Float32Array> {
  const bytes = await ctx.read(buffer, 0, count === undefined ? undefined : count * 4);
  return new Float32Array(bytes);
}
