/**
 * Image → model input for TroL-1.8B/7B: the exact uint8 bicubic squash to size×size (no aspect ratio kept, no
 * crop, no padding), then CLIP normalization. `size` is the config's `img_size` (490 for the real model).
 */

import { ShapeError } from '../errors.ts';
import { clipNormalize } from './normalize.ts';
import { resizeBicubicU8 } from './resize.ts';

/** A decoded RGB image, uint8 [3, height, width] (CHW), as the decoders return it. */
export interface DecodedImage {
  data: Uint8Array;
  width: number;
  height: number;
}

export interface PreprocessedImage {
  /** uint8 [3, size, size] after the resize. */
  resized: Uint8Array;
  /** float32 [3, size, size] normalized pixel values, the ViT input. */
  pixels: Float32Array;
}

export function preprocessImage(img: DecodedImage, size: number): PreprocessedImage {
  if (!Number.isInteger(size) || size < 1) throw new ShapeError(`preprocessImage: bad size ${size}`);
  if (img.data.length !== 3 * img.width * img.height) {
    throw new ShapeError(`preprocessImage: ${img.data.length} bytes are not RGB ${img.width}×${img.height}`);
  }
  const resized = resizeBicubicU8(img.data, 3, img.height, img.width, size, size);
  return { resized, pixels: clipNormalize(resized, 3, size, size) };
}
