/**
 * Plain f64 references for the matmul family (linear, q4 decode, P-LoRA), written from the layout description
 * in src/gpu/tensor.ts, independently of shaders/matmul.wgsl and of src/weights/quantize.ts's unpackQ4.
 */

/** IEEE binary16 bits → value (own decoder, so the reference does not share code with the packer). */
export function halfToNumber(h: number): number {
  const sign = h >> 15 ? -1 : 1;
  const e = (h >> 10) & 31;
  const f = h & 1023;
  if (e === 31) return f ? Number.NaN : sign * Number.POSITIVE_INFINITY;
  return e === 0 ? sign * f * 2 ** -24 : sign * 2 ** (e - 15) * (1 + f / 1024);
}

/**
 * Dequantize q4 words read byte by byte: byte b of word w holds element 8w+2b in its low nibble and 8w+2b+1 in
 * its high nibble (little-endian words); scale half h of a row is the h-th u16 of the row's scale words.
 * Returns W as [n][k] f64.
 */
export function decodeQ4(qweight: Uint32Array, scales: Uint32Array, n: number, k: number): Float64Array {
  const kp = Math.ceil(k / 32) * 32;
  const bytesPerRow = kp / 2;
  const halvesPerRow = 2 * Math.ceil(kp / 32 / 2);
  const qb = new Uint8Array(qweight.buffer, qweight.byteOffset, qweight.byteLength);
  const sb = new Uint16Array(scales.buffer, scales.byteOffset, scales.length * 2);
  const out = new Float64Array(n * k);
  for (let r = 0; r < n; r++) {
    for (let i = 0; i < k; i++) {
      const byte = qb[r * bytesPerRow + (i >> 1)];
      const nibble = i % 2 === 0 ? byte & 15 : byte >> 4;
      const s = halfToNumber(sb[r * halvesPerRow + Math.floor(i / 32)]);
      out[r * k + i] = (nibble - 8) * s;
    }
  }
  return out;
}

export interface LinearRefOptions {
  bias?: ArrayLike<number>;
  scale?: number;
  /** Initial contents of out ([outRows][n]); with `accumulate` the result is added to it, else overwritten. */
  out?: ArrayLike<number>;
  outRows?: number;
  accumulate?: boolean;
  inRows?: ArrayLike<number>;
  scatterRows?: ArrayLike<number>;
  rows?: number;
}

/**
 * out[m][c] = scale · Σ_k x[xr][k]·W[c][k] (+ bias[c]) (+ out[or][c]) for processed rows m < rows, with
 * xr = inRows[m] (or m) and or = scatterRows[m] (or m). W is [n][k] dequantized values.
 */
export function linearRef(
  x: ArrayLike<number>,
  xRows: number,
  k: number,
  w: ArrayLike<number>,
  n: number,
  o: LinearRefOptions = {},
): Float64Array {
  const rows = o.rows ?? o.inRows?.length ?? o.scatterRows?.length ?? xRows;
  const outRows = o.outRows ?? xRows;
  const out = new Float64Array(outRows * n);
  if (o.out) for (let i = 0; i < out.length; i++) out[i] = o.out[i];
  const scale = o.scale ?? 1;
  for (let m = 0; m < rows; m++) {
    const xr = o.inRows ? o.inRows[m] : m;
    const or = o.scatterRows ? o.scatterRows[m] : m;
    if (xr >= xRows || or >= outRows) continue;
    for (let c = 0; c < n; c++) {
      let s = 0;
      for (let i = 0; i < k; i++) s += x[xr * k + i] * w[c * k + i];
      let v = s * scale;
      if (o.bias) v += o.bias[c];
      if (o.accumulate) v += out[or * n + c];
      out[or * n + c] = v;
    }
  }
  return out;
}

/**
 * P-LoRA: for each i < rows.length, r = rows[i]: out[r] += (x[r]·Aᵀ)·Bᵀ·scale, A: [R][k], B: [n][R].
 * `roundMid` is applied to each element of x[r]·Aᵀ (the op keeps it in an activation tensor: f16 rounds).
 */
export function loraRef(
  x: ArrayLike<number>,
  k: number,
  a: ArrayLike<number>,
  r: number,
  b: ArrayLike<number>,
  n: number,
  rows: ArrayLike<number>,
  out: ArrayLike<number>,
  scale: number,
  roundMid: (v: number) => number = (v) => v,
): Float64Array {
  const res = Float64Array.from(out);
  const mid = new Float64Array(r);
  for (let i = 0; i < rows.length; i++) {
    const row = rows[i];
    for (let j = 0; j < r; j++) {
      let s = 0;
      for (let q = 0; q < k; q++) s += x[row * k + q] * a[j * k + q];
      mid[j] = roundMid(s);
    }
    for (let c = 0; c < n; c++) {
      let s = 0;
      for (let j = 0; j < r; j++) s += mid[j] * b[c * r + j];
      res[row * n + c] += s * scale;
    }
  }
  return res;
}
