/**
 * Closeness checks with an absolute and a relative part: |a − e| ≤ atol + rtol·|e| for every element.
 * On failure the message gives the count of bad elements, the max abs and rel error and the worst index,
 * so a red test says where to look.
 */
import { expect } from 'vitest';

export interface Tolerance {
  atol: number;
  rtol: number;
}

export interface CloseReport {
  n: number;
  bad: number;
  maxAbs: number;
  maxRel: number;
  worst: number;
  worstActual: number;
  worstExpected: number;
}

export function compareClose(actual: ArrayLike<number>, expected: ArrayLike<number>, tol: Tolerance): CloseReport {
  if (actual.length !== expected.length) {
    throw new Error(`length mismatch: actual ${actual.length}, expected ${expected.length}`);
  }
  let bad = 0;
  let maxAbs = 0;
  let maxRel = 0;
  let worst = -1;
  let worstExcess = Number.NEGATIVE_INFINITY;
  for (let i = 0; i < actual.length; i++) {
    const a = actual[i];
    const e = expected[i];
    const d = Math.abs(a - e);
    const limit = tol.atol + tol.rtol * Math.abs(e);
    if (!(d <= limit)) bad++; // NaN counts as bad
    const excess = Number.isNaN(d) ? Number.POSITIVE_INFINITY : d - limit;
    if (excess > worstExcess) {
      worstExcess = excess;
      worst = i;
    }
    if (d > maxAbs || Number.isNaN(d)) maxAbs = Number.isNaN(d) ? Number.NaN : d;
    const rel = d / Math.max(Math.abs(e), 1e-30);
    if (rel > maxRel) maxRel = rel;
  }
  return {
    n: actual.length,
    bad,
    maxAbs,
    maxRel,
    worst,
    worstActual: actual[worst],
    worstExpected: expected[worst],
  };
}

export function formatReport(label: string, r: CloseReport): string {
  return `${label}: ${r.bad}/${r.n} outside tolerance; max abs ${r.maxAbs.toExponential(3)}, max rel ${r.maxRel.toExponential(3)}; worst index ${r.worst} (got ${r.worstActual}, want ${r.worstExpected})`;
}

/** Assert closeness; logs the report line either way so test output carries the measured error. */
export function expectClose(
  actual: ArrayLike<number>,
  expected: ArrayLike<number>,
  tol: Tolerance,
  label = 'values',
): CloseReport {
  const r = compareClose(actual, expected, tol);
  const line = formatReport(label, r);
  if (process.env.TROL_TEST_VERBOSE) console.log(line);
  expect(r.bad, line).toBe(0);
  return r;
}
