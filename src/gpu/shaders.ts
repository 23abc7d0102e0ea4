/**
 * WGSL sources and the one small text step applied to them.
 *
 * Each `shaders/<family>.wgsl` is written against two aliases that this module prepends:
 *   `act`  — the activation storage type (f16 when the device has shader-f16 and f32 is not forced, else f32);
 *   `act4` — vec4<act>.
 * Arithmetic and accumulation are always f32 inside kernels; `act` is only how activations are stored.
 * Weights stored as f16 are read as packed u32 pairs with `unpack2x16float`, so the weight format does not
 * depend on shader-f16. Workgroup sizes and other tunables are WGSL `override` constants set through the
 * pipeline key's `constants`, never by editing text.
 */
import attention from '../../shaders/attention.wgsl?raw';
import copy from '../../shaders/copy.wgsl?raw';
import elementwise from '../../shaders/elementwise.wgsl?raw';
import embedding from '../../shaders/embedding.wgsl?raw';
import lora from '../../shaders/lora.wgsl?raw';
import matmul from '../../shaders/matmul.wgsl?raw';
import norm from '../../shaders/norm.wgsl?raw';
import patchEmbed from '../../shaders/patch_embed.wgsl?raw';
import rope from '../../shaders/rope.wgsl?raw';
import sampling from '../../shaders/sampling.wgsl?raw';
import traversal from '../../shaders/traversal.wgsl?raw';

export const SHADERS = {
  attention,
  copy,
  elementwise,
  embedding,
  lora,
  matmul,
  norm,
  patch_embed: patchEmbed,
  rope,
  sampling,
  traversal,
} as const;

export type ShaderName = keyof typeof SHADERS;

/**
 * Everything that determines a compiled pipeline. The cache derives its map key from this object, and the
 * shader text from `shader` + `act`, so the key cannot go stale relative to what gets compiled.
 */
export interface PipelineKey {
  readonly shader: ShaderName;
  readonly entry: string;
  readonly act: 'f16' | 'f32';
  /** Values for the shader's `override` declarations. */
  readonly constants?: Readonly<Record<string, number>>;
  /** Prepend `enable subgroups;` (shader files never carry `enable` lines themselves). */
  readonly subgroups?: boolean;
}

export function pipelineKeyString(key: PipelineKey): string {
  const c = key.constants
    ? Object.keys(key.constants)
        .sort()
        .map((k) => `${k}=${key.constants![k]}`)
        .join(',')
    : '';
  return `${key.shader}:${key.entry}[${key.act}${key.subgroups ? ',subgroups' : ''}]{${c}}`;
}

export function shaderPrelude(act: 'f16' | 'f32', subgroups = false): string {
  const enables = (act === 'f16' ? 'enable f16;\n' : '') + (subgroups ? 'enable subgroups;\n' : '');
  return `${enables}alias act = ${act};\nalias act4 = vec4<${act}>;\n`;
}

/** The exact WGSL compiled for `key` (also useful to dump for debugging). */
export function preprocessShader(key: PipelineKey): string {
  return shaderPrelude(key.act, key.subgroups) + SHADERS[key.shader];
}
