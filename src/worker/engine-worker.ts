/**
 * The engine's dedicated module Worker: it owns the GPU devices (through GpuContexts) and exposes
 * `EngineWorkerApi` with comlink. The page never touches WebGPU; this file never touches the DOM.
 *
 * Structure:
 *  - `WorkerEngine` holds the state: the shared GpuContext (adapter report, self-check, and the model when
 *    their activation dtypes agree), the loaded model, and the AbortControllers of pending generations.
 *  - `context()` creates the shared GpuContext on first use and again after a device loss.
 *  - `exclusive()` runs GPU work one call at a time (a context records into one shared encoder).
 *    `cancel()` does NOT go through it: it only aborts the controllers, so it works while a generation runs.
 *  - A model whose device is lost is dropped; the next call that needs it rejects with a `DeviceLostError`
 *    whose `details.reloadModel` is true, and `loadModel` starts over on a fresh device.
 *  - The exposed `api` object is a thin, typed mapping onto the engine's methods.
 */
import * as Comlink from 'comlink';
import { type GenerateRequest, TrolEngine } from '../engine.ts';
import {
  ArgumentError,
  DeviceLostError,
  GenerationCancelledError,
  ImageDecodeError,
  ShapeError,
  TrolError,
} from '../errors.ts';
import { GpuContext } from '../gpu/context.ts';
import { decodeImageBrowser } from '../image/decode-browser.ts';
import { runKernelSelfCheck, type SelfCheckResult } from '../selfcheck/kernel-selfcheck.ts';
import { openGoldens, verifyGoldens } from '../verify/golden.ts';
import { fileListFiles, type ModelFiles, readAll, urlFiles } from '../weights/byte-source.ts';
import type {
  EngineInfo,
  EngineWorkerApi,
  FailureKind,
  GenerateRequestWire,
  GoldenCheckWire,
  LoadModelOptions,
  LoadProgressEvent,
  ModelInfo,
  ModelSource,
  ResultSummary,
  RgbImageWire,
  TokenEventWire,
  VerifyGoldensOptions,
} from './api.ts';
import { installErrorTransfer } from './error-transfer.ts';

installErrorTransfer();

interface LoadedModel {
  engine: TrolEngine;
  info: ModelInfo;
  unsubscribe: () => void;
  /** Set when its device was lost. */
  lost: DeviceLostError | null;
}

/** An absolute http(s) URL, or an ArgumentError (a relative URL would resolve against this worker's script). */
function absoluteHttpUrl(url: string, what: string): string {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new ArgumentError(`${what} must be an absolute URL (got ${JSON.stringify(url)})`, { url });
  }
  if (u.protocol !== 'https:' && u.protocol !== 'http:') {
    throw new ArgumentError(`${what} must be an http(s) URL (got ${JSON.stringify(url)})`, { url });
  }
  return u.href;
}

function describeSource(source: ModelSource): { files: ModelFiles; label: string } {
  if (source?.kind === 'url') {
    const url = absoluteHttpUrl(source.baseUrl, 'The model base URL');
    return { files: urlFiles(url), label: url };
  }
  if (source?.kind === 'files') {
    if (!Array.isArray(source.files) || source.files.length === 0) {
      throw new ArgumentError('No model files were given (pick the folder that holds config.json).');
    }
    const folder = source.files[0].webkitRelativePath?.split('/')[0];
    return {
      files: fileListFiles(source.files),
      label: `${source.files.length} local files${folder ? ` (folder ${folder})` : ''}`,
    };
  }
  throw new ArgumentError(`Unknown model source ${JSON.stringify((source as { kind?: unknown })?.kind)}`);
}

async function toImage(image: GenerateRequestWire['image']): Promise<RgbImageWire | null> {
  if (image === undefined || image === null) return null;
  if (image instanceof Blob) return decodeImageBrowser(image);
  const { data, width, height } = image as RgbImageWire;
  if (!(data instanceof Uint8Array) || !Number.isInteger(width) || !Number.isInteger(height)) {
    throw new ImageDecodeError('The image must be a Blob or {data: Uint8Array, width, height}.');
  }
  if (width < 1 || height < 1 || data.length !== 3 * width * height) {
    throw new ImageDecodeError(
      `The image data holds ${data.length} bytes, but RGB ${width}×${height} needs ${3 * width * height}.`,
      { width, height, bytes: data.length },
    );
  }
  return { data, width, height };
}

/** Call a page callback (a comlink proxy) without letting its failure end the call; returns its promise. */
function notify<T>(cb: ((e: T) => unknown) | undefined, e: T): Promise<unknown> {
  if (!cb) return Promise.resolve();
  try {
    return Promise.resolve(cb(e)).catch((err: unknown) => console.warn('trol worker: a page callback failed:', err));
  } catch (err) {
    console.warn('trol worker: a page callback failed:', err);
    return Promise.resolve();
  }
}

function reloadError(lost: DeviceLostError): DeviceLostError {
  return new DeviceLostError(
    `${lost.message.replace(/\.+$/, '')}. The model is gone from the GPU: reload the model to continue.`,
    {
      ...lost.details,
      reloadModel: true,
    },
  );
}

class WorkerEngine {
  private ctxPromise: Promise<GpuContext> | null = null;
  private queue: Promise<unknown> = Promise.resolve();
  private model: LoadedModel | null = null;
  /** Controllers of every generation asked for and not yet finished (running or queued). */
  private readonly controllers = new Set<AbortController>();

  /** The worker's shared GpuContext: created on first use, re-created if the device was lost. */
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

  async failOnPurpose(kind: FailureKind): Promise<void> {
    switch (kind) {
      case 'shape':
        throw new ShapeError('failOnPurpose: a [2, 3] tensor cannot feed an op that needs [2, 4]', {
          expected: [2, 4],
          got: [2, 3],
        });
      case 'device-lost':
        return this.exclusive(async () => {
          const ctx = this.model ? this.model.engine.ctx : await this.context();
          // Not ctx.destroy(): that marks the loss as deliberate. This is what a driver reset looks like.
          ctx.device.destroy();
          await ctx.device.lost;
          // The context's own `lost` handler was registered first, so lostError is set by now.
          if (!ctx.lostError) throw new TrolError('failOnPurpose: the device was destroyed but not reported lost');
        });
      default:
        throw new ShapeError(`failOnPurpose: unknown kind '${String(kind)}'`, { kind });
    }
  }

  /** Drop the loaded model (its GPU memory too, where the device still exists). */
  private dropModel(): void {
    const m = this.model;
    this.model = null;
    if (!m) return;
    m.unsubscribe();
    try {
      m.engine.destroy();
    } catch (e) {
      // After a device loss destroying can fail; the memory is gone with the device anyway.
      console.warn('trol worker: destroying the model failed:', e);
    }
  }

  /** The loaded model, or the error that says why there is none. */
  private requireModel(): LoadedModel {
    const m = this.model;
    if (!m) throw new ArgumentError('No model is loaded: call loadModel first.');
    const lost = m.lost ?? m.engine.ctx.lostError;
    if (lost) {
      this.dropModel();
      throw reloadError(lost);
    }
    return m;
  }

  /** A failure during GPU work on `m`: a lost device wins over whatever symptom it caused. */
  private translate(e: unknown, m: LoadedModel | null): unknown {
    const lost = m ? (m.lost ?? m.engine.ctx.lostError) : null;
    if (!m || !lost) return e;
    if (this.model === m) this.dropModel();
    return reloadError(lost);
  }

  /**
   * A GpuContext for an engine with these options: the shared one when its activation dtype fits, else null
   * (the engine then creates and owns a device of its own with `forceF32`).
   */
  private async contextFor(forceF32: boolean): Promise<GpuContext | null> {
    const shared = await this.context();
    return !forceF32 || shared.act === 'f32' ? shared : null;
  }

  loadModel(
    source: ModelSource,
    opts: LoadModelOptions = {},
    onProgress?: (p: LoadProgressEvent) => void,
  ): Promise<ModelInfo> {
    return this.exclusive(async () => {
      const { files, label } = describeSource(source);
      const pending: Promise<unknown>[] = [];
      const progress = (p: LoadProgressEvent) => pending.push(notify(onProgress, p));
      try {
        this.dropModel();
        progress({ phase: 'device', loaded: 0, total: 0 });
        const forceF32 = !!opts.forceF32;
        const context = (await this.contextFor(forceF32)) ?? undefined;
        progress({ phase: 'files', loaded: 0, total: 0 });
        let lastTick = 0;
        let latest: LoadProgressEvent | null = null;
        let latestSent = false;
        const engine = await TrolEngine.create(files, {
          weights: opts.weights ?? 'q4',
          forceF32,
          gateMode: opts.gateMode ?? 'per-layer',
          contextLength: opts.contextLength,
          context,
          onProgress: (p) => {
            // At most ~20 messages a second, plus the last one.
            const now = performance.now();
            latest = { phase: 'weights', loaded: p.loaded, total: p.total, tensor: p.tensor };
            latestSent = p.loaded === p.total || now - lastTick > 50;
            if (latestSent) {
              lastTick = now;
              progress(latest);
            }
          },
        });
        // Send the last weights tick if throttling held it back, so the bar ends full.
        const tail = latest as LoadProgressEvent | null;
        if (tail && !latestSent) progress(tail);
        progress({ phase: 'model', loaded: 0, total: 0 });
        const i = engine.info();
        const info: ModelInfo = {
          adapter: i.adapter,
          act: i.act,
          weights: i.weights,
          gateMode: i.gateMode,
          contextLength: i.contextLength,
          numLayers: i.config.numLayers,
          hiddenSize: i.config.hiddenSize,
          vocabSize: i.config.vocabSize,
          imgSize: i.config.imgSize,
          imageTokens: i.config.imageTokens,
          imageTokenId: engine.tokenizer.imageTokenId,
          source: label,
        };
        const m: LoadedModel = { engine, info, unsubscribe: () => undefined, lost: null };
        m.unsubscribe = engine.ctx.onLost((e) => {
          m.lost = e;
        });
        this.model = m;
        progress({ phase: 'ready', loaded: 0, total: 0 });
        return info;
      } finally {
        await Promise.all(pending);
      }
    });
  }

  async modelInfo(): Promise<ModelInfo | null> {
    return this.model?.info ?? null;
  }

  generate(req: GenerateRequestWire, onToken?: (e: TokenEventWire) => void): Promise<ResultSummary> {
    const ac = new AbortController();
    this.controllers.add(ac);
    return this.exclusive(async () => {
      const pending: Promise<unknown>[] = [];
      let m: LoadedModel | null = null;
      try {
        if (ac.signal.aborted) throw new GenerationCancelledError('Generation cancelled.');
        if (typeof req?.question !== 'string') throw new ArgumentError('The request needs a question (a string).');
        m = this.requireModel();
        const image = await toImage(req.image);
        const request: GenerateRequest = {
          question: req.question,
          image,
          maxNewTokens: req.maxNewTokens,
          temperature: req.temperature,
          topK: req.topK,
          topP: req.topP,
          repetitionPenalty: req.repetitionPenalty,
          seed: req.seed,
          stopStrings: req.stopStrings,
          conversation: req.conversation,
          signal: ac.signal,
        };
        const it = m.engine.generate(request);
        let r = await it.next();
        while (!r.done) {
          const { id, text, index } = r.value;
          pending.push(notify(onToken, { id, text, index }));
          r = await it.next();
        }
        const res = r.value;
        const tok = m.engine.tokenizer;
        return {
          ids: res.generatedIds,
          promptIds: res.promptIds,
          promptPieces: res.promptIds.map((id) => tok.pieceOf(id)),
          imageTokenId: tok.imageTokenId,
          text: res.text,
          stopReason: res.stopReason,
          timings: { ...res.timings },
          gates: res.gates.map((row) => Array.from(row)),
        };
      } catch (e) {
        throw this.translate(e, m);
      } finally {
        this.controllers.delete(ac);
        // Every token reaches the page before the call settles (callbacks travel on their own port).
        await Promise.all(pending);
      }
    });
  }

  cancel(): void {
    for (const ac of this.controllers) ac.abort();
  }

  unloadModel(): Promise<void> {
    return this.exclusive(async () => this.dropModel());
  }

  verifyGoldens(
    goldenBaseUrl: string,
    modelBaseUrl: string,
    opts: VerifyGoldensOptions = {},
  ): Promise<GoldenCheckWire[]> {
    return this.exclusive(async () => {
      const goldenFiles = urlFiles(absoluteHttpUrl(goldenBaseUrl, 'The golden base URL'));
      const modelFiles = urlFiles(absoluteHttpUrl(modelBaseUrl, 'The model base URL'));
      const golden = await openGoldens(goldenFiles);
      const png = await goldenFiles.get('image.png');
      if (!png) throw new ArgumentError(`${goldenBaseUrl} has no image.png`, { url: goldenBaseUrl });
      const image = await decodeImageBrowser(
        new Blob([(await readAll(png)) as Uint8Array<ArrayBuffer>], { type: 'image/png' }),
      );
      const forceF32 = !!opts.forceF32;
      const engine = await TrolEngine.create(modelFiles, {
        weights: opts.weights ?? 'f32',
        forceF32,
        gateMode: opts.gateLast ? 'last' : 'per-layer',
        context: (await this.contextFor(forceF32)) ?? undefined,
      });
      try {
        const checks = await verifyGoldens(engine, golden, image, { gateLast: opts.gateLast, cases: opts.cases });
        return checks.map((c) => ({ ...c }));
      } finally {
        engine.destroy();
      }
    });
  }
}

const engine = new WorkerEngine();

const api: EngineWorkerApi = {
  info: () => engine.info(),
  selfCheck: () => engine.selfCheck(),
  failOnPurpose: (kind) => engine.failOnPurpose(kind),
  loadModel: (source, opts, onProgress) => engine.loadModel(source, opts, onProgress),
  modelInfo: () => engine.modelInfo(),
  generate: (req, onToken) => engine.generate(req, onToken),
  cancel: () => engine.cancel(),
  unloadModel: () => engine.unloadModel(),
  verifyGoldens: (goldenBaseUrl, modelBaseUrl, opts) => engine.verifyGoldens(goldenBaseUrl, modelBaseUrl, opts),
};

Comlink.expose(api);
