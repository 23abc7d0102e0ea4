/**
 * SentencePiece `ModelProto` → a transformers.js tokenizer (`tokenizer.json` + `tokenizer_config` objects, then
 * `new PreTrainedTokenizer(json, config)`), built offline from bytes: no files, no network.
 *
 * What the conversion keeps, and what it leaves to `tokenizer.ts` (see the notes there):
 * - model: BPE over the whole piece table (`vocab` = piece → id), `byte_fallback` from the trainer spec,
 *   `fuse_unk` (SentencePiece merges runs of unknown pieces). SentencePiece BPE ships no merges list, so the
 *   merges are derived the standard way (as HF's `SentencePieceExtractor`): every split of a mergeable piece into
 *   two halves that can both be symbols, ranked by the merged piece's score (descending), then by its id, then by
 *   the left half's id.
 * - added tokens: the special strings (`<unk>`, `<s>`, `</s>` and the added_tokens.json entries such as
 *   `<image>`) as `special`, `normalized: false`; the SentencePiece USER_DEFINED pieces (`[UNUSED_TOKEN_145]`, ...)
 *   as non-special `normalized: true`, so they are matched atomically *inside* the normalized text, as
 *   SentencePiece's prefix matcher freezes them.
 * - normalizer: `escape_whitespaces` → Replace(" " → "▁"). The dummy prefix is deliberately NOT a normalizer
 *   step: transformers.js runs the normalizer over each added token's content too (a Prepend would turn
 *   `[UNUSED_TOKEN_145]` into `▁[UNUSED_TOKEN_145]` and it would never match again), so the caller prepends
 *   "▁" to each segment itself (`ConvertedTokenizer.addDummyPrefix`).
 * - no pre-tokenizer (SentencePiece BPE merges across the whole segment), no post-processor (no automatic BOS),
 *   and the usual decoder (Replace ▁ → " ", ByteFallback, Fuse, Strip one leading space) for completeness only:
 *   `TrolTokenizer.decode` implements SentencePiece's exact decode rule itself.
 */

import { PreTrainedTokenizer } from '@huggingface/transformers';
import { TokenizerError } from '../errors.ts';
import { ModelType, PieceType, type SentencePieceModel } from './sentencepiece-model.ts';

export interface AddedTokenJson {
  id: number;
  content: string;
  single_word: boolean;
  lstrip: boolean;
  rstrip: boolean;
  normalized: boolean;
  special: boolean;
}

/** The subset of the HF `tokenizer.json` schema this converter writes. */
export interface TokenizerJson {
  version: string;
  truncation: null;
  padding: null;
  added_tokens: AddedTokenJson[];
  normalizer: unknown;
  pre_tokenizer: null;
  post_processor: null;
  decoder: unknown;
  model: {
    type: 'BPE';
    dropout: null;
    unk_token: string;
    continuing_subword_prefix: null;
    end_of_word_suffix: null;
    fuse_unk: boolean;
    byte_fallback: boolean;
    ignore_merges: boolean;
    vocab: Record<string, number>;
    merges: [string, string][];
  };
}

export interface ConvertedTokenizer {
  tokenizerJson: TokenizerJson;
  tokenizerConfig: Record<string, unknown>;
  tokenizer: PreTrainedTokenizer;
  /** Special strings split out before SentencePiece encoding: content → id (`<unk>`, `<s>`, `</s>`, added tokens). */
  specials: Map<string, number>;
  /** normalizer_spec.add_dummy_prefix: the caller prepends "▁" to every non-empty segment. */
  addDummyPrefix: boolean;
  /** normalizer_spec.escape_whitespaces: " " → "▁" (done by the HF normalizer). */
  escapeWhitespaces: boolean;
  /** Non-null when transformers.js' BPE would differ from SentencePiece on this model (see DerivedMerges). */
  inexact: string | null;
}

/** Parses added_tokens.json (`{"<image>": 92544}`); anything else throws TokenizerError. */
export function parseAddedTokens(addedTokensJson: unknown): Map<string, number> {
  const out = new Map<string, number>();
  if (addedTokensJson === undefined || addedTokensJson === null) return out;
  if (typeof addedTokensJson !== 'object' || Array.isArray(addedTokensJson)) {
    throw new TokenizerError('added_tokens.json must be an object of {token: id}');
  }
  for (const [content, id] of Object.entries(addedTokensJson as Record<string, unknown>)) {
    if (typeof id !== 'number' || !Number.isInteger(id) || id < 0 || content.length === 0) {
      throw new TokenizerError(`added_tokens.json: bad entry ${JSON.stringify(content)}: ${String(id)}`);
    }
    out.set(content, id);
  }
  return out;
}

/** Rejects SentencePiece options this port does not implement, rather than encoding differently. */
function checkSupported(m: SentencePieceModel): void {
  const t = m.trainerSpec;
  const n = m.normalizerSpec;
  if (t.modelType !== ModelType.BPE) {
    throw new TokenizerError(`tokenizer.model: model_type ${t.modelType} is not supported (only BPE = 2)`);
  }
  if (t.treatWhitespaceAsSuffix) throw new TokenizerError('tokenizer.model: treat_whitespace_as_suffix unsupported');
  if (n.precompiledCharsmap.length > 0) {
    throw new TokenizerError(`tokenizer.model: normalizer "${n.name}" with a precompiled charsmap is not supported`);
  }
  if (n.removeExtraWhitespaces) {
    throw new TokenizerError('tokenizer.model: remove_extra_whitespaces is not supported');
  }
}

/** Pieces SentencePiece's BPE can merge into (its `pieces_` map): NORMAL, USER_DEFINED, UNUSED. */
function isMergeable(type: number): boolean {
  return type === PieceType.NORMAL || type === PieceType.USER_DEFINED || type === PieceType.UNUSED;
}

export interface DerivedMerges {
  merges: [string, string][];
  /**
   * Why transformers.js' BPE cannot reproduce SentencePiece on this model, or null when it can. transformers.js
   * ranks merges strictly (one rank per (left, right) pair), while SentencePiece compares the merged piece's
   * score and takes the LEFTMOST pair on a tie. The two agree when no two different merge results share a score
   * (checked here), and when no UNUSED piece is a merge result (SentencePiece re-splits those afterwards).
   */
  inexact: string | null;
}

/**
 * Every (left, right) split of every mergeable piece where both halves can be BPE symbols (a mergeable
 * non-user-defined piece, or a single code point), ordered by (score desc, merged id, left id).
 */
export function deriveMerges(m: SentencePieceModel): DerivedMerges {
  const symbolId = new Map<string, number>();
  m.pieces.forEach((p, id) => {
    if (p.type === PieceType.NORMAL || p.type === PieceType.UNUSED) symbolId.set(p.piece, id);
  });
  const idOfHalf = (s: string): number | undefined => {
    const id = symbolId.get(s);
    if (id !== undefined) return id;
    // A single code point is always an initial symbol, in the vocabulary or not.
    return s.length === 1 || (s.length === 2 && s.codePointAt(0)! > 0xffff) ? Number.MAX_SAFE_INTEGER : undefined;
  };
  const rows: { l: string; r: string; score: number; id: number; lid: number }[] = [];
  const targetOfScore = new Map<number, number>();
  let inexact: string | null = null;
  m.pieces.forEach((p, id) => {
    if (!isMergeable(p.type)) return;
    const s = p.piece;
    let isTarget = false;
    // Split at every code point boundary.
    for (let at = s.codePointAt(0)! > 0xffff ? 2 : 1; at < s.length; at += s.codePointAt(at)! > 0xffff ? 2 : 1) {
      const left = s.slice(0, at);
      const lid = idOfHalf(left);
      if (lid === undefined) continue;
      const right = s.slice(at);
      if (idOfHalf(right) === undefined) continue;
      rows.push({ l: left, r: right, score: p.score, id, lid });
      isTarget = true;
    }
    if (!isTarget || inexact !== null) return;
    if (p.type === PieceType.UNUSED) inexact = `UNUSED piece "${p.piece}" is a merge result`;
    const other = targetOfScore.get(p.score);
    if (other !== undefined) {
      inexact = `merge results "${m.pieces[other].piece}" and "${p.piece}" share the score ${p.score}`;
    }
    targetOfScore.set(p.score, id);
  });
  rows.sort((a, b) => b.score - a.score || a.id - b.id || a.lid - b.lid);
  return { merges: rows.map((x) => [x.l, x.r]), inexact };
}

export function convertSentencePiece(m: SentencePieceModel, addedTokensJson?: unknown): ConvertedTokenizer {
  checkSupported(m);
  const added = parseAddedTokens(addedTokensJson);

  const vocab: Record<string, number> = Object.create(null);
  m.pieces.forEach((p, id) => {
    vocab[p.piece] = id;
  });
  const unkId = m.pieces.findIndex((p) => p.type === PieceType.UNKNOWN);
  const unkToken = m.pieces[unkId].piece;
  const t = m.trainerSpec;
  const pieceAt = (id: number, want: string): string | null => {
    if (id < 0 || id >= m.pieces.length) return null;
    const p = m.pieces[id];
    if (p.piece !== want) {
      throw new TokenizerError(`tokenizer.model: id ${id} is "${p.piece}", but the trainer spec names "${want}"`);
    }
    return p.piece;
  };
  const bosToken = pieceAt(t.bosId, t.bosPiece);
  const eosToken = pieceAt(t.eosId, t.eosPiece);

  // Special strings, split out first (leftmost, longest): unk/bos/eos pieces, then added_tokens.json.
  const specials = new Map<string, number>();
  specials.set(unkToken, unkId);
  if (bosToken !== null) specials.set(bosToken, t.bosId);
  if (eosToken !== null) specials.set(eosToken, t.eosId);
  for (const [content, id] of added) {
    const existing = vocab[content];
    if (existing !== undefined && existing !== id) {
      throw new TokenizerError(`added_tokens.json: "${content}" → ${id}, but tokenizer.model has it at ${existing}`);
    }
    if (existing === undefined && id < m.pieces.length) {
      throw new TokenizerError(`added_tokens.json: "${content}" → ${id} collides with piece "${m.pieces[id].piece}"`);
    }
    specials.set(content, id);
  }

  const addedTokens: AddedTokenJson[] = [];
  const tokenEntry = (id: number, content: string, special: boolean): AddedTokenJson => ({
    id,
    content,
    single_word: false,
    lstrip: false,
    rstrip: false,
    normalized: !special,
    special,
  });
  for (const [content, id] of specials) addedTokens.push(tokenEntry(id, content, true));
  m.pieces.forEach((p, id) => {
    if (p.type === PieceType.USER_DEFINED) addedTokens.push(tokenEntry(id, p.piece, false));
  });
  addedTokens.sort((a, b) => a.id - b.id);

  const n = m.normalizerSpec;
  const derived = deriveMerges(m);
  const tokenizerJson: TokenizerJson = {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: addedTokens,
    normalizer: n.escapeWhitespaces ? { type: 'Replace', pattern: { String: ' ' }, content: '\u2581' } : null,
    pre_tokenizer: null,
    post_processor: null,
    decoder: {
      type: 'Sequence',
      decoders: [
        { type: 'Replace', pattern: { String: '\u2581' }, content: ' ' },
        { type: 'ByteFallback' },
        { type: 'Fuse' },
        ...(n.addDummyPrefix ? [{ type: 'Strip', content: ' ', start: 1, stop: 0 }] : []),
      ],
    },
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: unkToken,
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: true,
      byte_fallback: t.byteFallback,
      ignore_merges: false,
      vocab,
      merges: derived.merges,
    },
  };
  const tokenizerConfig: Record<string, unknown> = {
    tokenizer_class: 'InternLM2Tokenizer',
    unk_token: unkToken,
    bos_token: bosToken,
    eos_token: eosToken,
    pad_token: eosToken,
    add_bos_token: false,
    add_eos_token: false,
    clean_up_tokenization_spaces: false,
    padding_side: 'left',
  };
  let tokenizer: PreTrainedTokenizer;
  try {
    tokenizer = new PreTrainedTokenizer(tokenizerJson, tokenizerConfig);
  } catch (e) {
    throw new TokenizerError(`transformers.js rejected the converted tokenizer: ${(e as Error).message}`);
  }
  return {
    tokenizerJson,
    tokenizerConfig,
    tokenizer,
    specials,
    addDummyPrefix: n.addDummyPrefix,
    escapeWhitespaces: n.escapeWhitespaces,
    inexact: derived.inexact,
  };
}
