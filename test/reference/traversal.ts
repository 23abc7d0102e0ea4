/** f64 reference for the TroL gate-and-mix (exported for the model's CPU reference). */

/** s = 0.5·tanh(h1·w + b) + 0.5 for one token's hidden vector. */
export function gateScore(h1: ArrayLike<number>, offset: number, w: ArrayLike<number>, b: number): number {
  let z = b;
  for (let i = 0; i < w.length; i++) z += h1[offset + i] * w[i];
  return 0.5 * Math.tanh(z) + 0.5;
}

/** y[t] = (1 − s[t])·h1[t] + s[t]·h2[t] over T tokens of width d; returns y and the scores s. */
export function gateMix(
  h1: ArrayLike<number>,
  h2: ArrayLike<number>,
  w: ArrayLike<number>,
  b: number,
  T: number,
  d: number,
): { y: Float64Array; gate: Float64Array } {
  const y = new Float64Array(T * d);
  const gate = new Float64Array(T);
  for (let t = 0; t < T; t++) {
    const s = gateScore(h1, t * d, w, b);
    gate[t] = s;
    for (let i = 0; i < d; i++) y[t * d + i] = (1 - s) * h1[t * d + i] + s * h2[t * d + i];
  }
  return { y, gate };
}

/** The blend alone, for given scores s [T]: y[t] = (1 − s[t])·h1[t] + s[t]·h2[t]. */
export function mix(h1: ArrayLike<number>, h2: ArrayLike<number>, s: ArrayLike<number>, T: number, d: number) {
  const y = new Float64Array(T * d);
  for (let t = 0; t < T; t++) {
    for (let i = 0; i < d; i++) y[t * d + i] = (1 - s[t]) * h1[t * d + i] + s[t] * h2[t * d + i];
  }
  return y;
}
