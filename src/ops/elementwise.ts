/**
 * Pointwise ops on activation tensors (shaders/elementwise.wgsl): GELU (exact erf), quick-GELU, SiLU,
 * SwiGLU (silu(gate)·up) and add. Every operand has the same shape and the same activation dtype (f16 or
 * f32); math is f32. The output may be the same tensor as any input (in place): the op then binds that
 * tensor once, read-write.
 *
 * Order in every op file: shape checks → pipeline key → dispatch size → uniforms → dispatch.
 */
import { FeatureUnavailableError, ShapeError } from '../errors.ts';
import type { Binding, GpuContext } from '../gpu/context.ts';
import type { PipelineKey } from '../gpu/shaders.ts';
import type { Tensor } from '../gpu/tensor.ts';

const WG = 256;

/** `OP` override values of the unary and binary entry points. */
const UNARY = { gelu: 0, quickGelu: 1, silu: 2 } as const;
const BINARY = { add: 0, swiglu: 1 } as const;

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}

/** Every tensor an activation of one dtype and one shape; returns that dtype. */
function checkOperands(ctx: GpuContext, op: string, tensors: Tensor[]): 'f16' | 'f32' {
  const first = tensors[0];
  if (first.dtype !== 'f16' && first.dtype !== 'f32') {
    throw new ShapeError(`${op}: '${first.label}' is ${first.dtype}; activations must be f16 or f32`);
  }
  for (const t of tensors) {
    if (t.dtype !== first.dtype) {
      throw new ShapeError(`${op}: '${t.label}' is ${t.dtype} but '${first.label}' is ${first.dtype}`);
    }
    if (!sameShape(t.shape, first.shape)) {
      throw new ShapeError(`${op}: '${t.label}' has shape [${t.shape}], '${first.label}' has [${first.shape}]`);
    }
    if (t.byteLength > t.buffer.size) {
      throw new ShapeError(`${op}: '${t.label}' claims ${t.byteLength} bytes but its buffer has ${t.buffer.size}`);
    }
  }
  if (first.dtype === 'f16' && !ctx.hasF16) {
    throw new FeatureUnavailableError(`${op} on f16 activations needs 'shader-f16'`, { feature: 'shader-f16' });
  }
  return first.dtype;
}

function bind(t: Tensor): Binding {
  return { buffer: t.buffer, size: Math.max(4, Math.ceil(t.byteLength / 4) * 4) };
}

async function unary(ctx: GpuContext, name: keyof typeof UNARY, x: Tensor, out: Tensor): Promise<void> {
  const act = checkOperands(ctx, name, [x, out]);
  const n = x.numel;
  if (n === 0) return;
  const inplace = x.buffer === out.buffer;
  const key: PipelineKey = {
    shader: 'elementwise',
    entry: inplace ? 'unary_inplace' : 'unary',
    act,
    constants: { WG, OP: UNARY[name] },
  };
  const workgroups = ctx.grid(Math.ceil(n / WG));
  await ctx.dispatch({
    label: name,
    key,
    bindings: inplace ? [bind(out)] : [bind(x), bind(out)],
    uniforms: new Uint32Array([n, 0, 0, 0]),
    workgroups,
  });
}

async function binary(ctx: GpuContext, name: keyof typeof BINARY, a: Tensor, b: Tensor, out: Tensor): Promise<void> {
  const act = checkOperands(ctx, name, [a, b, out]);
  const n = a.numel;
  if (n === 0) return;
  const aIsOut = a.buffer === out.buffer;
  const bIsOut = b.buffer === out.buffer;
  let entry: string;
  let bindings: Binding[];
  let swap = false;
  if (aIsOut && bIsOut) {
    entry = 'binary_self';
    bindings = [bind(out)];
  } else if (aIsOut || bIsOut) {
    // io = out; the other operand is read-only. SWAP puts the io value second (out aliases b).
    entry = 'binary_inplace';
    swap = bIsOut;
    bindings = [bind(out), bind(bIsOut ? a : b)];
  } else {
    entry = 'binary';
    bindings = [bind(a), bind(b), bind(out)];
  }
  const key: PipelineKey = {
    shader: 'elementwise',
    entry,
    act,
    constants: entry === 'binary_inplace' ? { WG, OP: BINARY[name], SWAP: swap ? 1 : 0 } : { WG, OP: BINARY[name] },
  };
  const workgroups = ctx.grid(Math.ceil(n / WG));
  await ctx.dispatch({ label: name, key, bindings, uniforms: new Uint32Array([n, 0, 0, 0]), workgroups });
}

/** out = 0.5·x·(1 + erf(x/√2)) (exact GELU, as `nn.GELU()`). `out` may be `x`. */
export function gelu(ctx: GpuContext, x: Tensor, out: Tensor): Promise<void> {
  return unary(ctx, 'gelu', x, out);
}

/** out = x·σ(1.702·x) (CLIP's quick_gelu). `out` may be `x`. */
export function quickGelu(ctx: GpuContext, x: Tensor, out: Tensor): Promise<void> {
  return unary(ctx, 'quickGelu', x, out);
}

/** out = x·σ(x). `out` may be `x`. */
export function silu(ctx: GpuContext, x: Tensor, out: Tensor): Promise<void> {
  return unary(ctx, 'silu', x, out);
}

/** out = silu(gate) ⊙ up (InternLM2 feed-forward: w1 = gate, w3 = up). `out` may be `gate` or `up`. */
export function swiglu(ctx: GpuContext, gate: Tensor, up: Tensor, out: Tensor): Promise<void> {
  return binary(ctx, 'swiglu', gate, up, out);
}

/** out = a + b. `out` may be `a` or `b` (or both). */
export function add(ctx: GpuContext, a: Tensor, b: Tensor, out: Tensor): Promise<void> {
  return binary(ctx, 'add', a, b, out);
}
