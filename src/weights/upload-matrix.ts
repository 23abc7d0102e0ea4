/**
 * Turning a weight [n, k] into a GPU `Matrix` in the requested format, split into row blocks so every buffer
 * stays under the device's `maxStorageBufferBindingSize` (128 MiB on lavapipe and many phones).
 */
import type { GpuContext } from '../gpu/context.ts';
import { type Matrix, type MatrixPart, matrixRowBytes, q4Dims, type WeightFormat } from '../gpu/tensor.ts';
import { f16BitsToF32 } from '../util/f16.ts';
import { packF16, packQ4 } from './quantize.ts';

/** Source rows as f32 values, or raw f16 bits (kept exact when the target is f16). */
export type RowSource = Float32Array | Uint16Array;

export interface UploadMatrixOptions {
  /** Override the per-part byte budget (tests use this to force a split on small matrices). */
  maxPartBytes?: number;
}

function toF32(src: RowSource, start: number, count: number): Float32Array {
  if (src instanceof Float32Array) return src.subarray(start, start + count);
  const out = new Float32Array(count);
  for (let i = 0; i < count; i++) out[i] = f16BitsToF32(src[start + i]);
  return out;
}

export function rowsPerPart(ctx: GpuContext, format: WeightFormat, k: number, maxPartBytes?: number): number {
  const budget = Math.min(maxPartBytes ?? Number.POSITIVE_INFINITY, ctx.maxBinding, ctx.limits.maxBufferSize);
  const perRow = format === 'q4' ? q4Dims(k).wordsPerRow * 4 : matrixRowBytes(format, k);
  return Math.max(1, Math.floor(budget / perRow));
}

export async function uploadMatrix(
  ctx: GpuContext,
  label: string,
  format: WeightFormat,
  n: number,
  k: number,
  src: RowSource,
  options: UploadMatrixOptions = {},
): Promise<Matrix> {
  const per = rowsPerPart(ctx, format, k, options.maxPartBytes);
  const parts: MatrixPart[] = [];
  const usage = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST;
  try {
    for (let rowStart = 0; rowStart < n; rowStart += per) {
      const rowCount = Math.min(per, n - rowStart);
      const partLabel = parts.length === 0 && rowCount === n ? label : `${label}[rows ${rowStart}+${rowCount}]`;
      if (format === 'f32') {
        const vals = toF32(src, rowStart * k, rowCount * k);
        const data = await ctx.allocate(partLabel, vals.byteLength, usage);
        ctx.write(data, vals);
        parts.push({ rowStart, rowCount, data });
      } else if (format === 'f16') {
        const slice = src.subarray(rowStart * k, (rowStart + rowCount) * k);
        const words = packF16(slice, rowCount, k);
        const data = await ctx.allocate(partLabel, words.byteLength, usage);
        ctx.write(data, words);
        parts.push({ rowStart, rowCount, data });
      } else {
        const packed = packQ4(toF32(src, rowStart * k, rowCount * k), rowCount, k);
        const data = await ctx.allocate(`${partLabel}.q`, packed.qweight.byteLength, usage);
        ctx.write(data, packed.qweight);
        const scales = await ctx.allocate(`${partLabel}.scales`, packed.scales.byteLength, usage);
        ctx.write(scales, packed.scales);
        parts.push({ rowStart, rowCount, data, scales });
      }
    }
  } catch (e) {
    for (const p of parts) {
      p.data.destroy();
      p.scales?.destroy();
    }
    throw e;
  }
  return { format, n, k, parts, label };
}
