/**
 * CLIP normalization on 0–255 values, as the official TroL-1.8B/7B pipeline does after the uint8 resize:
 * out = (p − 255·mean) / (255·std), per channel, in float32 (every intermediate rounded to float32, as torch
 * computes a float32 tensor op). Output layout = input layout, [C, H, W].
 */

import { ShapeError } from '../errors.ts';

/** openai/clip-vit-large-patch14(-336) image mean and std (RGB). */
export const CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073] as const;
export const CLIP_STD = [0.26862954, 0.26130258, 0.27577711] as const;

export function clipNormalize(u8: Uint8Array, C: number, H: number, W: number): Float32Array {
  if (C !== 3) throw new ShapeError(`clipNormalize: expected 3 channels (RGB), got ${C}`);
  if (!Number.isInteger(H) || !Number.isInteger(W) || H < 1 || W < 1 || u8.length !== C * H * W) {
    throw new ShapeError(`clipNormalize: ${u8.length} bytes do not form [${C}, ${H}, ${W}]`);
  }
  const f = Math.fround;
  const out = new Float32Array(u8.length);
  const plane = H * W;
  for (let c = 0; c < C; c++) {
    // 255·mean and 255·std as float32 products of the float32 constants.
    const m = f(255 * f(CLIP_MEAN[c]));
    const s = f(255 * f(CLIP_STD[c]));
    for (let k = c * plane; k < (c + 1) * plane; k++) out[k] = f(f(u8[k] - m) / s);
  }
  return out;
}
