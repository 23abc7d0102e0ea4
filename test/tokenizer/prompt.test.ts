/**
 * The official prompt template: the two golden prompt strings of index.json and their token ids
 * (img_prompt_ids.bin, txt_prompt_ids.bin) exactly; the multi-turn / follow-up rule; argument errors.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ArgumentError } from '../../src/errors.ts';
import { buildFollowUp, buildPrompt, SYSTEM_PROMPT } from '../../src/tokenizer/prompt.ts';
import { TrolTokenizer } from '../../src/tokenizer/tokenizer.ts';

const FIXTURE = 'test/fixtures/tiny-trol';
const index = JSON.parse(readFileSync(`${FIXTURE}/golden/index.json`, 'utf8'));
const tok = TrolTokenizer.fromModelBytes(
  new Uint8Array(readFileSync(`${FIXTURE}/tokenizer.model`)),
  JSON.parse(readFileSync(`${FIXTURE}/added_tokens.json`, 'utf8')),
);
const P = index.n_image_tokens as number;

function readIds(name: string): number[] {
  return Array.from(new Int32Array(new Uint8Array(readFileSync(`${FIXTURE}/golden/${name}`)).buffer));
}

describe('buildPrompt', () => {
  it('has the official system text (no final period)', () => {
    expect(SYSTEM_PROMPT.endsWith("to the user's questions")).toBe(true);
    expect(index.txt.prompt).toContain(SYSTEM_PROMPT);
  });

  it('reproduces the golden image prompt and its ids', () => {
    const prompt = buildPrompt({ question: index.img.question, hasImage: true, imageTokens: P });
    // index.json abbreviates the P copies as "<image>×P".
    expect(prompt.replace('<image>'.repeat(P), `<image>×${P}`)).toBe(index.img.prompt);
    const ids = tok.encode(prompt);
    expect(ids).toEqual(readIds('img_prompt_ids.bin'));
    expect(ids.length).toBe(index.img.prompt_len);
    expect(ids.filter((id) => id === tok.imageTokenId).length).toBe(P);
  });

  it('reproduces the golden text-only prompt and its ids', () => {
    const prompt = buildPrompt({ question: index.txt.question, hasImage: false, imageTokens: P });
    expect(prompt).toBe(index.txt.prompt);
    expect(tok.encode(prompt)).toEqual(readIds('txt_prompt_ids.bin'));
  });

  it('keeps an explicit <image> where the question puts it', () => {
    const prompt = buildPrompt({ question: 'Look: <image> what?', hasImage: true, imageTokens: 3 });
    expect(prompt).toContain('user\nLook: <image><image><image> what?[UNUSED_TOKEN_145]');
  });

  it('puts earlier turns first and the image in the first user turn', () => {
    const prompt = buildPrompt({
      question: 'And the sky?',
      hasImage: true,
      imageTokens: 2,
      history: [{ question: 'Describe it.', answer: 'A sea.' }],
    });
    expect(prompt).toBe(
      `<s>[UNUSED_TOKEN_146]system\n${SYSTEM_PROMPT}[UNUSED_TOKEN_145]\n` +
        '[UNUSED_TOKEN_146]user\n<image><image>\nDescribe it.[UNUSED_TOKEN_145]\n' +
        '[UNUSED_TOKEN_146]assistant\nA sea.[UNUSED_TOKEN_145]\n' +
        '[UNUSED_TOKEN_146]user\nAnd the sky?[UNUSED_TOKEN_145]\n[UNUSED_TOKEN_146]assistant\n',
    );
  });

  it('rejects bad arguments with ArgumentError', () => {
    expect(() => buildPrompt({ question: 'q', hasImage: true, imageTokens: 0 })).toThrow(ArgumentError);
    expect(() => buildPrompt({ question: 'q', hasImage: true, imageTokens: 2.5 })).toThrow(ArgumentError);
    expect(() => buildPrompt({ question: '<image> q', hasImage: false, imageTokens: 4 })).toThrow(ArgumentError);
    expect(() => buildPrompt({ question: '<image><image>', hasImage: true, imageTokens: 4 })).toThrow(ArgumentError);
  });
});

describe('buildFollowUp', () => {
  it('closes the open answer and opens the next turns', () => {
    expect(buildFollowUp('Why?')).toBe(
      '[UNUSED_TOKEN_145]\n[UNUSED_TOKEN_146]user\nWhy?[UNUSED_TOKEN_145]\n[UNUSED_TOKEN_146]assistant\n',
    );
    expect(() => buildFollowUp('<image> again')).toThrow(ArgumentError);
  });

  it('first prompt + answer + follow-up equals the multi-turn prompt, as text and as cache tokens', () => {
    for (const hasImage of [true, false]) {
      const first = buildPrompt({ question: index.img.question, hasImage, imageTokens: P });
      const answer = 'Two red squares and a blue circle.';
      const followUp = buildFollowUp('Which is largest?');
      const whole = buildPrompt({
        question: 'Which is largest?',
        hasImage,
        imageTokens: P,
        history: [{ question: index.img.question, answer }],
      });
      expect(first + answer + followUp).toBe(whole);
      // The cache holds the prompt and the answer's tokens; the follow-up continues them.
      const cache = [...tok.encode(first + answer), ...tok.encode(followUp, { continuation: true })];
      expect(cache).toEqual(tok.encode(whole));
    }
  });
});
