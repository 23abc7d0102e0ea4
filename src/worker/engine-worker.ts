/**
 * The engine's dedicated module Worker: it owns the GPUDevice (through one GpuContext) and exposes
 * `EngineWorkerApi` with comlink. The page never touches WebGPU; this file never touches the DOM.
 *
 * Structure, so later methods slot in without reshaping it:
 *  - `WorkerEngine` holds the state (the context today; the loaded model and its sessions later).
 *  - `context()` creates the GpuContext on first use and again after a device loss.
 *  - `exclusive()` runs GPU work one call at a time (the context records into one shared encoder). A future
 *    `cancel(id)` must NOT go through it: it only aborts the AbortController of the running `generate`.
 *  - The exposed `api` object is a thin, typed mapping onto the engine's methods.
 */
import * as Comlink from 'comlink';
import { ShapeError } from '../errors.ts';
import { GpuContext } from '../gpu/context.ts';
import { runKernelSelfCheck, type SelfCheckResult } from '../selfcheck/kernel-selfcheck.ts';
import type { EngineInfo, EngineWorkerApi, FailureKind } from './api.ts';
import { installErrorTransfer } from './error-transfer.ts';

installErrorTransfer();

class WorkerEngine {
  private ctxPromise: Promise<GpuContext> | null = null;
  private queue: Promise<unknown> = Promise.resolve();

  /** The worker's one GpuContext: created on first use, re-created if the device was lost. */
  async context(): Promise<GpuContext> {
    if (this.ctxPromise) {
      const ctx = await this.ctxPromise;
      if (!ctx.lostError) return ctx;
      this.ctxPromise = null;
    }
    const p = GpuContext.create();
    this.ctxPromise = p;
    // A failed creation (no WebGPU, no adapter) is not cached: the next call tries again.
    p.catch(() => {
      if (this.ctxPromise === p) this.ctxPromise = null;
    });
    return p;
  }

  /** Run `fn` after every earlier GPU call has settled (success or failure). */
  exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(fn, fn);
    this.queue = run.catch(() => undefined);
    return run;
  }

  info(): Promise<EngineInfo> {
    return this.exclusive(async () => {
      const ctx = await this.context();
      return { adapter: ctx.adapterSummary, act: ctx.act };
    });
  }

  selfCheck(): Promise<SelfCheckResult[]> {
    return this.exclusive(async () => runKernelSelfCheck(await this.context()));
  }

  async failOnPurpose(kind: FailureKind): Promise<never> {
    switch (kind) {
      case 'shape':
        throw new ShapeError('failOnPurpose: a [2, 3] tensor cannot feed an op that needs [2, 4]', {
          expected: [2, 4],
          got: [2, 3],
        });
      default:
        throw new ShapeError(`failOnPurpose: unknown kind '${String(kind)}'`, { kind });
    }
  }
}

const engine = new WorkerEngine();

const api: EngineWorkerApi = {
  info: () => engine.info(),
  selfCheck: () => engine.selfCheck(),
  failOnPurpose: (kind) => engine.failOnPurpose(kind),
};

Comlink.expose(api);
