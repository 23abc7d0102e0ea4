/**
 * loraAdd: Partial-LoRA (IXC2 P-LoRA) on selected rows: for each i < numRows with r = rows[i],
 *   out[r] += (x[r] · Aᵀ) · Bᵀ · scale,   A: [R, K], B: [N, R].
 * Rows not listed are untouched. Built from two `linear` calls (shaders/matmul.wgsl), no kernel of its own:
 *   1. tmp[i] = x[rows[i]] · Aᵀ                      (gather)
 *   2. out[rows[i]] += scale · tmp[i] · Bᵀ           (scatter + accumulate)
 * `tmp` is an activation tensor (at least numRows × R elements) used as scratch: with f16 activations the
 * rank-R intermediate is rounded to f16 there. Listed rows must be distinct (they are scattered to).
 *
 * Order: shape/dtype checks → (pipeline keys, dispatch sizes, uniforms: inside `linear`) → dispatches.
 */
import { ShapeError } from '../errors.ts';
import type { GpuContext } from '../gpu/context.ts';
import { type Matrix, Tensor } from '../gpu/tensor.ts';
import { type LinearVariant, linear } from './linear.ts';

export async function loraAdd(
  ctx: GpuContext,
  x: Tensor,
  a: Matrix,
  b: Matrix,
  rows: Tensor,
  numRows: number,
  out: Tensor,
  scale: number,
  tmp: Tensor,
  variant: LinearVariant = 'auto',
): Promise<void> {
  const k = x.shape[x.shape.length - 1];
  const r = a.n;
  if (a.k !== k) throw new ShapeError(`loraAdd: A '${a.label}' is [${a.n}, ${a.k}] but x rows have K = ${k}`);
  if (b.k !== r) throw new ShapeError(`loraAdd: B '${b.label}' is [${b.n}, ${b.k}] but A has rank ${r}`);
  const n = out.shape[out.shape.length - 1];
  if (b.n !== n) throw new ShapeError(`loraAdd: B '${b.label}' has ${b.n} rows but out rows have ${n} columns`);
  if (!Number.isInteger(numRows) || numRows < 0 || numRows > rows.numel) {
    throw new ShapeError(`loraAdd: numRows = ${numRows} but rows has ${rows.numel} entries`);
  }
  if (tmp.dtype !== x.dtype) throw new ShapeError(`loraAdd: tmp is ${tmp.dtype} but x is ${x.dtype}`);
  if (tmp.numel < numRows * r) {
    throw new ShapeError(`loraAdd: tmp holds ${tmp.numel} elements, fewer than numRows × R = ${numRows * r}`);
  }
  if (numRows === 0) return;

  const mid = new Tensor(tmp.buffer, tmp.dtype, [numRows, r]);
  await linear(ctx, x, a, mid, { inRows: rows, rows: numRows, variant });
  await linear(ctx, mid, b, out, { outRows: rows, rows: numRows, accumulate: true, scale, variant });
}
