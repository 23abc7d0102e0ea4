/**
 * Browser image decoding to RGB uint8 [3, height, width] (CHW), via createImageBitmap + OffscreenCanvas.
 * The canvas is only used at the image's natural size: the resize is ours (resize.ts), because a canvas
 * drawImage resize is not torch's uint8 bicubic.
 *
 * Caveats against the PIL reference:
 * - `premultiplyAlpha: 'none'` and `colorSpaceConversion: 'none'` keep the stored RGB of translucent pixels and
 *   skip ICC/gamma conversion, as PIL's convert("RGB") does (alpha dropped, not composited). A 2D canvas still
 *   stores premultiplied pixels internally in some browsers, so RGB under alpha < 255 can lose precision
 *   (fully transparent pixels may read back as 0,0,0). Opaque images are unaffected.
 * - Browsers apply EXIF orientation (`imageOrientation: 'from-image'` is the default and 'none' is deprecated);
 *   PIL's open/convert does not. JPEG decoders differ by a few LSB from libjpeg-turbo.
 * - 16-bit PNGs are reduced to 8 bits by the browser (PIL keeps the high byte, or clips 16-bit gray).
 */

import { ImageDecodeError } from '../errors.ts';
import type { DecodedImage } from './preprocess.ts';

function toChw(rgba: Uint8ClampedArray, width: number, height: number): DecodedImage {
  const n = width * height;
  const data = new Uint8Array(3 * n);
  for (let k = 0; k < n; k++) {
    data[k] = rgba[4 * k];
    data[n + k] = rgba[4 * k + 1];
    data[2 * n + k] = rgba[4 * k + 2];
  }
  return { data, width, height };
}

export async function decodeImageBrowser(input: Blob | ImageBitmap | ImageData): Promise<DecodedImage> {
  if (typeof ImageData !== 'undefined' && input instanceof ImageData) {
    if (input.width === 0 || input.height === 0) throw new ImageDecodeError('image has zero size');
    return toChw(input.data, input.width, input.height);
  }
  let bitmap: ImageBitmap;
  let owned = false;
  if (typeof ImageBitmap !== 'undefined' && input instanceof ImageBitmap) {
    bitmap = input;
  } else {
    if ((input as Blob).size === 0) throw new ImageDecodeError('empty image');
    try {
      bitmap = await createImageBitmap(input as Blob, { premultiplyAlpha: 'none', colorSpaceConversion: 'none' });
      owned = true;
    } catch (e) {
      throw new ImageDecodeError(`image decode failed: ${(e as Error).message}`);
    }
  }
  try {
    const { width, height } = bitmap;
    if (width === 0 || height === 0) throw new ImageDecodeError('image has zero size');
    const canvas = new OffscreenCanvas(width, height);
    const ctx = canvas.getContext('2d', { willReadFrequently: true });
    if (!ctx) throw new ImageDecodeError('no 2D canvas context to read the image');
    ctx.drawImage(bitmap, 0, 0);
    return toChw(ctx.getImageData(0, 0, width, height).data, width, height);
  } finally {
    if (owned) bitmap.close();
  }
}
