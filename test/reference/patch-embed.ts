/** f64 references for the CLIP patch embedding pieces. */

/** patches [P, C·p·p] from pixels [C, S, S]: row py·G + px, column c·p·p + ky·p + kx. */
export function im2col(pixels: ArrayLike<number>, C: number, S: number, p: number): Float64Array {
  const G = S / p;
  const cols = C * p * p;
  const out = new Float64Array(G * G * cols);
  for (let py = 0; py < G; py++) {
    for (let px = 0; px < G; px++) {
      const row = (py * G + px) * cols;
      for (let c = 0; c < C; c++) {
        for (let ky = 0; ky < p; ky++) {
          for (let kx = 0; kx < p; kx++) {
            out[row + c * p * p + ky * p + kx] = pixels[c * S * S + (py * p + ky) * S + (px * p + kx)];
          }
        }
      }
    }
  }
  return out;
}

/** The convolution itself (stride = kernel = p, no bias): out [P, D], weight [D, C, p, p]. */
export function conv2dPatches(
  pixels: ArrayLike<number>,
  weight: ArrayLike<number>,
  C: number,
  S: number,
  p: number,
  D: number,
): Float64Array {
  const G = S / p;
  const out = new Float64Array(G * G * D);
  for (let oy = 0; oy < G; oy++) {
    for (let ox = 0; ox < G; ox++) {
      for (let o = 0; o < D; o++) {
        let acc = 0;
        for (let c = 0; c < C; c++) {
          for (let ky = 0; ky < p; ky++) {
            for (let kx = 0; kx < p; kx++) {
              acc += pixels[(c * S + oy * p + ky) * S + ox * p + kx] * weight[((o * C + c) * p + ky) * p + kx];
            }
          }
        }
        out[(oy * G + ox) * D + o] = acc;
      }
    }
  }
  return out;
}

/** out [P+1, D]: row 0 = cls + pos[0]; row 1+i = patchEmb[i] + pos[1+i]. */
export function visionEmbed(
  patchEmb: ArrayLike<number>,
  cls: ArrayLike<number>,
  pos: ArrayLike<number>,
  P: number,
  D: number,
): Float64Array {
  const out = new Float64Array((P + 1) * D);
  for (let j = 0; j < D; j++) out[j] = cls[j] + pos[j];
  for (let i = 0; i < P; i++) {
    for (let j = 0; j < D; j++) out[(1 + i) * D + j] = patchEmb[i * D + j] + pos[(1 + i) * D + j];
  }
  return out;
}
