/**
 * The package's public surface. In a page, use the Worker client (`createEngineWorker`) or `<trol-chat>`;
 * the engine itself (`createEngine`) runs in a Worker or in Node.
 */
export {
  createEngine,
  type EngineOptions,
  type GenerateRequest,
  type GenerateResult,
  type RgbImage,
  TrolEngine,
} from './engine.ts';
export * from './errors.ts';
export { type AdapterSummary, GpuContext } from './gpu/context.ts';
export { decodeImageBrowser } from './image/decode-browser.ts';
export type { TrolConfig } from './model/config.ts';
export type { GateMode, WeightMode } from './model/weights.ts';
export {
  type ByteSource,
  blobSource,
  bytesSource,
  dirFiles,
  fileListFiles,
  type ModelFiles,
  mapFiles,
  urlFiles,
  urlSource,
} from './weights/byte-source.ts';
