/**
 * UTF-8 decoding with SentencePiece's rules (`string_util::DecodeUTF8` / `IsValidDecodeUTF8`): one code point
 * at a time; overlong forms, surrogates and code points above U+10FFFF are invalid; an invalid or incomplete
 * sequence consumes ONE byte and becomes one U+FFFD, and decoding resumes at the next byte. (A WHATWG
 * `TextDecoder` instead emits one U+FFFD per maximal subpart, e.g. one for `E2 82`; SentencePiece emits two.)
 */

export const REPLACEMENT = '\uFFFD';

function isTrail(b: number): boolean {
  return (b & 0xc0) === 0x80;
}

function isValidCodepoint(cp: number): boolean {
  return cp < 0xd800 || (cp >= 0xe000 && cp <= 0x10ffff);
}

/** Length a lead byte announces: 1 (ASCII, or an invalid lead, which is decided at once), 2, 3 or 4. */
export function utf8SequenceLength(lead: number): number {
  if (lead < 0x80) return 1;
  if ((lead & 0xe0) === 0xc0) return 2;
  if ((lead & 0xf0) === 0xe0) return 3;
  if ((lead & 0xf8) === 0xf0) return 4;
  return 1;
}

/**
 * Decodes one code point at `bytes[at..end)`. Returns [codePoint, consumed]; codePoint is −1 for an invalid
 * (or, at `end`, incomplete) sequence, which always consumes 1 byte.
 */
export function decodeOneUtf8(bytes: ArrayLike<number>, at: number, end: number): [number, number] {
  const len = end - at;
  const b0 = bytes[at];
  if (b0 < 0x80) return [b0, 1];
  if (len >= 2 && (b0 & 0xe0) === 0xc0) {
    const cp = ((b0 & 0x1f) << 6) | (bytes[at + 1] & 0x3f);
    if (isTrail(bytes[at + 1]) && cp >= 0x80 && isValidCodepoint(cp)) return [cp, 2];
  } else if (len >= 3 && (b0 & 0xf0) === 0xe0) {
    const cp = ((b0 & 0x0f) << 12) | ((bytes[at + 1] & 0x3f) << 6) | (bytes[at + 2] & 0x3f);
    if (isTrail(bytes[at + 1]) && isTrail(bytes[at + 2]) && cp >= 0x800 && isValidCodepoint(cp)) return [cp, 3];
  } else if (len >= 4 && (b0 & 0xf8) === 0xf0) {
    const cp =
      ((b0 & 0x07) << 18) | ((bytes[at + 1] & 0x3f) << 12) | ((bytes[at + 2] & 0x3f) << 6) | (bytes[at + 3] & 0x3f);
    if (isTrail(bytes[at + 1]) && isTrail(bytes[at + 2]) && isTrail(bytes[at + 3]) && cp >= 0x10000) {
      if (isValidCodepoint(cp)) return [cp, 4];
    }
  }
  return [-1, 1];
}

/** Decodes a whole byte run: valid code points as themselves, every other byte as one U+FFFD. */
export function decodeUtf8Lossy(bytes: ArrayLike<number>): string {
  let out = '';
  let i = 0;
  while (i < bytes.length) {
    const [cp, n] = decodeOneUtf8(bytes, i, bytes.length);
    out += cp < 0 ? REPLACEMENT : String.fromCodePoint(cp);
    i += n;
  }
  return out;
}

/**
 * Whether `bytes[at..end)` (shorter than its lead byte announces) can still become a valid code point when
 * more bytes arrive. False means the lead byte is already known to decode as U+FFFD.
 */
export function utf8PrefixCanComplete(bytes: ArrayLike<number>, at: number, end: number): boolean {
  const need = utf8SequenceLength(bytes[at]);
  const have = end - at;
  if (need === 1 || have >= need) return false;
  for (let i = 1; i < have; i++) if (!isTrail(bytes[at + i])) return false;
  // The code points reachable by filling the missing trail bytes form one interval [lo, hi].
  let lo = bytes[at] & (0x7f >> need);
  let hi = lo;
  for (let i = 1; i < need; i++) {
    const known = i < have;
    lo = lo * 64 + (known ? bytes[at + i] & 0x3f : 0);
    hi = hi * 64 + (known ? bytes[at + i] & 0x3f : 0x3f);
  }
  const min = need === 2 ? 0x80 : need === 3 ? 0x800 : 0x10000;
  const intersects = (a: number, b: number) => Math.max(lo, min, a) <= Math.min(hi, b);
  return intersects(0, 0xd7ff) || intersects(0xe000, 0x10ffff);
}
