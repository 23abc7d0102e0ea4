/**
 * The engine Worker's interface, as the page sees it through comlink (`Comlink.Remote<EngineWorkerApi>`).
 * Types only: importing this costs nothing at run time, so the UI thread can depend on it without pulling
 * in any GPU code.
 *
 * Everything crosses the boundary by structured clone; errors arrive as the same `TrolError` subclass they
 * were thrown as (see `error-transfer.ts`). Planned additions keep this shape: `loadModel(source, onProgress)`
 * and `generate(request, onToken)` take `Comlink.proxy(callback)` arguments for streaming, and `cancel(id)`
 * aborts a running generation (the worker keeps an AbortController per request).
 */
import type { ActDType, AdapterSummary } from '../gpu/context.ts';
import type { SelfCheckResult } from '../selfcheck/kernel-selfcheck.ts';

export type { AdapterSummary, SelfCheckResult };

export interface EngineInfo {
  adapter: AdapterSummary;
  /** Activation storage dtype the engine uses on this device (f16 needs `shader-f16`). */
  act: ActDType;
}

/** Kinds of deliberate failure, for testing the typed-error path end to end. */
export type FailureKind = 'shape';

export interface EngineWorkerApi {
  /** Adapter facts and the activation dtype. The first call creates the worker's GpuContext. */
  info(): Promise<EngineInfo>;
  /** Run the kernel self-check on the worker's device. */
  selfCheck(): Promise<SelfCheckResult[]>;
  /** Throw a typed error on purpose (`'shape'` → ShapeError). */
  failOnPurpose(kind: FailureKind): Promise<never>;
}
