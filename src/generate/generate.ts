/**
 * The generation loop: prefill → sample → decode … with stop ids, stop strings, max_new_tokens, streaming text
 * and cancellation. Works on a `Conversation`, whose KV cache carries over between turns.
 *
 * Cache bookkeeping: a sampled token is fed to the model (decoded) only when another token is needed after
 * it. The last answer token (and a stop token) are therefore not in the cache when a turn ends; a follow-up
 * turn feeds `pending` first, then its own text, so the cache always equals the full token history.
 */
import { GenerationCancelledError } from '../errors.ts';
import type { Tensor } from '../gpu/tensor.ts';
import type { PrefillDebug, TrolModel } from '../model/trol-model.ts';
import type { TextStreamer } from '../tokenizer/streaming.ts';
import { Sampler, type SamplingOptions } from './sampler.ts';

export type StopReason = 'eos' | 'stop' | 'length';

export interface TokenEvent {
  id: number;
  /** Text completed by this token (may be empty while a UTF-8 sequence is incomplete). */
  text: string;
  index: number;
}

export interface GenerateLoopOptions extends SamplingOptions {
  maxNewTokens: number;
  stopIds: number[];
  stopStrings?: string[];
  signal?: AbortSignal;
  onToken?: (e: TokenEvent) => void;
  /** Record logits of every step (tests, --dump). */
  keepLogits?: boolean;
  debug?: PrefillDebug;
}

export interface GenerateLoopResult {
  generatedIds: number[];
  text: string;
  stopReason: StopReason;
  gates: Float32Array[];
  logits: Float32Array[];
  prefillMs: number;
  decodeMs: number;
  /** Ids sampled but not yet fed to the model (see header). */
  pending: number[];
}

/**
 * Applies stop strings to streamed text. Text that could be the start of a stop string is held back until it
 * is proven not to be, so streamed text never has to be retracted and the final text is exactly the text
 * before the first stop string.
 */
export class StopStringFilter {
  private readonly stops: string[];
  private emitted = '';
  private held = '';
  constructor(stops: string[]) {
    this.stops = stops.filter((s) => s.length > 0);
  }
  push(piece: string): { text: string; stopped: boolean } {
    if (this.stops.length === 0) return { text: piece, stopped: false };
    const full = this.emitted + this.held + piece;
    let cut = -1;
    for (const s of this.stops) {
      const at = full.indexOf(s, this.emitted.length);
      if (at >= 0 && (cut < 0 || at < cut)) cut = at;
    }
    if (cut >= 0) {
      const text = full.slice(this.emitted.length, cut);
      this.emitted += text;
      this.held = '';
      return { text, stopped: true };
    }
    let hold = 0;
    for (const s of this.stops) {
      for (let n = Math.min(s.length - 1, full.length - this.emitted.length); n > hold; n--) {
        if (full.endsWith(s.slice(0, n))) {
          hold = n;
          break;
        }
      }
    }
    const text = full.slice(this.emitted.length, full.length - hold);
    this.emitted += text;
    this.held = full.slice(full.length - hold);
    return { text, stopped: false };
  }
  /** Text still held at the end of generation (no stop string followed). */
  flush(): string {
    const t = this.held;
    this.emitted += t;
    this.held = '';
    return t;
  }
}

function checkAbort(signal?: AbortSignal): void {
  if (signal?.aborted) throw new GenerationCancelledError('Generation cancelled.');
}

/**
 * Run one turn: prefill `newIds` (with `image` features for its `<image>` rows), then generate.
 * Yields a TokenEvent per generated token; returns the result when done.
 */
export async function* runTurn(
  model: TrolModel,
  newIds: number[],
  image: Tensor | null,
  history: number[],
  streamer: TextStreamer,
  o: GenerateLoopOptions,
): AsyncGenerator<TokenEvent, GenerateLoopResult> {
  checkAbort(o.signal);
  const sampler = await Sampler.create(model.ctx, o);
  try {
    const t0 = performance.now();
    const pre = await model.prefill(newIds, image, o.debug);
    let logits: Tensor = pre.logits;
    const allIds = [...history, ...newIds];
    const generated: number[] = [];
    const keptLogits: Float32Array[] = [];
    let text = '';
    let stopReason: StopReason = 'length';
    let prefillMs = 0;
    let t1 = 0;
    const stops = new StopStringFilter(o.stopStrings ?? []);
    for (let step = 0; step < o.maxNewTokens; step++) {
      if (step > 0) {
        checkAbort(o.signal);
        logits = await model.decode(generated[generated.length - 1]);
      }
      if (o.keepLogits) keptLogits.push(await model.readLogits());
      const id = await sampler.next(logits, allIds);
      if (step === 0) {
        prefillMs = performance.now() - t0;
        t1 = performance.now();
      }
      if (o.stopIds.includes(id)) {
        stopReason = 'eos';
        generated.push(id);
        break;
      }
      generated.push(id);
      allIds.push(id);
      const piece = stops.push(streamer.push(id));
      text += piece.text;
      const ev: TokenEvent = { id, text: piece.text, index: step };
      o.onToken?.(ev);
      yield ev;
      if (piece.stopped) {
        stopReason = 'stop';
        break;
      }
    }
    if (stopReason !== 'stop') {
      const tail = stops.push(streamer.end()).text + stops.flush();
      if (tail) {
        text += tail;
        const ev: TokenEvent = { id: -1, text: tail, index: generated.length };
        o.onToken?.(ev);
        yield ev;
      }
    }
    const decodeMs = t1 ? performance.now() - t1 : 0;
    // Everything after the last decode() call is pending: the final sampled token (incl. a stop token).
    const pending = generated.length > 0 ? [generated[generated.length - 1]] : [];
    return {
      generatedIds: generated,
      text,
      stopReason,
      gates: pre.gates,
      logits: keptLogits,
      prefillMs,
      decodeMs,
      pending,
    };
  } finally {
    sampler.destroy();
  }
}
