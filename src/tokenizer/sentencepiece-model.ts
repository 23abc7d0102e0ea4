/**
 * A minimal protobuf decoder for SentencePiece's `tokenizer.model` (`ModelProto` in sentencepiece_model.proto).
 *
 * Only the fields the engine needs are kept; every other field is skipped by wire type, so newer model files
 * with extra fields still load. Field numbers (proto2, all optional):
 *
 *   ModelProto      1 pieces (repeated SentencePiece) · 2 trainer_spec · 3 normalizer_spec · 5 denormalizer_spec
 *   SentencePiece   1 piece (string) · 2 score (float) · 3 type (enum, default NORMAL)
 *   TrainerSpec     3 model_type (enum, default UNIGRAM) · 4 vocab_size · 24 treat_whitespace_as_suffix ·
 *                   35 byte_fallback · 40 unk_id (0) · 41 bos_id (1) · 42 eos_id (2) · 43 pad_id (−1) ·
 *                   45 unk_piece · 46 bos_piece · 47 eos_piece · 48 pad_piece · 44 unk_surface
 *   NormalizerSpec  1 name · 2 precompiled_charsmap (bytes) · 3 add_dummy_prefix (true) ·
 *                   4 remove_extra_whitespaces (true) · 5 escape_whitespaces (true)
 *
 * Defaults are the proto2 defaults of sentencepiece_model.proto, so an absent field means what SentencePiece
 * itself would assume. Anything malformed (truncated varint or length, bad wire type, invalid UTF-8 in a
 * string, a piece table SentencePiece itself would reject) throws `TokenizerError`.
 */

import { TokenizerError } from '../errors.ts';

export const PieceType = {
  NORMAL: 1,
  UNKNOWN: 2,
  CONTROL: 3,
  USER_DEFINED: 4,
  UNUSED: 5,
  BYTE: 6,
} as const;
export type PieceTypeValue = (typeof PieceType)[keyof typeof PieceType];

export const ModelType = { UNIGRAM: 1, BPE: 2, WORD: 3, CHAR: 4 } as const;

export interface SentencePiece {
  piece: string;
  score: number;
  type: PieceTypeValue;
}

export interface TrainerSpec {
  modelType: number;
  vocabSize: number;
  byteFallback: boolean;
  treatWhitespaceAsSuffix: boolean;
  unkId: number;
  bosId: number;
  eosId: number;
  padId: number;
  unkPiece: string;
  bosPiece: string;
  eosPiece: string;
  padPiece: string;
  unkSurface: string;
}

export interface NormalizerSpec {
  name: string;
  precompiledCharsmap: Uint8Array;
  addDummyPrefix: boolean;
  removeExtraWhitespaces: boolean;
  escapeWhitespaces: boolean;
}

export interface SentencePieceModel {
  pieces: SentencePiece[];
  trainerSpec: TrainerSpec;
  normalizerSpec: NormalizerSpec;
}

const WIRE_VARINT = 0;
const WIRE_I64 = 1;
const WIRE_LEN = 2;
const WIRE_I32 = 5;

const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** A cursor over protobuf bytes; every read checks bounds and throws TokenizerError past the end. */
class Reader {
  pos: number;
  constructor(
    readonly buf: Uint8Array,
    start: number,
    readonly end: number,
  ) {
    this.pos = start;
  }

  /**
   * Reads a varint (up to 10 bytes). Returns its low 32 bits as an unsigned number; the high bits only matter
   * for int32 fields, where protobuf sign-extends negatives to 64 bits, so `lo | 0` is the int32 value.
   */
  varint(): number {
    let lo = 0;
    for (let i = 0; i < 10; i++) {
      if (this.pos >= this.end) throw new TokenizerError('tokenizer.model: truncated varint', { offset: this.pos });
      const b = this.buf[this.pos++];
      if (i < 5) lo = (lo + (b & 0x7f) * 2 ** (7 * i)) % 2 ** 32;
      if ((b & 0x80) === 0) return lo;
    }
    throw new TokenizerError('tokenizer.model: varint longer than 10 bytes', { offset: this.pos });
  }

  bytes(): Uint8Array {
    const n = this.varint();
    if (n > this.end - this.pos) {
      throw new TokenizerError('tokenizer.model: length-delimited field runs past its end', { offset: this.pos, n });
    }
    const out = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }

  string(): string {
    const b = this.bytes();
    try {
      return utf8.decode(b);
    } catch {
      throw new TokenizerError('tokenizer.model: a string field is not valid UTF-8', { offset: this.pos });
    }
  }

  float32(): number {
    if (this.end - this.pos < 4) throw new TokenizerError('tokenizer.model: truncated float', { offset: this.pos });
    const v = new DataView(this.buf.buffer, this.buf.byteOffset + this.pos, 4).getFloat32(0, true);
    this.pos += 4;
    return v;
  }

  /** Reads a tag; returns [fieldNumber, wireType]. */
  tag(): [number, number] {
    const t = this.varint();
    const field = Math.floor(t / 8);
    const wire = t & 7;
    if (field === 0) throw new TokenizerError('tokenizer.model: field number 0', { offset: this.pos });
    return [field, wire];
  }

  skip(wire: number): void {
    switch (wire) {
      case WIRE_VARINT:
        this.varint();
        return;
      case WIRE_I64:
        this.advance(8);
        return;
      case WIRE_LEN:
        this.bytes();
        return;
      case WIRE_I32:
        this.advance(4);
        return;
      default:
        // Groups (3/4) are not used by sentencepiece_model.proto; 6 and 7 do not exist.
        throw new TokenizerError(`tokenizer.model: unsupported wire type ${wire}`, { offset: this.pos });
    }
  }

  private advance(n: number): void {
    if (this.end - this.pos < n) throw new TokenizerError('tokenizer.model: truncated field', { offset: this.pos });
    this.pos += n;
  }

  sub(): Reader {
    const b = this.bytes();
    return new Reader(this.buf, b.byteOffset - this.buf.byteOffset, b.byteOffset - this.buf.byteOffset + b.length);
  }
}

function expectWire(field: string, wire: number, want: number, at: number): void {
  if (wire !== want) {
    throw new TokenizerError(`tokenizer.model: field ${field} has wire type ${wire}, expected ${want}`, {
      offset: at,
    });
  }
}

function readPiece(r: Reader): SentencePiece {
  let piece = '';
  let score = 0;
  let type = PieceType.NORMAL as number;
  while (r.pos < r.end) {
    const [f, w] = r.tag();
    if (f === 1) {
      expectWire('piece', w, WIRE_LEN, r.pos);
      piece = r.string();
    } else if (f === 2) {
      expectWire('score', w, WIRE_I32, r.pos);
      score = r.float32();
    } else if (f === 3) {
      expectWire('type', w, WIRE_VARINT, r.pos);
      type = r.varint() | 0;
    } else r.skip(w);
  }
  if (type < PieceType.NORMAL || type > PieceType.BYTE) {
    throw new TokenizerError(`tokenizer.model: piece "${piece}" has unknown type ${type}`);
  }
  return { piece, score, type: type as PieceTypeValue };
}

function readTrainerSpec(r: Reader): TrainerSpec {
  const s: TrainerSpec = {
    modelType: ModelType.UNIGRAM,
    vocabSize: 8000,
    byteFallback: false,
    treatWhitespaceAsSuffix: false,
    unkId: 0,
    bosId: 1,
    eosId: 2,
    padId: -1,
    unkPiece: '<unk>',
    bosPiece: '<s>',
    eosPiece: '</s>',
    padPiece: '<pad>',
    unkSurface: ' \u2047 ',
  };
  while (r.pos < r.end) {
    const [f, w] = r.tag();
    const at = r.pos;
    const int = (name: string) => {
      expectWire(name, w, WIRE_VARINT, at);
      return r.varint() | 0;
    };
    const str = (name: string) => {
      expectWire(name, w, WIRE_LEN, at);
      return r.string();
    };
    switch (f) {
      case 3:
        s.modelType = int('model_type');
        break;
      case 4:
        s.vocabSize = int('vocab_size');
        break;
      case 24:
        s.treatWhitespaceAsSuffix = int('treat_whitespace_as_suffix') !== 0;
        break;
      case 35:
        s.byteFallback = int('byte_fallback') !== 0;
        break;
      case 40:
        s.unkId = int('unk_id');
        break;
      case 41:
        s.bosId = int('bos_id');
        break;
      case 42:
        s.eosId = int('eos_id');
        break;
      case 43:
        s.padId = int('pad_id');
        break;
      case 44:
        s.unkSurface = str('unk_surface');
        break;
      case 45:
        s.unkPiece = str('unk_piece');
        break;
      case 46:
        s.bosPiece = str('bos_piece');
        break;
      case 47:
        s.eosPiece = str('eos_piece');
        break;
      case 48:
        s.padPiece = str('pad_piece');
        break;
      default:
        r.skip(w);
    }
  }
  return s;
}

function readNormalizerSpec(r: Reader): NormalizerSpec {
  const s: NormalizerSpec = {
    name: '',
    precompiledCharsmap: new Uint8Array(0),
    addDummyPrefix: true,
    removeExtraWhitespaces: true,
    escapeWhitespaces: true,
  };
  while (r.pos < r.end) {
    const [f, w] = r.tag();
    const at = r.pos;
    if (f === 1) {
      expectWire('name', w, WIRE_LEN, at);
      s.name = r.string();
    } else if (f === 2) {
      expectWire('precompiled_charsmap', w, WIRE_LEN, at);
      s.precompiledCharsmap = r.bytes().slice();
    } else if (f === 3 || f === 4 || f === 5) {
      expectWire('normalizer flag', w, WIRE_VARINT, at);
      const v = r.varint() !== 0;
      if (f === 3) s.addDummyPrefix = v;
      else if (f === 4) s.removeExtraWhitespaces = v;
      else s.escapeWhitespaces = v;
    } else r.skip(w);
  }
  return s;
}

/** Rejects piece tables that SentencePiece's own loader (ModelInterface::InitializePieces) would reject. */
function validate(m: SentencePieceModel): void {
  if (m.pieces.length === 0) throw new TokenizerError('tokenizer.model: no pieces');
  const seen = new Set<string>();
  const bytes = new Set<number>();
  let unk = -1;
  m.pieces.forEach((p, id) => {
    if (p.piece.length === 0) throw new TokenizerError(`tokenizer.model: piece ${id} is empty`);
    if (p.piece.includes('\0')) throw new TokenizerError(`tokenizer.model: piece ${id} contains NUL`);
    if (seen.has(p.piece)) throw new TokenizerError(`tokenizer.model: piece "${p.piece}" is defined twice`, { id });
    seen.add(p.piece);
    if (p.type === PieceType.UNKNOWN) {
      if (unk >= 0) throw new TokenizerError('tokenizer.model: more than one UNKNOWN piece', { id });
      unk = id;
    }
    if (p.type === PieceType.BYTE) {
      const b = byteOfPiece(p.piece);
      if (b < 0) throw new TokenizerError(`tokenizer.model: byte piece "${p.piece}" is invalid`, { id });
      if (!m.trainerSpec.byteFallback) {
        throw new TokenizerError(`tokenizer.model: byte piece "${p.piece}" although byte_fallback is false`, { id });
      }
      bytes.add(b);
    }
  });
  if (unk < 0) throw new TokenizerError('tokenizer.model: no UNKNOWN piece');
  if (m.trainerSpec.byteFallback && bytes.size !== 256) {
    throw new TokenizerError(`tokenizer.model: byte_fallback is on but only ${bytes.size} of 256 byte pieces exist`);
  }
}

/** `<0xAB>` → 0xAB; anything else → −1. */
export function byteOfPiece(piece: string): number {
  const m = /^<0x([0-9A-F]{2})>$/.exec(piece);
  return m ? Number.parseInt(m[1], 16) : -1;
}

/** Decodes `tokenizer.model` bytes. Throws TokenizerError on any corruption. */
export function parseSentencePieceModel(bytes: Uint8Array): SentencePieceModel {
  if (!(bytes instanceof Uint8Array) || bytes.length === 0) {
    throw new TokenizerError('tokenizer.model: empty input');
  }
  const r = new Reader(bytes, 0, bytes.length);
  const pieces: SentencePiece[] = [];
  let trainerSpec: TrainerSpec | null = null;
  let normalizerSpec: NormalizerSpec | null = null;
  while (r.pos < r.end) {
    const [f, w] = r.tag();
    const at = r.pos;
    if (f === 1) {
      expectWire('pieces', w, WIRE_LEN, at);
      pieces.push(readPiece(r.sub()));
    } else if (f === 2) {
      expectWire('trainer_spec', w, WIRE_LEN, at);
      trainerSpec = readTrainerSpec(r.sub());
    } else if (f === 3) {
      expectWire('normalizer_spec', w, WIRE_LEN, at);
      normalizerSpec = readNormalizerSpec(r.sub());
    } else r.skip(w);
  }
  const model: SentencePieceModel = {
    pieces,
    // An absent sub-message means every field takes its default (UNIGRAM model, dummy prefix on, ...).
    trainerSpec: trainerSpec ?? readTrainerSpec(new Reader(bytes, 0, 0)),
    normalizerSpec: normalizerSpec ?? readNormalizerSpec(new Reader(bytes, 0, 0)),
  };
  validate(model);
  return model;
}
