/**
 * An independent, deliberately naive SentencePiece BPE encoder/decoder (f64-reference style: slow, obvious),
 * written from sentencepiece's bpe_model.cc / sentencepiece_processor.cc and the fixture README, and used to
 * fuzz the transformers.js-based TrolTokenizer.
 *
 * Encode a segment: normalize (dummy "▁" prefix on a non-empty segment, " " → "▁"), split into code points
 * except USER_DEFINED pieces (longest match at each position, frozen), then repeatedly merge the adjacent
 * non-frozen pair whose concatenation is a NORMAL/USER_DEFINED/UNUSED piece with the highest score (ties: the
 * leftmost pair), and finally map each symbol to its id, unknown symbols to their UTF-8 byte pieces.
 * Special strings (<unk>, <s>, </s>, added tokens) are split out first, leftmost-longest, as in the slow
 * InternLM2 tokenizer. (UNUSED-piece resegmentation is not modelled: the fixture has no UNUSED pieces.)
 */

import { PieceType, type SentencePieceModel } from '../../src/tokenizer/sentencepiece-model.ts';

export class ReferenceSentencePiece {
  private readonly mergeable = new Map<string, number>();
  private readonly anyPiece = new Map<string, number>();
  private readonly userDefined: string[] = [];
  private readonly specials: [string, number][];

  constructor(
    private readonly model: SentencePieceModel,
    added: Record<string, number>,
  ) {
    model.pieces.forEach((p, id) => {
      this.anyPiece.set(p.piece, id);
      if (p.type === PieceType.NORMAL || p.type === PieceType.USER_DEFINED || p.type === PieceType.UNUSED) {
        this.mergeable.set(p.piece, id);
      }
      if (p.type === PieceType.USER_DEFINED) this.userDefined.push(p.piece);
    });
    const t = model.trainerSpec;
    const unk = model.pieces.findIndex((p) => p.type === PieceType.UNKNOWN);
    this.specials = [
      [model.pieces[unk].piece, unk],
      [t.bosPiece, t.bosId],
      [t.eosPiece, t.eosId],
      ...Object.entries(added),
    ];
  }

  encode(text: string): number[] {
    const out: number[] = [];
    let seg = '';
    let i = 0;
    while (i < text.length) {
      let best: [string, number] | null = null;
      for (const s of this.specials) {
        if (text.startsWith(s[0], i) && (best === null || s[0].length > best[0].length)) best = s;
      }
      if (best) {
        out.push(...this.encodeSegment(seg), best[1]);
        seg = '';
        i += best[0].length;
      } else {
        seg += text[i];
        i++;
      }
    }
    out.push(...this.encodeSegment(seg));
    return out;
  }

  encodeSegment(seg: string): number[] {
    if (seg.length === 0) return [];
    const n = this.model.normalizerSpec;
    let norm = n.escapeWhitespaces ? seg.replaceAll(' ', '\u2581') : seg;
    if (n.addDummyPrefix) norm = (n.escapeWhitespaces ? '\u2581' : ' ') + norm;
    const sym: { s: string; frozen: boolean }[] = [];
    let i = 0;
    while (i < norm.length) {
      let ud = '';
      for (const u of this.userDefined) if (norm.startsWith(u, i) && u.length > ud.length) ud = u;
      if (ud) {
        sym.push({ s: ud, frozen: true });
        i += ud.length;
      } else {
        const ch = String.fromCodePoint(norm.codePointAt(i)!);
        sym.push({ s: ch, frozen: false });
        i += ch.length;
      }
    }
    for (;;) {
      let bestAt = -1;
      let bestScore = Number.NEGATIVE_INFINITY;
      for (let k = 0; k + 1 < sym.length; k++) {
        if (sym[k].frozen || sym[k + 1].frozen) continue;
        const id = this.mergeable.get(sym[k].s + sym[k + 1].s);
        if (id === undefined) continue;
        const score = this.model.pieces[id].score;
        if (score > bestScore) {
          bestScore = score;
          bestAt = k;
        }
      }
      if (bestAt < 0) break;
      sym.splice(bestAt, 2, { s: sym[bestAt].s + sym[bestAt + 1].s, frozen: false });
    }
    const out: number[] = [];
    for (const { s } of sym) {
      const id = this.anyPiece.get(s);
      if (id !== undefined) out.push(id);
      else for (const b of new TextEncoder().encode(s)) out.push(this.anyPiece.get(byteName(b))!);
    }
    return out;
  }
}

export function byteName(b: number): string {
  return `<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`;
}

/**
 * A minimal protobuf writer for ModelProto, to build synthetic `tokenizer.model` bytes in tests. `extra` adds
 * unknown fields (varint, fixed64, length-delimited, fixed32) to every message, which a reader must skip;
 * `specs: false` writes the pieces only (no trainer_spec / normalizer_spec).
 */
export function encodeModelProto(m: SentencePieceModel, opts: { extra?: boolean; specs?: boolean } = {}): Uint8Array {
  const extra = opts.extra ?? false;
  const out: number[] = [];
  const w = new ProtoWriter(out);
  for (const p of m.pieces) {
    w.message(1, (s) => {
      s.string(1, p.piece);
      s.float(2, p.score);
      s.varint(3, p.type);
      if (extra) s.unknowns();
    });
  }
  if (opts.specs === false) return Uint8Array.from(out);
  const t = m.trainerSpec;
  w.message(2, (s) => {
    s.varint(3, t.modelType);
    s.varint(4, t.vocabSize);
    s.varint(24, t.treatWhitespaceAsSuffix ? 1 : 0);
    s.varint(35, t.byteFallback ? 1 : 0);
    s.varint(40, t.unkId);
    s.varint(41, t.bosId);
    s.varint(42, t.eosId);
    s.varint(43, t.padId);
    s.string(45, t.unkPiece);
    s.string(46, t.bosPiece);
    s.string(47, t.eosPiece);
    s.string(48, t.padPiece);
    if (extra) s.unknowns();
  });
  const n = m.normalizerSpec;
  w.message(3, (s) => {
    s.string(1, n.name);
    if (n.precompiledCharsmap.length > 0) s.bytes(2, n.precompiledCharsmap);
    s.varint(3, n.addDummyPrefix ? 1 : 0);
    s.varint(4, n.removeExtraWhitespaces ? 1 : 0);
    s.varint(5, n.escapeWhitespaces ? 1 : 0);
    if (extra) s.unknowns();
  });
  if (extra) w.unknowns();
  return Uint8Array.from(out);
}

class ProtoWriter {
  constructor(private readonly out: number[]) {}
  private raw(v: number): void {
    // int32 negatives are sign-extended to 64 bits: 10 bytes.
    let x = BigInt.asUintN(64, BigInt(v));
    do {
      let b = Number(x & 0x7fn);
      x >>= 7n;
      if (x > 0n) b |= 0x80;
      this.out.push(b);
    } while (x > 0n);
  }
  private tag(field: number, wire: number): void {
    this.raw(field * 8 + wire);
  }
  varint(field: number, v: number): void {
    this.tag(field, 0);
    this.raw(v);
  }
  float(field: number, v: number): void {
    this.tag(field, 5);
    const b = new Uint8Array(4);
    new DataView(b.buffer).setFloat32(0, v, true);
    this.out.push(...b);
  }
  bytes(field: number, b: Uint8Array): void {
    this.tag(field, 2);
    this.raw(b.length);
    this.out.push(...b);
  }
  string(field: number, s: string): void {
    this.bytes(field, new TextEncoder().encode(s));
  }
  message(field: number, body: (w: ProtoWriter) => void): void {
    const inner: number[] = [];
    body(new ProtoWriter(inner));
    this.bytes(field, Uint8Array.from(inner));
  }
  unknowns(): void {
    this.varint(1001, 123456789);
    this.tag(1002, 1);
    this.out.push(1, 2, 3, 4, 5, 6, 7, 8);
    this.string(1003, 'ignored');
    this.tag(1004, 5);
    this.out.push(9, 9, 9, 9);
  }
}

/** A small synthetic BPE model: bytes, specials, the two chat markers, and `words` with the given scores. */
export function syntheticModel(words: [string, number][], opts: Partial<SentencePieceModel['normalizerSpec']> = {}) {
  const pieces: SentencePieceModel['pieces'] = [
    { piece: '<unk>', score: 0, type: PieceType.UNKNOWN },
    { piece: '<s>', score: 0, type: PieceType.CONTROL },
    { piece: '</s>', score: 0, type: PieceType.CONTROL },
    { piece: '[UNUSED_TOKEN_145]', score: 0, type: PieceType.USER_DEFINED },
    { piece: '[UNUSED_TOKEN_146]', score: 0, type: PieceType.USER_DEFINED },
  ];
  for (let b = 0; b < 256; b++) pieces.push({ piece: byteName(b), score: 0, type: PieceType.BYTE });
  for (const [piece, score] of words) pieces.push({ piece, score, type: PieceType.NORMAL });
  const model: SentencePieceModel = {
    pieces,
    trainerSpec: {
      modelType: 2,
      vocabSize: pieces.length,
      byteFallback: true,
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
    },
    normalizerSpec: {
      name: 'identity',
      precompiledCharsmap: new Uint8Array(0),
      addDummyPrefix: true,
      removeExtraWhitespaces: false,
      escapeWhitespaces: true,
      ...opts,
    },
  };
  return model;
}
