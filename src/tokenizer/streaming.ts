/**
 * TextStreamer: incremental decode of generated ids. Feed one id at a time with `push(id)`; it returns the text
 * that is now final (possibly ''). Call `end()` after the last id to flush what was held back.
 *
 * The rule is the one of `TrolTokenizer.decode` (SentencePiece `DecodeIds` per run of ordinary ids, specials
 * written literally), applied incrementally, so the concatenation of every chunk returned equals
 * `decode(allIds)`. Byte pieces are held back while they form an incomplete UTF-8 sequence that more bytes
 * could still complete; as soon as the sequence completes, or is proven invalid (a bad continuation byte, an
 * impossible lead, an overlong or surrogate prefix, or a non-byte id arrives), it is emitted — invalid bytes as
 * one U+FFFD each, like SentencePiece. A chunk therefore never ends inside a UTF-8 sequence and never splits a
 * surrogate pair.
 */

import { byteOfPiece } from './sentencepiece-model.ts';
import { IdKind, type TrolTokenizer } from './tokenizer.ts';
import { decodeOneUtf8, REPLACEMENT, utf8PrefixCanComplete } from './utf8.ts';

const SPACE = '\u2581';

export class TextStreamer {
  private bytes: number[] = [];
  /** Per run of ordinary ids: whether a leading "▁" may still be dropped, and SentencePiece's two flags. */
  private runHasText = false;
  private bosWsSeen = false;
  private isBosWs: boolean;

  constructor(private readonly tokenizer: TrolTokenizer) {
    this.isBosWs = tokenizer.stripsDummyPrefix;
  }

  /** Feeds one generated id; returns the newly completed text. */
  push(id: number): string {
    const kind = this.tokenizer.kindOf(id);
    if (kind === IdKind.Byte) {
      this.bytes.push(byteOfPiece(this.tokenizer.pieceOf(id)));
      return this.drainBytes(false);
    }
    let out = this.drainBytes(true);
    if (kind === IdKind.Special) {
      out += this.tokenizer.pieceOf(id);
      this.resetRun();
      return out;
    }
    if (this.bosWsSeen || this.runHasText) this.isBosWs = false;
    if (kind === IdKind.Control) {
      this.bosWsSeen = false;
      return out;
    }
    let piece = this.tokenizer.pieceOf(id);
    this.bosWsSeen = this.isBosWs && piece.startsWith(SPACE);
    if (this.bosWsSeen) piece = piece.slice(SPACE.length);
    piece = piece.replaceAll(SPACE, ' ');
    if (piece.length > 0) this.runHasText = true;
    return out + piece;
  }

  /** Flushes held-back bytes (each invalid byte → U+FFFD) at the end of generation; resets the streamer. */
  end(): string {
    const out = this.drainBytes(true);
    this.resetRun();
    return out;
  }

  /** Bytes currently held back (an incomplete UTF-8 sequence). */
  get pendingBytes(): number {
    return this.bytes.length;
  }

  private resetRun(): void {
    this.bytes = [];
    this.runHasText = false;
    this.bosWsSeen = false;
    this.isBosWs = this.tokenizer.stripsDummyPrefix;
  }

  /** Decodes the held bytes from the front while the decision is final; with `all`, decodes everything. */
  private drainBytes(all: boolean): string {
    const b = this.bytes;
    let out = '';
    let i = 0;
    while (i < b.length) {
      if (!all && utf8PrefixCanComplete(b, i, b.length)) break;
      const [cp, n] = decodeOneUtf8(b, i, b.length);
      out += cp < 0 ? REPLACEMENT : String.fromCodePoint(cp);
      i += n;
    }
    this.bytes = b.slice(i);
    if (out.length > 0) this.runHasText = true;
    return out;
  }
}
