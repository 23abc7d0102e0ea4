/**
 * The public API in one place.
 *
 *   const engine = await createEngine(files, { weights: 'q4' });
 *   for await (const t of engine.generate({ question, image })) output(t.text);
 *   const r = engine.lastResult;  // ids, text, stop reason, timings, traversal trace
 *
 * Data flow: ModelFiles (ByteSources) → config, safetensors, trol_gating.pt, tokenizer.model → GPU weights
 * (quantized on upload) → TrolModel (vision, decoder with traversal, KV cache) → generate loop → tokens/text.
 * The same code runs in a browser Worker and in Node (the CLI); only the GpuContext and ByteSources differ.
 */
import { ArgumentError, ConfigError, ContextOverflowError, GenerationCancelledError, TrolError } from './errors.ts';
import { type GenerateLoopResult, runTurn, type StopReason, type TokenEvent } from './generate/generate.ts';
import { type SamplingOptions, validateSampling } from './generate/sampler.ts';
import type { AdapterChoice } from './gpu/acquire.ts';
import { GpuContext } from './gpu/context.ts';
import type { Tensor } from './gpu/tensor.ts';
import { preprocessImage } from './image/preprocess.ts';
import { readConfig, type TrolConfig } from './model/config.ts';
import { type PrefillDebug, TrolModel } from './model/trol-model.ts';
import { runVision, type VisionDebug } from './model/vision.ts';
import {
  type GateMode,
  type LoadProgress,
  loadTrolWeights,
  type TrolWeights,
  type WeightMode,
} from './model/weights.ts';
import { buildPrompt } from './tokenizer/prompt.ts';
import { TextStreamer } from './tokenizer/streaming.ts';
import { TrolTokenizer } from './tokenizer/tokenizer.ts';
import type { ModelFiles } from './weights/byte-source.ts';
import { SafetensorsIndex } from './weights/safetensors.ts';
import { readTorchStateDict } from './weights/torch-pickle.ts';

export interface EngineOptions {
  weights?: WeightMode;
  /** f32 activations even where shader-f16 exists. */
  forceF32?: boolean;
  gateMode?: GateMode;
  /** Tokens the conversation may hold (default: min(config max_length, 4096)). */
  contextLength?: number;
  /** Prefill chunk length in tokens (bounds temporary buffers; results do not depend on it). */
  chunkSize?: number;
  adapter?: AdapterChoice;
  profile?: boolean;
  onProgress?: (p: LoadProgress) => void;
  /** Use an existing GpuContext (tests); the engine then does not destroy it. */
  context?: GpuContext;
}

/** A decoded image: RGB u8, channel-major [3, height, width]. */
export interface RgbImage {
  data: Uint8Array;
  width: number;
  height: number;
}

export interface GenerateRequest extends SamplingOptions {
  question: string;
  image?: RgbImage | null;
  maxNewTokens?: number;
  stopStrings?: string[];
  signal?: AbortSignal;
  /** 'new' (default) starts a fresh conversation; 'continue' asks a follow-up in the current one. */
  conversation?: 'new' | 'continue';
  onToken?: (e: TokenEvent) => void;
  keepLogits?: boolean;
  debug?: PrefillDebug & VisionDebug & { resized?: Uint8Array; pixels?: Float32Array };
}

export interface GenerateResult {
  promptIds: number[];
  generatedIds: number[];
  text: string;
  stopReason: StopReason;
  timings: {
    visionMs: number;
    prefillMs: number;
    decodeMs: number;
    promptTokens: number;
    newTokens: number;
    prefillTokensPerSecond: number;
    decodeTokensPerSecond: number;
  };
  /** TroL gate per layer per prompt token, [L][T]. */
  gates: Float32Array[];
  logits: Float32Array[];
}

export class TrolEngine {
  lastResult: GenerateResult | null = null;
  /** Ids fed so far in the current conversation (equals the KV cache) plus ids still pending. */
  private history: number[] = [];
  private pending: number[] = [];
  private busy = false;

  private constructor(
    readonly ctx: GpuContext,
    readonly cfg: TrolConfig,
    readonly tokenizer: TrolTokenizer,
    readonly weights: TrolWeights,
    readonly model: TrolModel,
    private readonly ownsContext: boolean,
  ) {}

  static async create(files: ModelFiles, opts: EngineOptions = {}): Promise<TrolEngine> {
    const cfg = await readConfig(files);
    const tokSrc = await files.get('tokenizer.model');
    if (!tokSrc) throw new ConfigError('The model folder has no tokenizer.model', { file: 'tokenizer.model' });
    const addedSrc = await files.get('added_tokens.json');
    const added = addedSrc
      ? JSON.parse(new TextDecoder().decode(await addedSrc.read(0, await addedSrc.size())))
      : undefined;
    const tokenizer = TrolTokenizer.fromModelBytes(await tokSrc.read(0, await tokSrc.size()), added);
    if (tokenizer.imageTokenId !== cfg.vocabSize) {
      throw new ConfigError(
        `<image> has id ${tokenizer.imageTokenId} in the tokenizer but the config's vocab_size is ${cfg.vocabSize}`,
      );
    }
    const gateSrc = await files.get('trol_gating.pt');
    if (!gateSrc) throw new ConfigError('The model folder has no trol_gating.pt', { file: 'trol_gating.pt' });
    const gating = await readTorchStateDict(gateSrc);
    const st = await SafetensorsIndex.open(files);
    const ctx =
      opts.context ??
      (await GpuContext.create({ adapter: opts.adapter, forceF32: opts.forceF32, profile: opts.profile }));
    let weights: TrolWeights | null = null;
    try {
      weights = await loadTrolWeights(
        ctx,
        st,
        gating,
        cfg,
        opts.weights ?? 'q4',
        opts.gateMode ?? 'per-layer',
        opts.onProgress,
      );
      const model = await TrolModel.create(ctx, cfg, weights, {
        contextLength: opts.contextLength,
        chunkSize: opts.chunkSize,
      });
      return new TrolEngine(ctx, cfg, tokenizer, weights, model, !opts.context);
    } catch (e) {
      weights?.destroy();
      if (!opts.context) ctx.destroy();
      throw e;
    }
  }

  info() {
    return {
      adapter: this.ctx.adapterSummary,
      act: this.ctx.act,
      weights: this.weights.mode,
      gateMode: this.weights.gateMode,
      contextLength: this.model.capacity,
      config: this.cfg,
    };
  }

  /** Token ids of the full first-turn prompt for `question` (with or without an image). */
  promptIds(question: string, hasImage: boolean): number[] {
    return this.tokenizer.encode(buildPrompt({ question, hasImage, imageTokens: this.cfg.imageTokens }));
  }

  private followUpIds(question: string): number[] {
    const { imEnd, eos } = this.tokenizer.specialIds;
    // Close the previous answer: its end marker is fed unless generation already produced it.
    const pending = this.pending.filter((id) => id !== eos);
    const closed = pending.length > 0 && pending[pending.length - 1] === imEnd;
    const text = `${closed ? '' : '[UNUSED_TOKEN_145]'}\n[UNUSED_TOKEN_146]user\n${question}[UNUSED_TOKEN_145]\n[UNUSED_TOKEN_146]assistant\n`;
    // A continuation of the running text: no dummy-prefix "▁" (as if the whole conversation were encoded at once).
    return [...pending, ...this.tokenizer.encode(text, { continuation: true })];
  }

  /** Stream the answer token by token; the full result is in `lastResult` afterwards. */
  async *generate(req: GenerateRequest): AsyncGenerator<TokenEvent, GenerateResult> {
    if (this.busy) throw new ArgumentError('The engine is already generating; cancel it or wait.');
    this.busy = true;
    let features: Tensor | null = null;
    try {
      validateSampling(req);
      const maxNew = req.maxNewTokens ?? 256;
      if (!Number.isInteger(maxNew) || maxNew < 1)
        throw new ArgumentError(`max_new_tokens must be ≥ 1 (got ${maxNew})`);
      const cont = req.conversation === 'continue' && this.history.length > 0;
      if (cont && req.image) throw new ArgumentError('A follow-up turn cannot add an image; start a new conversation.');
      const newIds = cont ? this.followUpIds(req.question) : this.promptIds(req.question, !!req.image);
      if (!cont) {
        this.model.reset();
        this.history = [];
        this.pending = [];
      }
      const past = this.model.cache.length;
      if (past + newIds.length + maxNew > this.model.capacity) {
        throw new ContextOverflowError(
          `The prompt needs ${past + newIds.length} tokens plus ${maxNew} new ones, but the context holds ${this.model.capacity}.`,
          { needed: past + newIds.length + maxNew, capacity: this.model.capacity },
        );
      }
      let visionMs = 0;
      if (req.image) {
        const tv = performance.now();
        const { resized, pixels } = preprocessImage(req.image, this.cfg.imgSize);
        if (req.debug) {
          req.debug.resized = resized;
          req.debug.pixels = pixels;
        }
        if (req.signal?.aborted) throw new GenerationCancelledError('Generation cancelled.');
        features = await runVision(this.ctx, this.cfg, this.weights, pixels, req.debug);
        visionMs = performance.now() - tv;
      }
      const streamer = new TextStreamer(this.tokenizer);
      const { imEnd, eos } = this.tokenizer.specialIds;
      const it = runTurn(this.model, newIds, features, this.history, streamer, {
        ...req,
        maxNewTokens: maxNew,
        stopIds: [eos, imEnd],
        debug: req.debug,
      });
      let r: IteratorResult<TokenEvent, GenerateLoopResult>;
      try {
        for (r = await it.next(); !r.done; r = await it.next()) yield r.value;
      } catch (e) {
        // A cancelled or failed turn ends the conversation: the next request starts fresh.
        this.model.reset();
        this.history = [];
        this.pending = [];
        throw e;
      }
      const loop = r.value;
      const fed = this.model.cache.length;
      this.history = [...this.history, ...newIds, ...loop.generatedIds].slice(0, fed);
      this.pending = loop.pending;
      const result: GenerateResult = {
        promptIds: newIds,
        generatedIds: loop.generatedIds,
        text: loop.text,
        stopReason: loop.stopReason,
        timings: {
          visionMs,
          prefillMs: loop.prefillMs,
          decodeMs: loop.decodeMs,
          promptTokens: newIds.length,
          newTokens: loop.generatedIds.length,
          prefillTokensPerSecond: loop.prefillMs > 0 ? (newIds.length / loop.prefillMs) * 1000 : 0,
          decodeTokensPerSecond: loop.decodeMs > 0 ? ((loop.generatedIds.length - 1) / loop.decodeMs) * 1000 : 0,
        },
        gates: loop.gates,
        logits: loop.logits,
      };
      this.lastResult = result;
      return result;
    } finally {
      features?.destroy();
      this.busy = false;
    }
  }

  /** Convenience: run to completion and return the result. */
  async complete(req: GenerateRequest): Promise<GenerateResult> {
    const it = this.generate(req);
    let r = await it.next();
    while (!r.done) r = await it.next();
    return r.value;
  }

  destroy(): void {
    this.model.destroy();
    this.weights.destroy();
    if (this.ownsContext) this.ctx.destroy();
  }
}

export const createEngine = TrolEngine.create;
export { TrolError };
