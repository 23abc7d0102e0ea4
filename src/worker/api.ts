/**
 * The engine Worker's interface, as the page sees it through comlink (`Comlink.Remote<EngineWorkerApi>`).
 * Types only: importing this costs nothing at run time, so the UI thread can depend on it without pulling
 * in any GPU code.
 *
 * Everything crosses the boundary by structured clone; errors arrive as the same `TrolError` subclass they
 * were thrown as (see `error-transfer.ts`). Streaming arguments (`onProgress`, `onToken`) must be wrapped in
 * `Comlink.proxy(callback)` by the caller; the worker awaits every callback it made before its call returns,
 * so all tokens have reached the page when `generate` resolves.
 *
 * Lifecycle: `loadModel` → any number of `generate` (follow-ups with `conversation: 'continue'`) → `unloadModel`.
 * `cancel()` is the one method that does not queue behind GPU work: it aborts the running (and any queued)
 * generation, which then rejects with `GenerationCancelledError`; the model stays loaded. A lost GPU device
 * makes the next call reject with `DeviceLostError` (`details.reloadModel === true`): the model is gone and
 * `loadModel` must be called again (it gets a fresh device).
 */

import type { GenerateResult } from '../engine.ts';
import type { ActDType, AdapterSummary } from '../gpu/context.ts';
import type { SelfCheckResult } from '../selfcheck/kernel-selfcheck.ts';
import type { GoldenCheck } from '../verify/golden.ts';

export type { AdapterSummary, SelfCheckResult };

export interface EngineInfo {
  adapter: AdapterSummary;
  /** Activation storage dtype the engine uses on this device (f16 needs `shader-f16`). */
  act: ActDType;
}

/** Kinds of deliberate failure, for testing the typed-error paths end to end. */
export type FailureKind =
  /** Throw a ShapeError. */
  | 'shape'
  /** Destroy the loaded model's GPU device behind the engine's back, as a driver reset would. */
  | 'device-lost';

export type WeightMode = 'f32' | 'f16' | 'q4';
export type GateMode = 'per-layer' | 'last';

/** Where the model files come from: an HTTP(S) folder read with Range requests, or files the user picked. */
export type ModelSource = { kind: 'url'; baseUrl: string } | { kind: 'files'; files: File[] };

export interface LoadModelOptions {
  /** How matrices are stored on the GPU (default 'q4'; 'f32' is the exact reference path). */
  weights?: WeightMode;
  /** f32 activations even where shader-f16 exists. */
  forceF32?: boolean;
  /** TroL gate per layer (the paper) or the last gate for every layer (the official loader's behaviour). */
  gateMode?: GateMode;
  /** Tokens one conversation may hold. */
  contextLength?: number;
}

/** Loading progress. `phase` 'weights' counts tensors uploaded; the other phases have loaded = total = 0. */
export interface LoadProgressEvent {
  /** device → files (config, tokenizer, weight index) → weights (per tensor) → model (weights done) → ready. */
  phase: 'device' | 'files' | 'weights' | 'model' | 'ready';
  loaded: number;
  total: number;
  /** The tensor just uploaded (phase 'weights'). */
  tensor?: string;
}

export interface ModelInfo {
  adapter: AdapterSummary;
  act: ActDType;
  weights: WeightMode;
  gateMode: GateMode;
  contextLength: number;
  numLayers: number;
  hiddenSize: number;
  vocabSize: number;
  imgSize: number;
  /** `<image>` placeholders per image (P). */
  imageTokens: number;
  imageTokenId: number;
  /** Where it was loaded from (a URL, or "N local files"). */
  source: string;
}

/** An already-decoded image: RGB u8 channel-major [3, height, width] (its buffer is transferred). */
export interface RgbImageWire {
  data: Uint8Array;
  width: number;
  height: number;
}

export interface GenerateRequestWire {
  question: string;
  /** A decoded image, or an encoded one (PNG/JPEG/WebP `Blob`/`File`) for the worker to decode. */
  image?: RgbImageWire | Blob | null;
  maxNewTokens?: number;
  temperature?: number;
  topK?: number;
  topP?: number;
  repetitionPenalty?: number;
  seed?: number;
  stopStrings?: string[];
  /** 'new' (default) starts a conversation; 'continue' asks a follow-up (no image) in the current one. */
  conversation?: 'new' | 'continue';
}

export interface TokenEventWire {
  /** Token id (−1 for text flushed at the end without a new token). */
  id: number;
  /** Text completed by this token (may be empty while a UTF-8 sequence is incomplete). */
  text: string;
  index: number;
}

export interface ResultSummary {
  /** Generated token ids (a final stop id included). */
  ids: number[];
  /** Ids of this turn's prompt (the whole templated prompt, or the follow-up's text). */
  promptIds: number[];
  /** `promptIds` as SentencePiece pieces (for the heatmap's labels). */
  promptPieces: string[];
  imageTokenId: number;
  text: string;
  stopReason: 'eos' | 'stop' | 'length';
  timings: GenerateResult['timings'];
  /** TroL gate s ∈ (0, 1) per layer per prompt token of this turn: [numLayers][promptTokens]. */
  gates: number[][];
}

export interface VerifyGoldensOptions {
  /** Weight mode for the temporary engine (default 'f32'). */
  weights?: WeightMode;
  forceF32?: boolean;
  /** Check the *_gatelast goldens (the engine then uses gate mode 'last'). */
  gateLast?: boolean;
  cases?: ('img' | 'txt')[];
}

/** One golden comparison (see src/verify/golden.ts). */
export type GoldenCheckWire = GoldenCheck;

export interface EngineWorkerApi {
  /** Adapter facts and the activation dtype. The first call creates the worker's GpuContext. */
  info(): Promise<EngineInfo>;
  /** Run the kernel self-check on the worker's device. */
  selfCheck(): Promise<SelfCheckResult[]>;
  /** Throw (or cause) a typed error on purpose. */
  failOnPurpose(kind: FailureKind): Promise<void>;

  /** Load a model (replacing any loaded one). `onProgress` must be a `Comlink.proxy`. */
  loadModel(
    source: ModelSource,
    opts?: LoadModelOptions,
    onProgress?: (p: LoadProgressEvent) => void,
  ): Promise<ModelInfo>;
  /** The loaded model, or null. */
  modelInfo(): Promise<ModelInfo | null>;
  /** Answer a question, streaming tokens to `onToken` (a `Comlink.proxy`). */
  generate(req: GenerateRequestWire, onToken?: (e: TokenEventWire) => void): Promise<ResultSummary>;
  /** Abort the running generation (it rejects with GenerationCancelledError). Never waits for GPU work. */
  cancel(): void;
  /** Free the model's GPU memory. */
  unloadModel(): Promise<void>;
  /**
   * Golden verification in the worker: load the model at `modelBaseUrl` into a temporary engine, run
   * `golden/index.json` from `goldenBaseUrl` (with its `image.png` decoded here), return every check.
   */
  verifyGoldens(goldenBaseUrl: string, modelBaseUrl: string, opts?: VerifyGoldensOptions): Promise<GoldenCheckWire[]>;
}
