/**
 * Finding a WebGPU implementation. This and the byte sources are the only places that know which runtime
 * they are in: a page or Worker has `navigator.gpu`; Node gets Dawn from the `webgpu` package.
 */
import { WebGPUUnavailableError } from '../errors.ts';

/** Which adapter to prefer in Node when several Vulkan drivers are visible. Ignored in browsers. */
export type AdapterChoice = 'default' | 'llvmpipe' | 'swiftshader';

export async function acquireGPU(choice: AdapterChoice = 'default'): Promise<GPU> {
  const nav = (globalThis as { navigator?: { gpu?: GPU } }).navigator;
  if (nav?.gpu) return nav.gpu;
  const isNode = typeof process !== 'undefined' && !!process.versions?.node;
  if (!isNode) throw new WebGPUUnavailableError('This browser has no WebGPU (navigator.gpu is missing).');
  // Keep the specifier opaque to bundlers: the browser build never reaches this line.
  const specifier = 'webgpu';
  let mod: { create: (opts: string[]) => GPU; globals: Record<string, unknown> };
  try {
    mod = await import(/* @vite-ignore */ specifier);
  } catch (e) {
    throw new WebGPUUnavailableError(`The Node WebGPU package 'webgpu' could not be loaded: ${(e as Error).message}`);
  }
  Object.assign(globalThis, mod.globals);
  const opts: string[] = [];
  if (choice === 'llvmpipe') opts.push('adapter=llvmpipe');
  if (choice === 'swiftshader') opts.push('adapter=swiftshader');
  return mod.create(opts);
}
