/**
 * SentencePiece's own BPE encode (bpe_model.cc `Model::SampleEncode` with no dropout), for the models where
 * transformers.js' BPE cannot be exact (see `DerivedMerges.inexact` in convert.ts: equal scores among merge
 * results, or UNUSED merge results). TrolTokenizer uses transformers.js whenever it is exact.
 *
 * Input is an already normalized segment (dummy prefix added, spaces escaped). Symbols start as code points,
 * except USER_DEFINED pieces (longest match at each position), which are frozen. The adjacent pair whose
 * concatenation is a NORMAL / USER_DEFINED / UNUSED piece with the highest score merges first; a tie goes to
 * the leftmost pair. UNUSED results are split back into the pieces they were merged from. Symbols that are
 * not pieces become their UTF-8 byte pieces (byte_fallback) or one fused `<unk>` per run.
 */

import { byteOfPiece, PieceType, type SentencePieceModel } from './sentencepiece-model.ts';

interface Candidate {
  left: number;
  right: number;
  score: number;
  /** Code units of the merged piece: a stale candidate no longer spans exactly this much. */
  size: number;
}

/** Max-heap on (score, then smaller left index). */
class Agenda {
  private readonly a: Candidate[] = [];
  get size(): number {
    return this.a.length;
  }
  private above(x: Candidate, y: Candidate): boolean {
    return x.score > y.score || (x.score === y.score && x.left < y.left);
  }
  push(c: Candidate): void {
    const a = this.a;
    a.push(c);
    let i = a.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!this.above(a[i], a[p])) break;
      [a[i], a[p]] = [a[p], a[i]];
      i = p;
    }
  }
  pop(): Candidate {
    const a = this.a;
    const top = a[0];
    const last = a.pop()!;
    if (a.length > 0) {
      a[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < a.length && this.above(a[l], a[m])) m = l;
        if (r < a.length && this.above(a[r], a[m])) m = r;
        if (m === i) break;
        [a[i], a[m]] = [a[m], a[i]];
        i = m;
      }
    }
    return top;
  }
}

export class SentencePieceBpe {
  /** NORMAL / USER_DEFINED / UNUSED pieces: the merge targets (SentencePiece's `pieces_`). */
  private readonly mergeable = new Map<string, number>();
  /** CONTROL / UNKNOWN / BYTE pieces (SentencePiece's `reserved_id_map_`), looked up first for final symbols. */
  private readonly reserved = new Map<string, number>();
  private readonly scores: Float32Array;
  private readonly unused: Uint8Array;
  /** USER_DEFINED pieces by first code unit, longest first. */
  private readonly userDefined = new Map<string, string[]>();
  private readonly byteIds = new Int32Array(256).fill(-1);
  private unkId: number;
  private readonly byteFallback: boolean;

  constructor(model: SentencePieceModel) {
    this.scores = new Float32Array(model.pieces.length);
    this.unused = new Uint8Array(model.pieces.length);
    this.unkId = 0;
    model.pieces.forEach((p, id) => {
      this.scores[id] = p.score;
      if (p.type === PieceType.NORMAL || p.type === PieceType.USER_DEFINED || p.type === PieceType.UNUSED) {
        this.mergeable.set(p.piece, id);
      } else this.reserved.set(p.piece, id);
      if (p.type === PieceType.UNUSED) this.unused[id] = 1;
      if (p.type === PieceType.USER_DEFINED) {
        const list = this.userDefined.get(p.piece[0]) ?? [];
        list.push(p.piece);
        this.userDefined.set(p.piece[0], list);
      }
      if (p.type === PieceType.UNKNOWN) this.unkId = id;
      if (p.type === PieceType.BYTE) this.byteIds[byteOfPiece(p.piece)] = id;
    });
    for (const list of this.userDefined.values()) list.sort((a, b) => b.length - a.length);
    this.byteFallback = model.trainerSpec.byteFallback;
  }

  /** Encodes one normalized segment to ids. */
  encode(normalized: string): number[] {
    const piece: string[] = [];
    const frozen: boolean[] = [];
    let i = 0;
    while (i < normalized.length) {
      const ud = this.userDefined.get(normalized[i])?.find((u) => normalized.startsWith(u, i));
      const s = ud ?? String.fromCodePoint(normalized.codePointAt(i)!);
      piece.push(s);
      frozen.push(ud !== undefined);
      i += s.length;
    }
    const n = piece.length;
    const prev = Int32Array.from({ length: n }, (_, k) => k - 1);
    const next = Int32Array.from({ length: n }, (_, k) => (k + 1 < n ? k + 1 : -1));
    const agenda = new Agenda();
    const revMerge = new Map<string, [string, string]>();
    const maybeAdd = (left: number, right: number) => {
      if (left < 0 || right < 0 || frozen[left] || frozen[right]) return;
      const merged = piece[left] + piece[right];
      const id = this.mergeable.get(merged);
      if (id === undefined) return;
      agenda.push({ left, right, score: this.scores[id], size: merged.length });
      if (this.unused[id]) revMerge.set(merged, [piece[left], piece[right]]);
    };
    for (let k = 1; k < n; k++) maybeAdd(k - 1, k);
    while (agenda.size > 0) {
      const top = agenda.pop();
      const l = piece[top.left];
      const r = piece[top.right];
      if (l === '' || r === '' || l.length + r.length !== top.size) continue; // stale
      piece[top.left] = l + r;
      piece[top.right] = '';
      next[top.left] = next[top.right];
      if (next[top.right] >= 0) prev[next[top.right]] = top.left;
      maybeAdd(prev[top.left], top.left);
      maybeAdd(top.left, next[top.left]);
    }
    const out: number[] = [];
    let prevUnk = false;
    const emit = (s: string) => {
      if (this.unused[this.mergeable.get(s) ?? this.unkId]) {
        const parts = revMerge.get(s);
        if (parts) {
          emit(parts[0]);
          emit(parts[1]);
          return;
        }
      }
      const id = this.reserved.get(s) ?? this.mergeable.get(s);
      if (id !== undefined) {
        out.push(id);
        prevUnk = false;
      } else if (this.byteFallback) {
        for (const b of new TextEncoder().encode(s)) out.push(this.byteIds[b]);
        prevUnk = false;
      } else {
        if (!prevUnk) out.push(this.unkId); // runs of unknown symbols fuse into one <unk>
        prevUnk = true;
      }
    };
    for (let k = n > 0 ? 0 : -1; k >= 0; k = next[k]) emit(piece[k]);
    return out;
  }
}
