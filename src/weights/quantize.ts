/**
 * CPU packing of weight rows into the GPU formats described in `src/gpu/tensor.ts`.
 * Inputs are f32 values (row-major [rows][k]); outputs are the exact words the kernels read.
 */
import { q4Dims } from '../gpu/tensor.ts';
import { f16BitsToF32, f32ToF16Bits } from '../util/f16.ts';

export interface PackedQ4 {
  qweight: Uint32Array; // [rows][wordsPerRow]
  scales: Uint32Array; // [rows][scaleWordsPerRow], f16 pairs
}

/** Quantize `rows`×`k` values to q4 (symmetric, group 32, f16 scale). */
export function packQ4(values: Float32Array, rows: number, k: number): PackedQ4 {
  const { wordsPerRow, groups, scaleWordsPerRow } = q4Dims(k);
  const qweight = new Uint32Array(rows * wordsPerRow);
  const scales = new Uint32Array(rows * scaleWordsPerRow);
  for (let r = 0; r < rows; r++) {
    const row = r * k;
    for (let g = 0; g < groups; g++) {
      let maxAbs = 0;
      const g0 = g * 32;
      const g1 = Math.min(g0 + 32, k);
      for (let i = g0; i < g1; i++) maxAbs = Math.max(maxAbs, Math.abs(values[row + i]));
      const scaleBits = f32ToF16Bits(maxAbs / 7);
      // Quantize against the f16-rounded scale the kernel will use.
      const scale = f16BitsToF32(scaleBits);
      const inv = scale > 0 ? 1 / scale : 0;
      const sw = r * scaleWordsPerRow + (g >> 1);
      scales[sw] |= scaleBits << ((g & 1) * 16);
      for (let i = g0; i < g0 + 32; i++) {
        const v = i < k ? values[row + i] : 0;
        const q = Math.max(-8, Math.min(7, Math.round(v * inv)));
        const w = r * wordsPerRow + (i >> 3);
        qweight[w] |= (q + 8) << ((i & 7) * 4);
      }
    }
  }
  return { qweight, scales };
}

/** Dequantize q4 back to f32 (for references and error reports). */
export function unpackQ4(p: PackedQ4, rows: number, k: number): Float32Array {
  const { wordsPerRow, scaleWordsPerRow } = q4Dims(k);
  const out = new Float32Array(rows * k);
  for (let r = 0; r < rows; r++) {
    for (let i = 0; i < k; i++) {
      const g = i >> 5;
      const scale = f16BitsToF32((p.scales[r * scaleWordsPerRow + (g >> 1)] >>> ((g & 1) * 16)) & 0xffff);
      const q = ((p.qweight[r * wordsPerRow + (i >> 3)] >>> ((i & 7) * 4)) & 0xf) - 8;
      out[r * k + i] = q * scale;
    }
  }
  return out;
}

/** f16 bits of `rows`×`k` values, packed two per u32 with each row padded to an even count. */
export function packF16(values: Float32Array | Uint16Array, rows: number, k: number): Uint32Array {
  const wordsPerRow = Math.ceil(k / 2);
  const out = new Uint32Array(rows * wordsPerRow);
  const isBits = values instanceof Uint16Array;
  for (let r = 0; r < rows; r++) {
    for (let i = 0; i < k; i++) {
      const v = values[r * k + i];
      const bits = isBits ? v : f32ToF16Bits(v);
      out[r * wordsPerRow + (i >> 1)] |= bits << ((i & 1) * 16);
    }
  }
  return out;
}
