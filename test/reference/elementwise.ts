/**
 * f64 references for the pointwise ops (written from the formulas, not from the WGSL). Exported for the
 * model's CPU reference too.
 */

/** erf in f64: for |x| ≤ 6 the all-positive series erf(x) = 2/√π·e^{−x²}·Σ 2ⁿx^{2n+1}/(1·3·…·(2n+1))
 * (no cancellation, ~1e-16 relative); beyond, |erf| = 1 to f64 precision (erfc(6) ≈ 2e-17). */
export function erf(x: number): number {
  const ax = Math.abs(x);
  if (ax > 6) return Math.sign(x);
  let term = ax;
  let sum = ax;
  for (let n = 1; n < 200; n++) {
    term *= (2 * ax * ax) / (2 * n + 1);
    sum += term;
    if (term < sum * 1e-17) break;
  }
  return Math.sign(x) * (2 / Math.sqrt(Math.PI)) * Math.exp(-ax * ax) * sum;
}

export function sigmoid(z: number): number {
  return 1 / (1 + Math.exp(-z));
}

/** Exact GELU: 0.5·x·(1 + erf(x/√2)). */
export function gelu(x: number): number {
  return 0.5 * x * (1 + erf(x / Math.SQRT2));
}

/** CLIP quick_gelu: x·σ(1.702x). */
export function quickGelu(x: number): number {
  return x * sigmoid(1.702 * x);
}

export function silu(x: number): number {
  return x * sigmoid(x);
}

export function swiglu(gate: number, up: number): number {
  return silu(gate) * up;
}

export function mapUnary(f: (x: number) => number, x: ArrayLike<number>): Float64Array {
  const out = new Float64Array(x.length);
  for (let i = 0; i < x.length; i++) out[i] = f(x[i]);
  return out;
}

export function mapBinary(f: (a: number, b: number) => number, a: ArrayLike<number>, b: ArrayLike<number>) {
  const out = new Float64Array(a.length);
  for (let i = 0; i < a.length; i++) out[i] = f(a[i], b[i]);
  return out;
}
