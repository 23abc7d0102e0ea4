/**
 * f64 references for the embedding gather, and a q4 dequantiser written from the layout description in
 * src/gpu/tensor.ts (independent of src/weights/quantize.ts's unpackQ4).
 */
import { f16BitsToF32 } from '../../src/util/f16.ts';

/** out[t, :] = table[ids[t], :], zeros for ids ≥ n. */
export function embedding(table: ArrayLike<number>, n: number, d: number, ids: ArrayLike<number>): Float64Array {
  const out = new Float64Array(ids.length * d);
  for (let t = 0; t < ids.length; t++) {
    const id = ids[t];
    if (id >= n) continue;
    for (let j = 0; j < d; j++) out[t * d + j] = table[id * d + j];
  }
  return out;
}

/** Dequantise q4 words: element j of row r = (nibble j − 8) · scale of group ⌊j/32⌋. */
export function dequantQ4(qweight: Uint32Array, scales: Uint32Array, rows: number, k: number): Float64Array {
  const kp = Math.ceil(k / 32) * 32;
  const wordsPerRow = kp / 8;
  const scaleWordsPerRow = Math.ceil(kp / 32 / 2);
  const out = new Float64Array(rows * k);
  for (let r = 0; r < rows; r++) {
    for (let j = 0; j < k; j++) {
      const word = qweight[r * wordsPerRow + Math.floor(j / 8)];
      const nibble = Math.floor(word / 2 ** (4 * (j % 8))) % 16;
      const g = Math.floor(j / 32);
      const sw = scales[r * scaleWordsPerRow + Math.floor(g / 2)];
      const bits = g % 2 === 0 ? sw % 65536 : Math.floor(sw / 65536);
      out[r * k + j] = (nibble - 8) * f16BitsToF32(bits);
    }
  }
  return out;
}
