/**
 * The tokenizer.model protobuf reader: the fixture's fields, proto2 defaults and unknown-field skipping on
 * synthetic files, and corruption (truncation at every kind of boundary, random bytes, byte flips) always
 * surfacing as TokenizerError — never as another exception and never as a silently different model.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { TokenizerError } from '../../src/errors.ts';
import { PieceType, parseSentencePieceModel } from '../../src/tokenizer/sentencepiece-model.ts';
import { TrolTokenizer } from '../../src/tokenizer/tokenizer.ts';
import { Rng } from '../helpers/rng.ts';
import { encodeModelProto, syntheticModel } from '../reference/sentencepiece.ts';

const FIXTURE = 'test/fixtures/tiny-trol';
const modelBytes = new Uint8Array(readFileSync(`${FIXTURE}/tokenizer.model`));

function expectTokenizerError(fn: () => unknown): void {
  let err: unknown = null;
  try {
    fn();
  } catch (e) {
    err = e;
  }
  expect(err, 'expected a TokenizerError').toBeInstanceOf(TokenizerError);
}

describe('parseSentencePieceModel', () => {
  it('reads the fixture: BPE, byte_fallback, identity normalizer with the dummy prefix on', () => {
    const m = parseSentencePieceModel(modelBytes);
    expect(m.pieces.length).toBe(640);
    expect(m.pieces.slice(0, 5).map((p) => [p.piece, p.type])).toEqual([
      ['<unk>', PieceType.UNKNOWN],
      ['<s>', PieceType.CONTROL],
      ['</s>', PieceType.CONTROL],
      ['[UNUSED_TOKEN_145]', PieceType.USER_DEFINED],
      ['[UNUSED_TOKEN_146]', PieceType.USER_DEFINED],
    ]);
    expect(m.pieces.filter((p) => p.type === PieceType.BYTE).length).toBe(256);
    expect(m.pieces[5]).toEqual({ piece: '<0x00>', score: 0, type: PieceType.BYTE });
    expect(m.pieces[262]).toEqual({ piece: 'he', score: -1, type: PieceType.NORMAL });
    expect(m.trainerSpec).toMatchObject({
      modelType: 2,
      vocabSize: 640,
      byteFallback: true,
      unkId: 0,
      bosId: 1,
      eosId: 2,
      padId: -1,
    });
    // Fixture README §1: {'name': 'identity', 'precompiled_charsmap_bytes': 0, 'add_dummy_prefix': True,
    // 'remove_extra_whitespaces': False, 'escape_whitespaces': True}
    expect(m.normalizerSpec).toEqual({
      name: 'identity',
      precompiledCharsmap: new Uint8Array(0),
      addDummyPrefix: true,
      removeExtraWhitespaces: false,
      escapeWhitespaces: true,
    });
  });

  it('round-trips a synthetic model, skipping unknown fields of every wire type', () => {
    const model = syntheticModel([
      ['a', -10],
      ['b', -11],
      ['ab', -1],
      ['▁', -12],
    ]);
    for (const extra of [false, true]) {
      const back = parseSentencePieceModel(encodeModelProto(model, { extra }));
      expect(back.pieces).toEqual(model.pieces);
      expect(back.trainerSpec).toEqual(model.trainerSpec);
      expect(back.normalizerSpec).toEqual(model.normalizerSpec);
    }
  });

  it('applies proto2 defaults for absent fields (dummy prefix and whitespace flags on, UNIGRAM)', () => {
    // Only the pieces (no BYTE pieces, as byte_fallback then defaults to false): no trainer/normalizer spec.
    const model = syntheticModel([['a', -1]]);
    const pieces = model.pieces.filter((p) => p.type !== PieceType.BYTE);
    const m = parseSentencePieceModel(encodeModelProto({ ...model, pieces }, { specs: false }));
    expect(m.pieces).toEqual(pieces);
    expect(m.trainerSpec.modelType).toBe(1);
    expect(m.trainerSpec.byteFallback).toBe(false);
    expect(m.normalizerSpec.addDummyPrefix).toBe(true);
    expect(m.normalizerSpec.removeExtraWhitespaces).toBe(true);
    expect(m.normalizerSpec.escapeWhitespaces).toBe(true);
  });

  it('rejects empty input and piece tables SentencePiece itself rejects', () => {
    expectTokenizerError(() => parseSentencePieceModel(new Uint8Array(0)));
    const dup = syntheticModel([
      ['ab', -1],
      ['ab', -2],
    ]);
    expectTokenizerError(() => parseSentencePieceModel(encodeModelProto(dup)));
    const noUnk = syntheticModel([['a', -1]]);
    noUnk.pieces[0].type = PieceType.CONTROL;
    expectTokenizerError(() => parseSentencePieceModel(encodeModelProto(noUnk)));
    const missingByte = syntheticModel([['a', -1]]);
    missingByte.pieces.splice(5 + 0x41, 1);
    expectTokenizerError(() => parseSentencePieceModel(encodeModelProto(missingByte)));
  });

  it('rejects options it does not implement rather than encoding differently', () => {
    const unigram = syntheticModel([['a', -1]]);
    unigram.trainerSpec.modelType = 1;
    expectTokenizerError(() => TrolTokenizer.fromModelBytes(encodeModelProto(unigram)));
    const collapse = syntheticModel([['a', -1]], { removeExtraWhitespaces: true });
    expectTokenizerError(() => TrolTokenizer.fromModelBytes(encodeModelProto(collapse)));
    const charsmap = syntheticModel([['a', -1]], { name: 'nmt_nfkc', precompiledCharsmap: new Uint8Array([1, 2]) });
    expectTokenizerError(() => TrolTokenizer.fromModelBytes(encodeModelProto(charsmap)));
  });
});

describe('corrupt tokenizer.model → TokenizerError', () => {
  it('truncated anywhere', () => {
    // Every length near both ends, and a stride through the middle (pieces, trainer and normalizer specs).
    const lengths = new Set<number>();
    for (let n = 0; n < 400; n++) lengths.add(n).add(modelBytes.length - 1 - n);
    for (let n = 400; n < modelBytes.length; n += 7) lengths.add(n);
    for (const n of lengths) expectTokenizerError(() => TrolTokenizer.fromModelBytes(modelBytes.slice(0, n)));
  });

  it('random bytes', () => {
    const rng = new Rng(11);
    for (let n = 0; n < 500; n++) {
      const b = new Uint8Array(rng.int(1, 400));
      for (let i = 0; i < b.length; i++) b[i] = rng.int(0, 256);
      expectTokenizerError(() => TrolTokenizer.fromModelBytes(b));
    }
  });

  it('byte flips either still parse or throw TokenizerError, never another error', () => {
    const rng = new Rng(12);
    for (let n = 0; n < 200; n++) {
      const b = modelBytes.slice();
      for (let k = 0; k < 3; k++) b[rng.int(0, b.length)] = rng.int(0, 256);
      try {
        TrolTokenizer.fromModelBytes(b);
      } catch (e) {
        expect(e).toBeInstanceOf(TokenizerError);
      }
    }
  });
});
