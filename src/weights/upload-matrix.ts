/**
 * Turning a weight [n, k] into a GPU `Matrix` in the requested format, split into row blocks so every buffer
 * stays under the device's `maxStorageBufferBindingSize` (128 MiB on lavapipe and many phones). Rows are read,
 * converted and written in blocks of a few tens of MB, so a 92544×2048 head never sits in host memory whole.
 */
import { ShapeError } from '../errors.ts';
import type { GpuContext } from '../gpu/context.ts';
import { type Matrix, type MatrixPart, matrixRowBytes, q4Dims, type WeightFormat } from '../gpu/tensor.ts';
import { f16BitsToF32 } from '../util/f16.ts';
import { packF16, packQ4 } from './quantize.ts';

/** Source rows as f32 values, or raw f16 bits (kept exact when the target is f16). */
export type RowSource = Float32Array | Uint16Array;

export interface UploadMatrixOptions {
  /** Override the per-part byte budget (tests use this to force a split on small matrices). */
  maxPartBytes?: number;
  /** Override the host-memory budget of one read block (tests use this to force many blocks). */
  readBlockBytes?: number;
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

/** Reads rows [start, start + count) of the source on demand (e.g. a safetensors row range). */
export type RowReader = (start: number, count: number) => Promise<RowSource>;

/** Host memory one read block may take: bounds peak memory while a large tensor is converted. */
const READ_BLOCK_BYTES = 32 * 2 ** 20;

export async function uploadMatrix(
  ctx: GpuContext,
  label: string,
  format: WeightFormat,
  n: number,
  k: number,
  src: RowSource | RowReader,
  options: UploadMatrixOptions = {},
): Promise<Matrix> {
  const per = rowsPerPart(ctx, format, k, options.maxPartBytes);
  // Rows read, converted and written at a time (f32 conversion dominates: 4 bytes per element).
  const block = Math.max(1, Math.floor((options.readBlockBytes ?? READ_BLOCK_BYTES) / (k * 4)));
  const read: RowReader =
    typeof src === 'function' ? src : async (start, count) => src.subarray(start * k, (start + count) * k);
  const parts: MatrixPart[] = [];
  const usage = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST | GPUBufferUsage.COPY_SRC;
  const q = q4Dims(k);
  try {
    for (let rowStart = 0; rowStart < n; rowStart += per) {
      const rowCount = Math.min(per, n - rowStart);
      const partLabel = parts.length === 0 && rowCount === n ? label : `${label}[rows ${rowStart}+${rowCount}]`;
      const dataRowBytes = format === 'q4' ? q.wordsPerRow * 4 : matrixRowBytes(format, k);
      const part: MatrixPart = {
        rowStart,
        rowCount,
        data: await ctx.allocate(format === 'q4' ? `${partLabel}.q` : partLabel, rowCount * dataRowBytes, usage),
      };
      parts.push(part);
      if (format === 'q4') {
        part.scales = await ctx.allocate(`${partLabel}.scales`, rowCount * q.scaleWordsPerRow * 4, usage);
      }
      for (let r = 0; r < rowCount; r += block) {
        const count = Math.min(block, rowCount - r);
        const rows = await read(rowStart + r, count);
        if (rows.length !== count * k) {
          throw new ShapeError(`${label}: rows ${rowStart + r}+${count} gave ${rows.length} values, want ${count * k}`);
        }
        if (format === 'f32') {
          ctx.write(part.data, toF32(rows, 0, count * k), r * dataRowBytes);
        } else if (format === 'f16') {
          ctx.write(part.data, packF16(rows, count, k), r * dataRowBytes);
        } else {
          const packed = packQ4(toF32(rows, 0, count * k), count, k);
          ctx.write(part.data, packed.qweight, r * dataRowBytes);
          ctx.write(part.scales!, packed.scales, r * q.scaleWordsPerRow * 4);
        }
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
