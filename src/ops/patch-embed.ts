/**
 * CLIP patch embedding as a GEMM (shaders/patch_embed.wgsl):
 *   im2colPatches — pixels f32 [C, S, S] → patches act [P, C·p·p], P = (S/p)², rows top→bottom, left→right,
 *                   columns c·p·p + ky·p + kx (a PyTorch conv weight [D, C, p, p] flattened to [D, C·p·p]),
 *                   so the patch embedding is `linear(patches, convWeight)` (no bias in CLIP).
 *   visionEmbed   — prepend the class token and add positions: out[0] = cls + pos[0],
 *                   out[1 + i] = patchEmb[i] + pos[1 + i].
 *
 * Order in every op file: shape checks → pipeline key → dispatch size → uniforms → dispatch.
 */
import { FeatureUnavailableError, ShapeError } from '../errors.ts';
import type { Binding, GpuContext } from '../gpu/context.ts';
import type { PipelineKey } from '../gpu/shaders.ts';
import type { Tensor } from '../gpu/tensor.ts';

const WG = 256;

function bind(t: Tensor): Binding {
  return { buffer: t.buffer, size: Math.max(4, Math.ceil(t.byteLength / 4) * 4) };
}

function checkFits(op: string, tensors: Tensor[]): void {
  for (const t of tensors) {
    if (t.byteLength > t.buffer.size) {
      throw new ShapeError(`${op}: '${t.label}' claims ${t.byteLength} bytes but its buffer has ${t.buffer.size}`);
    }
  }
}

function checkActOut(ctx: GpuContext, op: string, t: Tensor): 'f16' | 'f32' {
  if (t.dtype !== 'f16' && t.dtype !== 'f32') {
    throw new ShapeError(`${op}: '${t.label}' is ${t.dtype}; activations must be f16 or f32`);
  }
  if (t.dtype === 'f16' && !ctx.hasF16) {
    throw new FeatureUnavailableError(`${op} with f16 activations needs 'shader-f16'`, { feature: 'shader-f16' });
  }
  return t.dtype;
}

/** patches [P, C·p·p] from pixels [C, S, S]; S must be a multiple of p.patch. */
export async function im2colPatches(
  ctx: GpuContext,
  pixels: Tensor,
  out: Tensor,
  p: { C: number; S: number; patch: number },
): Promise<void> {
  const { C, S, patch } = p;
  if (![C, S, patch].every((v) => Number.isInteger(v) && v >= 1)) {
    throw new ShapeError(`im2colPatches: C, S and patch must be positive integers, got ${C}, ${S}, ${patch}`);
  }
  if (S % patch !== 0) throw new ShapeError(`im2colPatches: image size ${S} is not a multiple of patch ${patch}`);
  const G = S / patch;
  const P = G * G;
  const cols = C * patch * patch;
  if (pixels.dtype !== 'f32' || pixels.numel !== C * S * S) {
    throw new ShapeError(`im2colPatches: pixels must be f32 [${C}, ${S}, ${S}], got ${pixels.dtype} [${pixels.shape}]`);
  }
  const act = checkActOut(ctx, 'im2colPatches', out);
  if (out.shape.length !== 2 || out.shape[0] !== P || out.shape[1] !== cols) {
    throw new ShapeError(`im2colPatches: out must be [${P}, ${cols}], got [${out.shape}]`);
  }
  checkFits('im2colPatches', [pixels, out]);

  const key: PipelineKey = { shader: 'patch_embed', entry: 'im2col', act, constants: { WG } };
  const workgroups = ctx.grid(Math.ceil((P * cols) / WG));
  const uniforms = new Uint32Array([C, S, patch, G]);
  await ctx.dispatch({ label: 'im2col', key, bindings: [bind(pixels), bind(out)], uniforms, workgroups });
}

/** out [P+1, D]: row 0 = cls + pos[0]; row 1+i = patchEmb[i] + pos[1+i]. cls f32 [D], pos f32 [P+1, D]. */
export async function visionEmbed(
  ctx: GpuContext,
  patchEmb: Tensor,
  cls: Tensor,
  pos: Tensor,
  out: Tensor,
): Promise<void> {
  const act = checkActOut(ctx, 'visionEmbed', patchEmb);
  if (patchEmb.shape.length !== 2)
    throw new ShapeError(`visionEmbed: patchEmb must be [P, D], got [${patchEmb.shape}]`);
  const [P, D] = patchEmb.shape;
  if (cls.dtype !== 'f32' || cls.numel !== D) {
    throw new ShapeError(`visionEmbed: cls must be f32 [${D}], got ${cls.dtype} [${cls.shape}]`);
  }
  if (pos.dtype !== 'f32' || pos.numel !== (P + 1) * D) {
    throw new ShapeError(`visionEmbed: pos must be f32 [${P + 1}, ${D}], got ${pos.dtype} [${pos.shape}]`);
  }
  if (out.dtype !== act || out.shape.length !== 2 || out.shape[0] !== P + 1 || out.shape[1] !== D) {
    throw new ShapeError(`visionEmbed: out must be ${act} [${P + 1}, ${D}], got ${out.dtype} [${out.shape}]`);
  }
  if (out.buffer === patchEmb.buffer) throw new ShapeError('visionEmbed: out must not be patchEmb');
  checkFits('visionEmbed', [patchEmb, cls, pos, out]);

  const key: PipelineKey = { shader: 'patch_embed', entry: 'vision_embed', act, constants: { WG } };
  const workgroups = ctx.grid(Math.ceil(((P + 1) * D) / WG));
  const uniforms = new Uint32Array([P, D, 0, 0]);
  await ctx.dispatch({
    label: 'visionEmbed',
    key,
    bindings: [bind(patchEmb), bind(cls), bind(pos), bind(out)],
    uniforms,
    workgroups,
  });
}
