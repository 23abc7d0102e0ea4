/**
 * An independent f64 bicubic resize (Keys cubic, a = −0.75, align_corners=False, replicated border), written
 * from the textbook definition rather than from torch's code: source coordinate x = (i + 0.5)·in/out − 0.5,
 * taps ⌊x⌋−1..⌊x⌋+2 with their indices clamped into the image, weights in double (no int16 quantisation, no
 * float32 floor). Separable like torch's uint8 path: the horizontal pass is rounded (half up) and clamped to
 * uint8 before the vertical pass. It agrees with the exact kernel within 1 LSB, not bit for bit.
 */

function keys(x: number): number {
  const a = -0.75;
  const t = Math.abs(x);
  if (t <= 1) return (a + 2) * t ** 3 - (a + 3) * t ** 2 + 1;
  if (t < 2) return a * t ** 3 - 5 * a * t ** 2 + 8 * a * t - 4 * a;
  return 0;
}

function resample1d(line: (k: number) => number, inSize: number, outSize: number, out: (i: number, v: number) => void) {
  for (let i = 0; i < outSize; i++) {
    const x = ((i + 0.5) * inSize) / outSize - 0.5;
    const x0 = Math.floor(x);
    const t = x - x0;
    let v = 0;
    for (let j = -1; j <= 2; j++) {
      const k = Math.min(Math.max(x0 + j, 0), inSize - 1);
      v += keys(j - t) * line(k);
    }
    out(i, Math.min(255, Math.max(0, Math.floor(v + 0.5))));
  }
}

/** [C, H, W] uint8 → [C, outH, outW] uint8. */
export function referenceBicubicU8(
  src: Uint8Array,
  C: number,
  H: number,
  W: number,
  outH: number,
  outW: number,
): Uint8Array {
  const mid = new Uint8Array(C * H * outW);
  for (let c = 0; c < C; c++) {
    for (let y = 0; y < H; y++) {
      const base = (c * H + y) * W;
      resample1d(
        (k) => src[base + k],
        W,
        outW,
        (i, v) => {
          mid[(c * H + y) * outW + i] = v;
        },
      );
    }
  }
  const out = new Uint8Array(C * outH * outW);
  for (let c = 0; c < C; c++) {
    for (let x = 0; x < outW; x++) {
      resample1d(
        (k) => mid[(c * H + k) * outW + x],
        H,
        outH,
        (i, v) => {
          out[(c * outH + i) * outW + x] = v;
        },
      );
    }
  }
  return out;
}
