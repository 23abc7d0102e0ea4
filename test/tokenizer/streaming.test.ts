/**
 * TextStreamer: concatenated chunks equal decode(all ids) for every prefix-feeding of seeded random id streams
 * (byte-heavy: emoji and CJK split over byte pieces, invalid and truncated sequences, specials, the dummy-prefix
 * "▁" at run starts), no chunk ever emits a U+FFFD for bytes that later complete, and held-back bytes are
 * exactly an incomplete UTF-8 prefix.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { TextStreamer } from '../../src/tokenizer/streaming.ts';
import { TrolTokenizer } from '../../src/tokenizer/tokenizer.ts';
import { Rng } from '../helpers/rng.ts';
import { byteName } from '../reference/sentencepiece.ts';

const FIXTURE = 'test/fixtures/tiny-trol';
const tok = TrolTokenizer.fromModelBytes(
  new Uint8Array(readFileSync(`${FIXTURE}/tokenizer.model`)),
  JSON.parse(readFileSync(`${FIXTURE}/added_tokens.json`, 'utf8')),
);
const byteId = (b: number) => tok.idOf(byteName(b));

function stream(ids: number[]): string[] {
  const s = new TextStreamer(tok);
  const chunks = ids.map((id) => s.push(id));
  chunks.push(s.end());
  return chunks;
}

/** True when the string holds an unpaired surrogate (a split astral character). */
function hasLoneSurrogate(s: string): boolean {
  return /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/.test(s);
}

describe('TextStreamer', () => {
  it('holds back a split emoji until its last byte', () => {
    const s = new TextStreamer(tok);
    const bytes = [...new TextEncoder().encode('🙂')];
    expect(bytes.slice(0, 3).map((b) => s.push(byteId(b)))).toEqual(['', '', '']);
    expect(s.pendingBytes).toBe(3);
    expect(s.push(byteId(bytes[3]))).toBe('🙂');
    expect(s.pendingBytes).toBe(0);
    expect(s.end()).toBe('');
  });

  it('emits U+FFFD as soon as a sequence is proven invalid, one per byte', () => {
    const s = new TextStreamer(tok);
    expect(s.push(byteId(0xe2))).toBe(''); // could still be a 3-byte character
    expect(s.push(byteId(0x41))).toBe('\ufffdA'); // 0x41 is no continuation byte
    expect(s.push(byteId(0xc0))).toBe('\ufffd'); // C0 is always overlong
    expect(s.push(byteId(0xed))).toBe('');
    expect(s.push(byteId(0xa0))).toBe('\ufffd\ufffd'); // ED A0.. is a surrogate: invalid
    expect(s.push(byteId(0xf0))).toBe('');
    expect(s.push(tok.idOf('▁x'))).toBe('\ufffd x'); // a text piece ends the byte run
    expect(s.end()).toBe('');
  });

  it('reproduces the golden decode cases chunk by chunk', () => {
    const cases = JSON.parse(readFileSync(`${FIXTURE}/golden/tokenizer_decode_cases.json`, 'utf8'));
    for (const c of cases) expect(stream(c.ids).join('')).toBe(c.decoded);
  });

  it('streams multi-byte text (CJK, emoji via byte pieces) back to the original', () => {
    const texts = ['日本語のテキスト 中文 한국어', 'emoji 🙂🚀 family 👩‍👩‍👧 flag 🇯🇵', 'café naïve émigré über straße'];
    for (const text of texts) {
      const ids = tok.encode(text);
      const chunks = stream(ids);
      expect(chunks.join('')).toBe(text);
      for (const c of chunks) {
        expect(hasLoneSurrogate(c)).toBe(false);
        expect(c).not.toContain('\ufffd');
      }
    }
  });

  it('concatenation equals decode(all ids) on seeded random id streams', () => {
    const rng = new Rng(99);
    const utf8 = new TextEncoder();
    const samples = ['🙂', '日', '한', 'é', '€', '\u{10ffff}', '\u{1f1ef}'];
    const textIds = [261, 262, 318, 576, 3, 4, 464, 582]; // ▁t he ▁▁ ▁ [UNUSED_TOKEN_145/146] ▁H i
    const specials = [0, 1, 2, 640];
    for (let n = 0; n < 1500; n++) {
      const ids: number[] = [];
      for (let k = rng.int(1, 30); k > 0; k--) {
        const r = rng.next();
        if (r < 0.35) {
          // A whole or truncated multi-byte character.
          const bytes = [...utf8.encode(samples[rng.int(0, samples.length)])];
          const keep = rng.next() < 0.7 ? bytes.length : rng.int(1, bytes.length + 1);
          for (const b of bytes.slice(0, keep)) ids.push(byteId(b));
        } else if (r < 0.5) ids.push(byteId(rng.int(0, 256)));
        else if (r < 0.85) ids.push(textIds[rng.int(0, textIds.length)]);
        else ids.push(specials[rng.int(0, specials.length)]);
      }
      const whole = tok.decode(ids);
      const chunks = stream(ids);
      expect(chunks.join(''), JSON.stringify(ids)).toBe(whole);
      // Every prefix's emitted text is a prefix of the final text (nothing is ever revised).
      let acc = '';
      for (const c of chunks) {
        acc += c;
        expect(whole.startsWith(acc)).toBe(true);
        expect(hasLoneSurrogate(c)).toBe(false);
      }
    }
  });

  it('end() resets it for the next generation', () => {
    const s = new TextStreamer(tok);
    s.push(byteId(0xf0));
    expect(s.end()).toBe('\ufffd');
    // A fresh run again drops the dummy-prefix space.
    expect(s.push(tok.idOf('▁H'))).toBe('H');
  });
});
