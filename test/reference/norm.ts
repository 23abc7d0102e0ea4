/** f64 references for RMSNorm and LayerNorm over rows of length d (row-major). Exported for the model reference. */

/** y = x / sqrt(mean(x²) + eps) · w, per row. */
export function rmsNorm(
  x: ArrayLike<number>,
  w: ArrayLike<number>,
  rows: number,
  d: number,
  eps: number,
): Float64Array {
  const y = new Float64Array(rows * d);
  for (let r = 0; r < rows; r++) {
    let ss = 0;
    for (let i = 0; i < d; i++) ss += x[r * d + i] * x[r * d + i];
    const inv = 1 / Math.sqrt(ss / d + eps);
    for (let i = 0; i < d; i++) y[r * d + i] = x[r * d + i] * inv * w[i];
  }
  return y;
}

/** y = (x − mean) / sqrt(var + eps) · w + b, per row (biased variance, as torch.nn.LayerNorm). */
export function layerNorm(
  x: ArrayLike<number>,
  w: ArrayLike<number>,
  b: ArrayLike<number>,
  rows: number,
  d: number,
  eps: number,
): Float64Array {
  const y = new Float64Array(rows * d);
  for (let r = 0; r < rows; r++) {
    let s = 0;
    for (let i = 0; i < d; i++) s += x[r * d + i];
    const mean = s / d;
    let ss = 0;
    for (let i = 0; i < d; i++) ss += (x[r * d + i] - mean) ** 2;
    const inv = 1 / Math.sqrt(ss / d + eps);
    for (let i = 0; i < d; i++) y[r * d + i] = (x[r * d + i] - mean) * inv * w[i] + b[i];
  }
  return y;
}
