/**
 * f64/plain-JS references for the sampling reductions. Order: larger value first, ties → lower index;
 * NaN ranks below every number (so it is chosen only when nothing else is left).
 */

function rank(a: number, ia: number, b: number, ib: number): number {
  const an = Number.isNaN(a);
  const bn = Number.isNaN(b);
  if (an !== bn) return an ? 1 : -1;
  if (!an && a !== b) return a > b ? -1 : 1;
  return ia - ib;
}

export function argmax(logits: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < logits.length; i++) if (rank(logits[i], i, logits[best], best) < 0) best = i;
  return best;
}

export function topK(logits: ArrayLike<number>, k: number): { values: number[]; indices: number[] } {
  const idx = Array.from({ length: logits.length }, (_, i) => i);
  idx.sort((i, j) => rank(logits[i], i, logits[j], j));
  const indices = idx.slice(0, k);
  return { indices, values: indices.map((i) => logits[i]) };
}

/** HF RepetitionPenaltyLogitsProcessor on one row: each distinct id in ids[0..n) once; ids ≥ V ignored. */
export function repetitionPenalty(
  logits: ArrayLike<number>,
  ids: ArrayLike<number>,
  n: number,
  penalty: number,
): Float64Array {
  const out = Float64Array.from(logits);
  const seen = new Set<number>();
  for (let i = 0; i < n; i++) {
    const id = ids[i];
    if (id >= logits.length || seen.has(id)) continue;
    seen.add(id);
    const x = logits[id];
    out[id] = x > 0 ? x / penalty : x * penalty;
  }
  return out;
}
