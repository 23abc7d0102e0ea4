/**
 * TrolTokenizer against the tiny-trol goldens (ids AND pieces exact, decode text exact), against the
 * independent naive SentencePiece reference (test/reference/sentencepiece.ts) on seeded random text, and on
 * synthetic models that exercise the cases the fixture cannot (score ties → the exact SentencePiece BPE path,
 * dummy prefix off).
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ArgumentError, TokenizerError } from '../../src/errors.ts';
import { parseSentencePieceModel } from '../../src/tokenizer/sentencepiece-model.ts';
import { TrolTokenizer } from '../../src/tokenizer/tokenizer.ts';
import { Rng } from '../helpers/rng.ts';
import { encodeModelProto, ReferenceSentencePiece, syntheticModel } from '../reference/sentencepiece.ts';

const FIXTURE = 'test/fixtures/tiny-trol';
const modelBytes = new Uint8Array(readFileSync(`${FIXTURE}/tokenizer.model`));
const addedTokens = JSON.parse(readFileSync(`${FIXTURE}/added_tokens.json`, 'utf8'));
const tok = TrolTokenizer.fromModelBytes(modelBytes, addedTokens);
const ref = new ReferenceSentencePiece(parseSentencePieceModel(modelBytes), addedTokens);

interface EncodeCase {
  text: string;
  ids: number[];
  pieces: string[];
  decoded: string;
  roundtrip: boolean;
}
interface DecodeCase {
  ids: number[];
  pieces: string[];
  decoded: string;
}
const encodeCases: EncodeCase[] = JSON.parse(readFileSync(`${FIXTURE}/golden/tokenizer_cases.json`, 'utf8'));
const decodeCases: DecodeCase[] = JSON.parse(readFileSync(`${FIXTURE}/golden/tokenizer_decode_cases.json`, 'utf8'));

describe('TrolTokenizer on the fixture', () => {
  it('exposes the fixture ids', () => {
    expect(tok.vocabSize).toBe(640);
    expect(tok.imageTokenId).toBe(640);
    expect(tok.specialIds).toEqual({ bos: 1, eos: 2, unk: 0, imStart: 4, imEnd: 3 });
    expect(tok.idOf('[UNUSED_TOKEN_145]')).toBe(3);
    expect(tok.idOf('<image>')).toBe(640);
    expect(tok.pieceOf(640)).toBe('<image>');
    expect(tok.pieceOf(576)).toBe('▁');
    // The fixture's scores are tie-free, so the BPE runs in transformers.js.
    expect(tok.bpeEngine).toBe('transformers.js');
  });

  it.each(encodeCases.map((c) => [JSON.stringify(c.text).slice(0, 60), c] as const))('encode %s', (_, c) => {
    const ids = tok.encode(c.text);
    expect(ids).toEqual(c.ids);
    expect(ids.map((id) => tok.pieceOf(id))).toEqual(c.pieces);
    expect(tok.decode(ids)).toBe(c.decoded);
    expect(tok.decode(ids) === c.text).toBe(c.roundtrip);
  });

  it.each(decodeCases.map((c) => [c.decoded, c] as const))('decode %j', (_, c) => {
    expect(c.ids.map((id) => tok.pieceOf(id))).toEqual(c.pieces);
    expect(tok.decode(c.ids)).toBe(c.decoded);
  });

  it('decodes the golden generations to index.json text', () => {
    const index = JSON.parse(readFileSync(`${FIXTURE}/golden/index.json`, 'utf8'));
    for (const k of ['img', 'txt'] as const) {
      const ids = Array.from(new Int32Array(new Uint8Array(readFileSync(`${FIXTURE}/golden/${k}_gen_ids.bin`)).buffer));
      expect(tok.decode(ids)).toBe(index[k].generated_text);
    }
  });

  it('splits specials leftmost-longest and does not add BOS', () => {
    expect(tok.encode('<s></s><unk><image>')).toEqual([1, 2, 0, 640]);
    expect(tok.encode('<image><image>')).toEqual([640, 640]);
    expect(tok.encode('')).toEqual([]);
    expect(tok.encode('Hi')[0]).not.toBe(1);
    // Only exact strings are special; <s> inside a longer tag still splits where it occurs.
    expect(tok.encode('x<s>y')).toEqual([...tok.encode('x'), 1, ...tok.encode('y')]);
  });

  it('encodes a continuation without the dummy prefix', () => {
    const text = '[UNUSED_TOKEN_145]\n[UNUSED_TOKEN_146]user\nwhy?';
    const full = tok.encode(text);
    expect(tok.pieceOf(full[0])).toBe('▁');
    expect(tok.encode(text, { continuation: true })).toEqual(full.slice(1));
    // A special first segment is unaffected; later segments keep their prefix.
    expect(tok.encode('<s>a b', { continuation: true })).toEqual(tok.encode('<s>a b'));
  });

  it('throws typed errors for unknown pieces and ids', () => {
    expect(() => tok.idOf('no such piece')).toThrow(ArgumentError);
    expect(() => tok.pieceOf(641)).toThrow(ArgumentError);
    expect(() => tok.decode([5, -1])).toThrow(ArgumentError);
    expect(() => tok.decode([1.5])).toThrow(ArgumentError);
  });

  it('defaults <image> to id vocab_size without added_tokens.json', () => {
    const t = TrolTokenizer.fromModelBytes(modelBytes);
    expect(t.imageTokenId).toBe(640);
    expect(() => TrolTokenizer.fromModelBytes(modelBytes, { '<image>': 5 })).toThrow(TokenizerError);
    expect(() => TrolTokenizer.fromModelBytes(modelBytes, ['<image>'])).toThrow(TokenizerError);
  });

  it('matches the naive SentencePiece reference on seeded random text', () => {
    const rng = new Rng(2024);
    const model = parseSentencePieceModel(modelBytes);
    const words = model.pieces.filter((p) => p.type === 1).map((p) => p.piece.replaceAll('▁', ' '));
    const atoms = [' ', '  ', '   ', '\n', '\t', '\r\n', 'é', 'ß', '日本語', '한', '🙂', '👩‍👧', '\u00a0', '\u2581'];
    atoms.push('[UNUSED_TOKEN_145]', '[UNUSED_TOKEN_146]', '[UNUSED_TOKEN_14', '<image>', '<s>', '</s>', '<unk>');
    atoms.push('<', '>', 'X', 'Q', '.', '0', '\u0000', '\ud800');
    let compared = 0;
    for (let n = 0; n < 3000; n++) {
      let s = '';
      const k = rng.int(0, 14);
      for (let i = 0; i < k; i++)
        s += rng.next() < 0.6 ? words[rng.int(0, words.length)] : atoms[rng.int(0, atoms.length)];
      const ids = tok.encode(s);
      expect(ids, JSON.stringify(s)).toEqual(ref.encode(s));
      compared += ids.length;
    }
    expect(compared).toBeGreaterThan(10_000);
  });
});

describe('TrolTokenizer on synthetic models', () => {
  it('uses the exact SentencePiece BPE when merge results tie in score, and matches the reference', () => {
    // 'ab' and 'ba' share a score: SentencePiece merges the LEFTMOST pair, a strict merge rank cannot.
    const model = syntheticModel([
      ['▁', -50],
      ['a', -51],
      ['b', -52],
      ['ab', -1],
      ['ba', -1],
      ['aba', -2],
      ['▁a', -3],
      ['▁b', -3],
    ]);
    const t = TrolTokenizer.fromModelBytes(encodeModelProto(model));
    expect(t.bpeEngine).toBe('sentencepiece');
    expect(t.inexactReason).toContain('share the score');
    const r = new ReferenceSentencePiece(model, { '<image>': model.pieces.length });
    const piecesOf = (ids: number[]) => ids.map((id) => t.pieceOf(id));
    // "▁bab": ▁b (−3) vs ba (−1) vs ab (−1): the ba/ab tie goes to the leftmost pair, ba.
    expect(piecesOf(t.encode('bab'))).toEqual(['▁', 'ba', 'b']);
    const rng = new Rng(5);
    for (let n = 0; n < 2000; n++) {
      let s = '';
      const k = rng.int(0, 16);
      for (let i = 0; i < k; i++) s += ['a', 'b', ' ', 'c', '[UNUSED_TOKEN_145]', '<s>'][rng.int(0, 6)];
      expect(t.encode(s), JSON.stringify(s)).toEqual(r.encode(s));
    }
  });

  it('transformers.js agrees with the reference on random tie-free models', () => {
    const rng = new Rng(6);
    for (let trial = 0; trial < 60; trial++) {
      const words = new Set<string>();
      while (words.size < 8 + rng.int(0, 24)) {
        let w = '';
        for (let i = rng.int(2, 5); i > 0; i--) w += 'ab▁'[rng.int(0, 3)];
        words.add(w);
      }
      const list: [string, number][] = [...words].map((w, i) => [w, -1 - i]);
      list.push(['▁', -100], ['a', -101], ['b', -102]);
      const model = syntheticModel(list);
      const t = TrolTokenizer.fromModelBytes(encodeModelProto(model));
      expect(t.bpeEngine).toBe('transformers.js');
      const r = new ReferenceSentencePiece(model, { '<image>': model.pieces.length });
      for (let n = 0; n < 60; n++) {
        let s = '';
        for (let i = rng.int(1, 20); i > 0; i--) s += 'ab '[rng.int(0, 3)];
        expect(t.encode(s), JSON.stringify(s)).toEqual(r.encode(s));
      }
    }
  });

  it('honours add_dummy_prefix = false in encode and decode', () => {
    const model = syntheticModel(
      [
        ['▁', -50],
        ['h', -51],
        ['i', -52],
        ['hi', -1],
        ['▁hi', -2],
      ],
      { addDummyPrefix: false },
    );
    const t = TrolTokenizer.fromModelBytes(encodeModelProto(model));
    const piecesOf = (ids: number[]) => ids.map((id) => t.pieceOf(id));
    expect(piecesOf(t.encode('hi hi'))).toEqual(['hi', '▁hi']);
    expect(piecesOf(t.encode('hi<s> hi'))).toEqual(['hi', '<s>', '▁hi']);
    expect(t.decode(t.encode(' hi hi'))).toBe(' hi hi');
  });
});
