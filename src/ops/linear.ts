/**
 * linear: out[M, N] = x[M, K] · Wᵀ (W: [N, K], PyTorch `Linear.weight` layout), then ·scale, + bias, + out.
 *
 * Weights may be f32, f16 or q4 (see src/gpu/tensor.ts) and split into row blocks (`Matrix.parts`): one
 * dispatch per part, each writing its own output columns. x and out are activations of the same dtype (f16 or
 * f32); accumulation is f32. Optional gather (`inRows`: the i-th processed row reads x row inRows[i]) and
 * scatter (`outRows`: it writes out row outRows[i]); indices past the end of x / out are skipped. Scattered
 * rows must be distinct.
 *
 * Kernels (shaders/matmul.wgsl):
 *  - `register`: barrier-free register blocking (4 weight rows × up to 4 x rows per invocation) — the fast
 *    path on CPU adapters, for decode and prefill alike;
 *  - `tiled`: the GPU design — a thread team per weight row with a workgroup-memory reduction for M ≤ 4
 *    (decode), a 64×64 shared-memory tile GEMM above that (prefill);
 *  - `auto` picks `register` on software adapters (`ctx.adapterSummary.software`) and `tiled` elsewhere.
 *
 * Order: shape/dtype checks → pipeline key → dispatch size → uniforms → dispatch.
 */
import { FeatureUnavailableError, ShapeError } from '../errors.ts';
import type { GpuContext } from '../gpu/context.ts';
import type { PipelineKey } from '../gpu/shaders.ts';
import { type Matrix, q4Dims, type Tensor } from '../gpu/tensor.ts';

export type LinearVariant = 'auto' | 'tiled' | 'register';

export interface LinearOptions {
  /** f32 [N]. */
  bias?: Tensor;
  /** out += result (residual fusion; out may be the residual stream). */
  accumulate?: boolean;
  /** Result multiplied by scale before bias/accumulate (default 1). */
  scale?: number;
  /** u32 [Mi]: use x rows inRows[i] as the i-th input row (gather). */
  inRows?: Tensor;
  /** u32 [Mi]: write the i-th result row to out row outRows[i] (scatter). */
  outRows?: Tensor;
  /** Number of rows to process (Mi); defaults to the length of inRows/outRows, else x's rows. */
  rows?: number;
  /** Force a kernel variant (tests/bench). */
  variant?: LinearVariant;
}

/** Largest M the `tiled` variant serves with the GEMV (team-per-row) kernel rather than the tiled GEMM. */
export const GEMV_MAX_ROWS = 4;

const REG_WG = 64;
const COOP_WG = 256;
const COOP_TEAM = 32;
const TILE = 64;
const NR = 4;

const F_BIAS = 1;
const F_ACCUM = 2;
const F_GATHER = 4;
const F_SCATTER = 8;

/** A small read-only buffer bound where an optional input (scales, bias, row indices) is absent. */
const dummies = new WeakMap<GpuContext, Promise<GPUBuffer>>();
function dummyBuffer(ctx: GpuContext): Promise<GPUBuffer> {
  let b = dummies.get(ctx);
  if (!b) {
    b = ctx.allocate('linear.unused', 16, GPUBufferUsage.STORAGE);
    dummies.set(ctx, b);
    b.catch(() => dummies.delete(ctx));
  }
  return b;
}

function rowsCols(t: Tensor, what: string): [number, number] {
  if (t.shape.length === 2) return [t.shape[0], t.shape[1]];
  if (t.shape.length === 1) return [1, t.shape[0]];
  throw new ShapeError(`linear: ${what} '${t.label}' must be [rows, cols] (got [${t.shape.join(', ')}])`, {
    shape: [...t.shape],
  });
}

function checkIndex(t: Tensor | undefined, m: number, what: string): void {
  if (!t) return;
  if (t.dtype !== 'u32' && t.dtype !== 'i32') {
    throw new ShapeError(`linear: ${what} '${t.label}' must be u32 (got ${t.dtype})`);
  }
  if (t.numel < m) throw new ShapeError(`linear: ${what} has ${t.numel} entries, fewer than the ${m} rows to process`);
}

export async function linear(
  ctx: GpuContext,
  x: Tensor,
  w: Matrix,
  out: Tensor,
  opts: LinearOptions = {},
): Promise<void> {
  // ---- shape / dtype checks
  const act = x.dtype;
  if (act !== 'f16' && act !== 'f32') throw new ShapeError(`linear: x '${x.label}' must be f16 or f32 (got ${act})`);
  if (out.dtype !== act) throw new ShapeError(`linear: out is ${out.dtype} but x is ${act}`);
  if (act === 'f16' && !ctx.hasF16) {
    throw new FeatureUnavailableError('linear: f16 activations need shader-f16', { feature: 'shader-f16' });
  }
  const [xRows, k] = rowsCols(x, 'x');
  const [outRows, n] = rowsCols(out, 'out');
  if (k !== w.k) throw new ShapeError(`linear: x has K = ${k} but weight '${w.label}' is [${w.n}, ${w.k}]`);
  if (n !== w.n) throw new ShapeError(`linear: out has ${n} columns but weight '${w.label}' has N = ${w.n}`);
  if (k === 0) throw new ShapeError(`linear: K = 0 (weight '${w.label}' is [${w.n}, 0])`);
  const { inRows, outRows: scatter, bias } = opts;
  const m = opts.rows ?? inRows?.numel ?? scatter?.numel ?? xRows;
  if (!Number.isInteger(m) || m < 0) throw new ShapeError(`linear: rows = ${m} is not a row count`);
  if (!inRows && m > xRows) throw new ShapeError(`linear: ${m} rows to process but x has ${xRows}`);
  if (!scatter && m > outRows) throw new ShapeError(`linear: ${m} rows to process but out has ${outRows}`);
  if (!inRows && !scatter && opts.rows === undefined && outRows !== xRows) {
    throw new ShapeError(`linear: out has ${outRows} rows but x has ${xRows}`);
  }
  checkIndex(inRows, m, 'inRows');
  checkIndex(scatter, m, 'outRows');
  if (bias && (bias.dtype !== 'f32' || bias.numel !== n)) {
    throw new ShapeError(`linear: bias must be f32 [${n}] (got ${bias.dtype} [${bias.shape.join(', ')}])`);
  }
  const scale = opts.scale ?? 1;
  if (!Number.isFinite(scale)) throw new ShapeError(`linear: scale ${scale} is not finite`);
  if (w.format === 'q4' && w.parts.some((part) => !part.scales)) {
    throw new ShapeError(`linear: q4 weight '${w.label}' has a part without scales`);
  }
  if (m === 0 || n === 0) return;

  // ---- pipeline key
  const variant = opts.variant ?? 'auto';
  const register = variant === 'register' || (variant === 'auto' && ctx.adapterSummary.software);
  const kernel = register ? 'reg' : m <= GEMV_MAX_ROWS ? 'coop' : 'tiled';
  const q4 = w.format === 'q4';
  const mr = m === 1 ? 1 : m === 2 ? 2 : 4;
  const constants: Record<string, number> = {};
  if (!q4) constants.FMT = w.format === 'f32' ? 0 : 1;
  if (kernel === 'reg') Object.assign(constants, { WG: REG_WG, MR: mr });
  if (kernel === 'coop') Object.assign(constants, { WG: COOP_WG, TEAM: COOP_TEAM, MR: mr });
  // The register kernels read x as vec4 when every row starts on one (K % 4 == 0): a quarter of the loads.
  const xv = kernel === 'reg' && k % 4 === 0 ? '_xv' : '';
  const key: PipelineKey = { shader: 'matmul', entry: `${kernel}_${q4 ? 'q4' : 'dense'}${xv}`, act, constants };

  const dummy = await dummyBuffer(ctx);
  let flags = 0;
  if (bias) flags |= F_BIAS;
  if (opts.accumulate) flags |= F_ACCUM;
  if (inRows) flags |= F_GATHER;
  if (scatter) flags |= F_SCATTER;
  const q = q4Dims(k);
  const wpr = q4 ? q.wordsPerRow : w.format === 'f16' ? Math.ceil(k / 2) : k;

  for (const part of w.parts) {
    // ---- dispatch size
    const pn = part.rowCount;
    let wgN: number;
    let wgM: number;
    if (kernel === 'reg') {
      wgN = Math.ceil(pn / (NR * REG_WG));
      wgM = Math.ceil(m / mr);
    } else if (kernel === 'coop') {
      wgN = Math.ceil(pn / (COOP_WG / COOP_TEAM));
      wgM = Math.ceil(m / mr);
    } else {
      wgN = Math.ceil(pn / TILE);
      wgM = Math.ceil(m / TILE);
    }
    const wgCount = wgN * wgM;

    // ---- uniforms (layout of `Params` in matmul.wgsl)
    const u = new Uint32Array(13);
    u.set([m, pn, k, part.rowStart, n, xRows, outRows, flags]);
    new Float32Array(u.buffer, 8 * 4, 1)[0] = scale;
    u.set([wpr, q4 ? q.scaleWordsPerRow : 0, wgN, wgCount], 9);

    await ctx.dispatch({
      label: `linear:${w.label}`,
      key,
      bindings: [
        x.buffer,
        part.data,
        part.scales ?? dummy,
        bias?.buffer ?? dummy,
        inRows?.buffer ?? dummy,
        scatter?.buffer ?? dummy,
        out.buffer,
      ],
      uniforms: u,
      workgroups: ctx.grid(wgCount),
    });
  }
}
