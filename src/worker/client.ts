/**
 * The page's handle on the engine Worker (and the error classes, re-exported, so pages import only this).
 * Importing this installs the typed-error transfer, so errors from the worker arrive as their own `TrolError`
 * subclass. Only types come from the worker side; no GPU code is loaded on the UI thread.
 *
 * `createEngineWorker()` gives the raw comlink remote; `loadModel`, `generate` and `verifyGoldens` below wrap
 * its calls the way a page needs them: callbacks wrapped in `Comlink.proxy`, relative URLs resolved against
 * the page (the worker would resolve them against its own script), decoded image bytes transferred.
 */
import * as Comlink from 'comlink';
import type {
  EngineWorkerApi,
  GenerateRequestWire,
  GoldenCheckWire,
  LoadModelOptions,
  LoadProgressEvent,
  ModelInfo,
  ModelSource,
  ResultSummary,
  TokenEventWire,
  VerifyGoldensOptions,
} from './api.ts';
import { installErrorTransfer } from './error-transfer.ts';

export * from '../errors.ts';
export type {
  EngineInfo,
  EngineWorkerApi,
  FailureKind,
  GateMode,
  GenerateRequestWire,
  GoldenCheckWire,
  LoadModelOptions,
  LoadProgressEvent,
  ModelInfo,
  ModelSource,
  ResultSummary,
  RgbImageWire,
  SelfCheckResult,
  TokenEventWire,
  VerifyGoldensOptions,
  WeightMode,
} from './api.ts';

installErrorTransfer();

export type EngineRemote = Comlink.Remote<EngineWorkerApi>;

export interface EngineWorkerOptions {
  /** Hears a Worker that failed to load or threw outside any call (calls in flight would otherwise hang). */
  onError?: (event: ErrorEvent) => void;
}

const workers = new WeakMap<object, Worker>();

/** Start the engine Worker (a dedicated module Worker) and wrap it with comlink. */
export function createEngineWorker(options: EngineWorkerOptions = {}): EngineRemote {
  const worker = new Worker(new URL('./engine-worker.ts', import.meta.url), { type: 'module', name: 'trol-engine' });
  if (options.onError) worker.addEventListener('error', options.onError);
  const remote = Comlink.wrap<EngineWorkerApi>(worker);
  workers.set(remote, worker);
  return remote;
}

/** End the Worker behind `remote`; its GPU devices go with it. */
export function terminateEngineWorker(remote: EngineRemote): void {
  remote[Comlink.releaseProxy]();
  workers.get(remote)?.terminate();
  workers.delete(remote);
}

/** `url` resolved against the page (the Worker resolves relative URLs against its own script instead). */
export function absoluteUrl(url: string): string {
  return new URL(url, document.baseURI).href;
}

/** Load a model; relative base URLs are resolved against the page. */
export function loadModel(
  remote: EngineRemote,
  source: ModelSource,
  opts: LoadModelOptions = {},
  onProgress?: (p: LoadProgressEvent) => void,
): Promise<ModelInfo> {
  const src: ModelSource = source.kind === 'url' ? { kind: 'url', baseUrl: absoluteUrl(source.baseUrl) } : source;
  return remote.loadModel(src, opts, onProgress ? Comlink.proxy(onProgress) : undefined);
}

/**
 * Ask a question, with `onToken` called for every token as it arrives. A decoded image's bytes are
 * transferred (the caller's `data` is empty afterwards); a Blob/File is sent as is and decoded in the worker.
 */
export function generate(
  remote: EngineRemote,
  req: GenerateRequestWire,
  onToken?: (e: TokenEventWire) => void,
): Promise<ResultSummary> {
  const img = req.image;
  const transfer = img && !(img instanceof Blob) ? [img.data.buffer as ArrayBuffer] : [];
  const callback = onToken ? Comlink.proxy(onToken) : undefined;
  return remote.generate(Comlink.transfer(req, transfer), callback);
}

/** Golden verification in the worker; relative URLs are resolved against the page. */
export function verifyGoldens(
  remote: EngineRemote,
  goldenBaseUrl: string,
  modelBaseUrl: string,
  opts: VerifyGoldensOptions = {},
): Promise<GoldenCheckWire[]> {
  return remote.verifyGoldens(absoluteUrl(goldenBaseUrl), absoluteUrl(modelBaseUrl), opts);
}
