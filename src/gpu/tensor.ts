/**
 * GPU-resident data as the ops see it.
 *
 * `Tensor`: an activation (or small parameter) in one buffer, row-major, dtype `act`/f32/f16/i32/u32.
 * Activations always fit one binding; the model chunks work so they do.
 *
 * `Matrix`: a weight W of logical shape [n, k] (output features × input features, PyTorch `Linear.weight`
 * layout), possibly larger than `maxStorageBufferBindingSize`. It is stored as row blocks (`parts`), each
 * its own buffer(s) under the binding limit; ops dispatch once per part and write the matching output
 * columns, so callers never see the split.
 *
 * Formats:
 *  - `f32`: array<f32>, row r at r*k.
 *  - `f16`: IEEE half bits, two per u32 (element 2i in the low half), row r at r*k halves; k padded to even.
 *  - `q4`:  symmetric int4, group 32 along k, f16 scale (MLC `q4f16_1` layout):
 *           k is padded with zeros to kp = ceil(k/32)*32. `qweight`: u32 [n][kp/8], nibble j (bits 4j..4j+3)
 *           of word w holds element 8w+j as q+8 with q = clamp(round(x/scale), -8, 7) ∈ [-8, 7];
 *           `scales`: f16 pairs in u32 [n][gp/2], gp = (kp/32 rounded up to even); scale = max|x|/7 over
 *           the group (so +max maps to 7 exactly; -8 is reachable only by rounding).
 *           Dequantised value = (nibble − 8) · scale.
 */
import type { ActDType } from './context.ts';

export type DType = 'f32' | 'f16' | 'i32' | 'u32' | 'u8';

export const DTYPE_BYTES: Record<DType, number> = { f32: 4, f16: 2, i32: 4, u32: 4, u8: 1 };

export class Tensor {
  constructor(
    readonly buffer: GPUBuffer,
    readonly dtype: DType,
    readonly shape: readonly number[],
  ) {}
  get numel(): number {
    return this.shape.reduce((a, b) => a * b, 1);
  }
  get byteLength(): number {
    return this.numel * DTYPE_BYTES[this.dtype];
  }
  get label(): string {
    return this.buffer.label;
  }
  destroy(): void {
    this.buffer.destroy();
  }
}

export type WeightFormat = 'f32' | 'f16' | 'q4';

export interface MatrixPart {
  /** First row (output feature) held by this part, and how many. */
  rowStart: number;
  rowCount: number;
  /** f32/f16 data, or q4 packed nibbles. */
  data: GPUBuffer;
  /** q4 only: packed f16 scales. */
  scales?: GPUBuffer;
}

export interface Matrix {
  readonly format: WeightFormat;
  readonly n: number;
  readonly k: number;
  readonly parts: MatrixPart[];
  readonly label: string;
}

export const Q4_GROUP = 32;

/** Padded sizes of the q4 layout for a given k. */
export function q4Dims(k: number): { kp: number; wordsPerRow: number; groups: number; scaleWordsPerRow: number } {
  const kp = Math.ceil(k / Q4_GROUP) * Q4_GROUP;
  const groups = kp / Q4_GROUP;
  const scaleWordsPerRow = Math.ceil(groups / 2);
  return { kp, wordsPerRow: kp / 8, groups, scaleWordsPerRow };
}

/** Bytes one row of a matrix takes in its format (data + scales). */
export function matrixRowBytes(format: WeightFormat, k: number): number {
  if (format === 'f32') return k * 4;
  if (format === 'f16') return Math.ceil(k / 2) * 4;
  const d = q4Dims(k);
  return d.wordsPerRow * 4 + d.scaleWordsPerRow * 4;
}

export function destroyMatrix(m: Matrix): void {
  for (const p of m.parts) {
    p.data.destroy();
    p.scales?.destroy();
  }
}

export type { ActDType };
