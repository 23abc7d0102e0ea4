/**
 * The official TroL-1.8B/7B chat template (trol/utils/utils.py + modeling_trol.py `prompt_rule`; fixture README
 * §2), `\n` being a newline and [UNUSED_TOKEN_146] / [UNUSED_TOKEN_145] InternLM2's im_start / im_end:
 *
 *   <s>[UNUSED_TOKEN_146]system\n{SYSTEM}[UNUSED_TOKEN_145]\n
 *   [UNUSED_TOKEN_146]user\n{question}[UNUSED_TOKEN_145]\n[UNUSED_TOKEN_146]assistant\n
 *
 * With an image, a question without `<image>` gets "<image>\n" prepended, and the `<image>` is expanded to
 * `imageTokens` consecutive copies (1225 for the real model: one per 14×14 patch of the 490×490 input).
 *
 * Multi-turn (not in the released code, which is single-turn): each earlier turn is
 * `[UNUSED_TOKEN_146]user\n{q}[UNUSED_TOKEN_145]\n[UNUSED_TOKEN_146]assistant\n{a}[UNUSED_TOKEN_145]\n`, inserted
 * before the current question, and the image belongs to the first user turn. A follow-up on a live KV cache
 * appends `buildFollowUp(q)`; the rule is: the cache holds exactly the tokens fed so far, and the engine never
 * feeds the stop id it sampled (`[UNUSED_TOKEN_145]` or `</s>`), so the previous answer is still open and the
 * follow-up text starts by closing it with "[UNUSED_TOKEN_145]\n". Then
 * `buildPrompt(first) + answer + buildFollowUp(q2) === buildPrompt({ ...q2, history: [{ first, answer }] })`.
 * Encode the follow-up with `tokenizer.encode(text, { continuation: true })` so it gets no dummy-prefix "▁".
 */

import { ArgumentError } from '../errors.ts';
import { IM_END, IM_START, IMAGE_TOKEN } from './tokenizer.ts';

/** The official system text (note: no final period). */
export const SYSTEM_PROMPT =
  'You are AI model created by Byung-Kwan Lee, Ph.D. candidate, KAIST EE, of which AI model name is TroL ' +
  "(Traversal of Layers). You must give helpful, detailed, and polite answers to the user's questions";

export interface ChatTurn {
  question: string;
  answer: string;
}

export interface PromptOptions {
  question: string;
  hasImage: boolean;
  /** Copies of `<image>` per image (1225 for TroL-1.8B/7B: (490/14)²). */
  imageTokens: number;
  /** Earlier turns, oldest first. */
  history?: ChatTurn[];
}

function countImage(s: string): number {
  return s.split(IMAGE_TOKEN).length - 1;
}

function userTurn(question: string): string {
  return `${IM_START}user\n${question}${IM_END}\n`;
}

export function buildPrompt(opts: PromptOptions): string {
  const history = opts.history ?? [];
  const questions = [...history.map((t) => t.question), opts.question];
  const images = questions.reduce((n, q) => n + countImage(q), 0);
  if (opts.hasImage) {
    if (!Number.isInteger(opts.imageTokens) || opts.imageTokens < 1) {
      throw new ArgumentError(`buildPrompt: imageTokens must be a positive integer, got ${opts.imageTokens}`);
    }
    if (images > 1) throw new ArgumentError(`buildPrompt: ${images} "${IMAGE_TOKEN}" markers for one image`);
    // The official code prepends "<image>\n" to the question that lacks it; with history, the first one.
    if (images === 0) questions[0] = `${IMAGE_TOKEN}\n${questions[0]}`;
  } else if (images > 0) {
    throw new ArgumentError(`buildPrompt: a question contains "${IMAGE_TOKEN}" but no image is given`);
  }
  const expand = (q: string) => (opts.hasImage ? q.replaceAll(IMAGE_TOKEN, IMAGE_TOKEN.repeat(opts.imageTokens)) : q);

  let prompt = `<s>${IM_START}system\n${SYSTEM_PROMPT}${IM_END}\n`;
  history.forEach((turn, i) => {
    prompt += `${userTurn(expand(questions[i]))}${IM_START}assistant\n${turn.answer}${IM_END}\n`;
  });
  prompt += `${userTurn(expand(questions[questions.length - 1]))}${IM_START}assistant\n`;
  return prompt;
}

/**
 * The text appended to a live cache for a follow-up question: it closes the previous answer (whose end marker
 * was sampled but not fed), then opens the new user and assistant turns. Encode it with
 * `{ continuation: true }`. A follow-up cannot bring an image (the model takes one image, in the first turn).
 */
export function buildFollowUp(question: string): string {
  if (countImage(question) > 0) {
    throw new ArgumentError(`buildFollowUp: a follow-up question cannot contain "${IMAGE_TOKEN}"`);
  }
  return `${IM_END}\n${userTurn(question)}${IM_START}assistant\n`;
}
