/**
 * TrolTokenizer: InternLM2's slow-tokenizer semantics over a SentencePiece BPE `tokenizer.model`, as pinned by
 * the tiny-trol fixture README (§1) and checked against its goldens.
 *
 * encode(text):
 *   1. Split the text on the special strings (`<unk>`, `<s>`, `</s>` and added_tokens.json entries such as
 *      `<image>`), leftmost first, longest first at a position; each maps to its id. No BOS is added.
 *   2. Every other (non-empty) segment is SentencePiece-encoded on its own, so the dummy prefix "▁" applies per
 *      segment (when `add_dummy_prefix`); spaces become "▁" (`escape_whitespaces`); no whitespace is collapsed.
 *      USER_DEFINED pieces (`[UNUSED_TOKEN_145]`, ...) match atomically inside a segment and never merge.
 *   The BPE itself runs in transformers.js (see convert.ts); this class only adds the per-segment dummy prefix,
 *   which transformers.js cannot express without also mangling the user-defined pieces. For a model where a
 *   strict merge ranking cannot reproduce SentencePiece (merge results with equal scores, or UNUSED merge
 *   results; see `DerivedMerges.inexact`), segments go to SentencePiece's own algorithm in bpe.ts instead
 *   (`bpeEngine` says which). `encode(text, { continuation: true })` drops the dummy prefix of the first segment
 *   (for follow-up turns appended to a live cache, see prompt.ts).
 *
 * decode(ids): runs of ordinary ids are decoded as SentencePiece's `DecodeIds` does (dummy-prefix space of a run
 * dropped, "▁" → " ", byte pieces reassembled as UTF-8 with one U+FFFD per invalid byte, other CONTROL pieces
 * invisible); the special ids are written literally, with no spaces added around them.
 */

import type { PreTrainedTokenizer } from '@huggingface/transformers';
import { ArgumentError, TokenizerError } from '../errors.ts';
import { SentencePieceBpe } from './bpe.ts';
import { convertSentencePiece } from './convert.ts';
import { byteOfPiece, PieceType, parseSentencePieceModel, type SentencePieceModel } from './sentencepiece-model.ts';
import { decodeUtf8Lossy } from './utf8.ts';

export const IMAGE_TOKEN = '<image>';
export const IM_START = '[UNUSED_TOKEN_146]';
export const IM_END = '[UNUSED_TOKEN_145]';
const SPACE = '\u2581';

export interface SpecialIds {
  bos: number;
  eos: number;
  unk: number;
  /** `[UNUSED_TOKEN_146]`, which opens a chat turn. */
  imStart: number;
  /** `[UNUSED_TOKEN_145]`, which closes a chat turn (the answer's end marker). */
  imEnd: number;
}

/** How decode treats an id: a special written literally, a byte, a control piece (invisible), or text. */
export const IdKind = { Special: 0, Byte: 1, Control: 2, Text: 3 } as const;
export type IdKind = (typeof IdKind)[keyof typeof IdKind];

/** Leftmost-longest matcher over a fixed set of strings (a character trie). */
class SpecialSplitter {
  private readonly root = new Map<string, TrieNode>();
  constructor(words: Iterable<string>) {
    for (const w of words) {
      let level = this.root;
      let node: TrieNode | undefined;
      for (const ch of w) {
        node = level.get(ch);
        if (!node) {
          node = { next: new Map(), word: null };
          level.set(ch, node);
        }
        level = node.next;
      }
      if (node) node.word = w;
    }
  }

  /** Splits text into [segment, isSpecial] parts; empty segments are dropped. */
  split(text: string): [string, boolean][] {
    const out: [string, boolean][] = [];
    let start = 0;
    let i = 0;
    while (i < text.length) {
      let level = this.root;
      let match: string | null = null;
      for (let j = i; j < text.length; j++) {
        const node = level.get(text[j]);
        if (!node) break;
        if (node.word !== null) match = node.word;
        level = node.next;
      }
      if (match === null) {
        i++;
        continue;
      }
      if (i > start) out.push([text.slice(start, i), false]);
      out.push([match, true]);
      i += match.length;
      start = i;
    }
    if (start < text.length) out.push([text.slice(start), false]);
    return out;
  }
}

interface TrieNode {
  next: Map<string, TrieNode>;
  word: string | null;
}

export class TrolTokenizer {
  /** Number of SentencePiece pieces (ids 0..vocabSize−1; the LM head's row count). Added tokens lie above. */
  readonly vocabSize: number;
  readonly imageTokenId: number;
  readonly specialIds: Readonly<SpecialIds>;
  /** The converted transformers.js tokenizer that runs the BPE of each segment. */
  readonly hf: PreTrainedTokenizer;
  /**
   * Which BPE encodes segments: 'transformers.js' whenever it is exact for this model, else 'sentencepiece'
   * (bpe.ts); `inexactReason` says why (see `DerivedMerges.inexact` in convert.ts).
   */
  readonly bpeEngine: 'transformers.js' | 'sentencepiece';
  readonly inexactReason: string | null;

  private readonly pieces: string[];
  private readonly kinds: Uint8Array;
  private readonly ids: Map<string, number>;
  private readonly splitter: SpecialSplitter;
  private readonly prefix: string;
  private readonly escape: boolean;
  private readonly spm: SentencePieceBpe | null;

  private constructor(model: SentencePieceModel, addedTokensJson: unknown) {
    const vocabSize = model.pieces.length;
    const added =
      addedTokensJson === undefined || addedTokensJson === null
        ? { [IMAGE_TOKEN]: vocabSize } // the TroL convention: <image> is id vocab_size
        : addedTokensJson;
    const conv = convertSentencePiece(model, added);
    this.hf = conv.tokenizer;
    this.vocabSize = vocabSize;
    this.prefix = conv.addDummyPrefix ? (conv.escapeWhitespaces ? SPACE : ' ') : '';
    this.escape = conv.escapeWhitespaces;
    this.inexactReason = conv.inexact;
    this.bpeEngine = conv.inexact === null ? 'transformers.js' : 'sentencepiece';
    this.spm = conv.inexact === null ? null : new SentencePieceBpe(model);

    let total = vocabSize;
    for (const id of conv.specials.values()) total = Math.max(total, id + 1);
    this.pieces = new Array<string>(total).fill('');
    this.kinds = new Uint8Array(total).fill(IdKind.Text);
    this.ids = new Map();
    model.pieces.forEach((p, id) => {
      this.pieces[id] = p.piece;
      this.ids.set(p.piece, id);
      if (p.type === PieceType.BYTE) this.kinds[id] = IdKind.Byte;
      else if (p.type === PieceType.CONTROL || p.type === PieceType.UNKNOWN) this.kinds[id] = IdKind.Control;
    });
    for (const [content, id] of conv.specials) {
      this.pieces[id] = content;
      this.ids.set(content, id);
      this.kinds[id] = IdKind.Special;
    }
    this.splitter = new SpecialSplitter(conv.specials.keys());

    const need = (piece: string): number => {
      const id = this.ids.get(piece);
      if (id === undefined) throw new TokenizerError(`tokenizer: required piece "${piece}" is missing`);
      return id;
    };
    const t = model.trainerSpec;
    const unk = model.pieces.findIndex((p) => p.type === PieceType.UNKNOWN);
    this.specialIds = Object.freeze({
      bos: t.bosId >= 0 && t.bosId < vocabSize ? t.bosId : need('<s>'),
      eos: t.eosId >= 0 && t.eosId < vocabSize ? t.eosId : need('</s>'),
      unk,
      imStart: need(IM_START),
      imEnd: need(IM_END),
    });
    this.imageTokenId = need(IMAGE_TOKEN);
    if (this.kinds[this.imageTokenId] !== IdKind.Special) {
      throw new TokenizerError(`tokenizer: "${IMAGE_TOKEN}" must be an added token`);
    }
  }

  /** Builds the tokenizer from `tokenizer.model` bytes and the parsed added_tokens.json (e.g. {"<image>": 92544}). */
  static fromModelBytes(model: Uint8Array, addedTokensJson?: unknown): TrolTokenizer {
    return new TrolTokenizer(parseSentencePieceModel(model), addedTokensJson);
  }

  /** Every id an encode can produce or a decode accepts: vocabSize plus the added tokens. */
  get totalIds(): number {
    return this.pieces.length;
  }

  /**
   * Token ids of `text`. With `continuation: true` the text continues tokens already in the cache (a follow-up
   * turn, see prompt.ts): its first segment gets no dummy prefix, exactly as if it had been encoded as part
   * of the whole conversation (which holds when the text starts with a special or user-defined piece, as
   * `buildFollowUp` does, since nothing merges across those).
   */
  encode(text: string, opts: { continuation?: boolean } = {}): number[] {
    const out: number[] = [];
    let first = true;
    for (const [segment, special] of this.splitter.split(text)) {
      if (special) out.push(this.ids.get(segment)!);
      else for (const id of this.encodeSegment(segment, !(first && opts.continuation))) out.push(id);
      first = false;
    }
    return out;
  }

  /** SentencePiece-encodes one segment that holds no special string. */
  encodeSegment(segment: string, dummyPrefix = true): number[] {
    if (segment.length === 0) return [];
    const prefix = dummyPrefix ? this.prefix : '';
    if (this.spm) return this.spm.encode(prefix + (this.escape ? segment.replaceAll(' ', SPACE) : segment));
    // The HF normalizer escapes the spaces; the dummy prefix is ours (see convert.ts).
    return this.hf.encode(prefix + segment, { add_special_tokens: false });
  }

  decode(ids: readonly number[]): string {
    let out = '';
    let run: number[] = [];
    for (const id of ids) {
      this.checkId(id);
      if (this.kinds[id] === IdKind.Special) {
        out += this.decodeRun(run) + this.pieces[id];
        run = [];
      } else run.push(id);
    }
    return out + this.decodeRun(run);
  }

  /** SentencePiece `DecodeIds` over a run that holds no special id. */
  private decodeRun(run: readonly number[]): string {
    let text = '';
    let bytes: number[] = [];
    let bosWsSeen = false;
    let isBosWs = this.prefix !== '';
    for (const id of run) {
      const kind = this.kinds[id];
      if (kind === IdKind.Byte) {
        bytes.push(byteOfPiece(this.pieces[id]));
        continue;
      }
      if (bytes.length > 0) {
        text += decodeUtf8Lossy(bytes);
        bytes = [];
      }
      if (bosWsSeen || text.length > 0) isBosWs = false;
      if (kind === IdKind.Control) {
        bosWsSeen = false;
        continue;
      }
      let piece = this.pieces[id];
      bosWsSeen = isBosWs && piece.startsWith(SPACE);
      if (bosWsSeen) piece = piece.slice(SPACE.length);
      text += piece.replaceAll(SPACE, ' ');
    }
    if (bytes.length > 0) text += decodeUtf8Lossy(bytes);
    return text;
  }

  /** The id of a piece or added token; throws ArgumentError when there is none. */
  idOf(piece: string): number {
    const id = this.ids.get(piece);
    if (id === undefined) throw new ArgumentError(`tokenizer: no piece "${piece}"`);
    return id;
  }

  pieceOf(id: number): string {
    this.checkId(id);
    return this.pieces[id];
  }

  /** How decode treats an id (used by the streaming decoder). */
  kindOf(id: number): IdKind {
    this.checkId(id);
    return this.kinds[id] as IdKind;
  }

  /** Whether decode drops a leading "▁" of a run (add_dummy_prefix). */
  get stripsDummyPrefix(): boolean {
    return this.prefix !== '';
  }

  private checkId(id: number): void {
    if (!Number.isInteger(id) || id < 0 || id >= this.pieces.length || this.pieces[id] === '') {
      throw new ArgumentError(`tokenizer: id ${id} is out of range`, { id, size: this.pieces.length });
    }
  }
}
