/**
 * PNG and JPEG decoding in Node to RGB uint8 CHW, matching PIL's `Image.open(f).convert("RGB")` (what the
 * official TroL code feeds `pil_to_tensor`). Dependencies: `pngjs` (PNG) and `jpeg-js` (JPEG), both pure JS.
 *
 * PNG is exact against PIL:
 * - gray 1/2/4-bit → scaled to 0..255 (×255, ×85, ×17), 8-bit as is, replicated to R=G=B;
 * - gray 16-bit → PIL's "I;16" → RGB conversion, which CLIPS: min(v, 255) (not a rescale);
 * - RGB/RGBA/gray+alpha 16-bit → the high byte of each sample (PIL's ";16B" raw modes);
 * - palette → the palette's RGB; alpha (tRNS or an alpha channel) is dropped, never composited;
 * - the tRNS chunk is removed before decoding, since pngjs would otherwise zero the RGB of the
 *   transparent colour key while PIL keeps it.
 * JPEG: jpeg-js's baseline/progressive decoder, gray → R=G=B. Not bit-identical to PIL's libjpeg-turbo
 * (IDCT and chroma upsampling differ by a few LSB), so exactness holds from the decoded pixels onwards.
 * EXIF orientation is ignored, as PIL's open/convert does. Unknown, corrupt or zero-size → ImageDecodeError.
 */

import jpeg from 'jpeg-js';
import pngjs from 'pngjs';
import { ImageDecodeError } from '../errors.ts';
import type { DecodedImage } from './preprocess.ts';

const PNG_SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];

export function sniffImageFormat(bytes: Uint8Array): 'png' | 'jpeg' | null {
  if (bytes.length >= 8 && PNG_SIGNATURE.every((b, i) => bytes[i] === b)) return 'png';
  if (bytes.length >= 3 && bytes[0] === 0xff && bytes[1] === 0xd8 && bytes[2] === 0xff) return 'jpeg';
  return null;
}

/** The PNG with its tRNS chunks left out (chunk walk only; a malformed chunk list is left for pngjs to reject). */
function withoutTrns(bytes: Uint8Array): Uint8Array {
  const parts: Uint8Array[] = [bytes.subarray(0, 8)];
  let pos = 8;
  let dropped = false;
  while (pos + 12 <= bytes.length) {
    const len = ((bytes[pos] << 24) | (bytes[pos + 1] << 16) | (bytes[pos + 2] << 8) | bytes[pos + 3]) >>> 0;
    const end = pos + 12 + len;
    if (end > bytes.length) break;
    const type = String.fromCharCode(...bytes.subarray(pos + 4, pos + 8));
    if (type === 'tRNS') dropped = true;
    else parts.push(bytes.subarray(pos, end));
    pos = end;
  }
  if (!dropped) return bytes;
  parts.push(bytes.subarray(pos));
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

function decodePng(bytes: Uint8Array): DecodedImage {
  let png: ReturnType<typeof pngjs.PNG.sync.read>;
  try {
    // RGBA samples come back with the palette resolved; Uint16Array for 16-bit input (skipRescale).
    png = pngjs.PNG.sync.read(Buffer.from(withoutTrns(bytes)), { skipRescale: true });
  } catch (e) {
    throw new ImageDecodeError(`PNG decode failed: ${(e as Error).message}`);
  }
  const { width, height, depth, colorType, data } = png;
  checkSize(width, height);
  const n = width * height;
  if (data.length < n * 4) throw new ImageDecodeError('PNG decode failed: pixel data is short');
  // Map one raw sample to PIL's 8-bit value for this PNG's colour type and bit depth.
  let map: (v: number) => number;
  const gray = colorType === 0;
  if (depth === 16) map = gray ? (v) => Math.min(v, 255) : (v) => v >> 8;
  else if (depth < 8 && gray) map = (v) => (v * 255) / ((1 << depth) - 1);
  else map = (v) => v;
  const out = new Uint8Array(3 * n);
  for (let k = 0; k < n; k++) {
    out[k] = map(data[4 * k]);
    out[n + k] = map(data[4 * k + 1]);
    out[2 * n + k] = map(data[4 * k + 2]);
  }
  return { data: out, width, height };
}

function decodeJpeg(bytes: Uint8Array): DecodedImage {
  let img: { width: number; height: number; data: Uint8Array };
  try {
    img = jpeg.decode(bytes, { useTArray: true, formatAsRGBA: true, tolerantDecoding: false });
  } catch (e) {
    throw new ImageDecodeError(`JPEG decode failed: ${(e as Error).message}`);
  }
  checkSize(img.width, img.height);
  const n = img.width * img.height;
  if (img.data.length < 4 * n) throw new ImageDecodeError('JPEG decode failed: pixel data is short');
  const out = new Uint8Array(3 * n);
  for (let k = 0; k < n; k++) {
    out[k] = img.data[4 * k];
    out[n + k] = img.data[4 * k + 1];
    out[2 * n + k] = img.data[4 * k + 2];
  }
  return { data: out, width: img.width, height: img.height };
}

function checkSize(width: number, height: number): void {
  if (!(Number.isInteger(width) && Number.isInteger(height) && width > 0 && height > 0)) {
    throw new ImageDecodeError(`image has zero or invalid size ${width}×${height}`);
  }
}

/** Decodes PNG or JPEG bytes to RGB uint8 [3, height, width] (CHW), as PIL's convert("RGB"). */
export async function decodeImageNode(bytes: Uint8Array): Promise<DecodedImage> {
  if (!(bytes instanceof Uint8Array) || bytes.length === 0) throw new ImageDecodeError('empty image');
  const format = sniffImageFormat(bytes);
  if (format === 'png') return decodePng(bytes);
  if (format === 'jpeg') return decodeJpeg(bytes);
  throw new ImageDecodeError('unsupported image format (only PNG and JPEG are decoded)');
}
