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
    const stopStrings = (o.stopStrings ?? []).filter((s) => s.length > 0);
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
      let piece = streamer.push(id);
      let hitStop = false;
      if (stopStrings.length > 0) {
        const candidate = text + piece;
        let cut = -1;
        for (const s of stopStrings) {
          const at = candidate.indexOf(s);
          if (at >= 0 && (cut < 0 || at < cut)) cut = at;
        }
        if (cut >= 0) {
          piece = candidate.slice(text.length, cut);
          hitStop = true;
        }
      }
      text += piece;
      const ev: TokenEvent = { id, text: piece, index: step };
      o.onToken?.(ev);
      yield ev;
      if (hitStop) {
        stopReason = 'stop';
        break;
      }
    }
    if (stopReason !== 'stop') {
      const tail = streamer.end();
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
