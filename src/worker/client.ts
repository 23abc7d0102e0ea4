/**
 * The page's handle on the engine Worker (and the error classes, re-exported, so pages import only this). Importing this installs the typed-error transfer, so errors from the
 * worker arrive as their own `TrolError` subclass. Only types come from the worker side; no GPU code is loaded
 * on the UI thread.
 */
import * as Comlink from 'comlink';
import type { EngineWorkerApi } from './api.ts';
import { installErrorTransfer } from './error-transfer.ts';

export * from '../errors.ts';
export type { EngineInfo, EngineWorkerApi, FailureKind, SelfCheckResult } from './api.ts';

installErrorTransfer();

export interface EngineWorkerOptions {
  /** Hears a Worker that failed to load or threw outside any call (calls in flight would otherwise hang). */
  onError?: (event: ErrorEvent) => void;
}

const workers = new WeakMap<object, Worker>();

/** Start the engine Worker (a dedicated module Worker) and wrap it with comlink. */
export function createEngineWorker(options: EngineWorkerOptions = {}): Comlink.Remote<EngineWorkerApi> {
  const worker = new Worker(new URL('./engine-worker.ts', import.meta.url), { type: 'module', name: 'trol-engine' });
  if (options.onError) worker.addEventListener('error', options.onError);
  const remote = Comlink.wrap<EngineWorkerApi>(worker);
  workers.set(remote, worker);
  return remote;
}

/** End the Worker behind `remote`; its GPU device goes with it. */
export function terminateEngineWorker(remote: Comlink.Remote<EngineWorkerApi>): void {
  remote[Comlink.releaseProxy]();
  workers.get(remote)?.terminate();
  workers.delete(remote);
}
