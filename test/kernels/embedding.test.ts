import { describe, expect, it } from 'vitest';
import { ShapeError } from '../../src/errors.ts';
import { createAct, readAct, uploadU32 } from '../../src/gpu/act-io.ts';
import { destroyMatrix, type WeightFormat } from '../../src/gpu/tensor.ts';
import { embedding } from '../../src/ops/embedding.ts';
import { roundToF16 } from '../../src/util/f16.ts';
import { packQ4 } from '../../src/weights/quantize.ts';
import { uploadMatrix } from '../../src/weights/upload-matrix.ts';
import { expectClose, type Tolerance } from '../helpers/compare.ts';
import { actDTypes, createTestContext } from '../helpers/gpu.ts';
import { Rng } from '../helpers/rng.ts';
import * as ref from '../reference/embedding.ts';

// A gather does no arithmetic beyond the q4 product (q·scale, exact in f32): f32 output must be exact.
const TOL_F32: Tolerance = { atol: 0, rtol: 0 };
// f16 output: one f32→f16 conversion (WGSL may round to either neighbour: one f16 ulp, 2^-10 relative;
// atol = half the subnormal spacing).
const TOL_F16: Tolerance = { atol: 3e-8, rtol: 2 ** -10 };

const VOCAB = 300;
const FORMATS: WeightFormat[] = ['f32', 'f16', 'q4'];

/** What the table holds after upload in `format` (f16 rounds, q4 quantizes). */
function storedTable(format: WeightFormat, values: Float32Array, n: number, d: number): Float64Array {
  if (format === 'f32') return Float64Array.from(values);
  if (format === 'f16') return Float64Array.from(values, roundToF16);
  const p = packQ4(values, n, d);
  return ref.dequantQ4(p.qweight, p.scales, n, d);
}

describe('embedding gather', async () => {
  const ctx = await createTestContext();

  for (const dtype of actDTypes(ctx)) {
    const tol = dtype === 'f16' ? TOL_F16 : TOL_F32;
    for (const format of FORMATS) {
      for (const split of [false, true]) {
        it(`${format} table → ${dtype}${split ? ', split into row-block parts' : ''}`, async () => {
          for (const d of [1, 7, 64, 257, 2048]) {
            const rng = new Rng(d * 3 + FORMATS.indexOf(format));
            const values = rng.floats(VOCAB * d);
            // Force ~4 parts (rows per part = budget / row bytes, so the last part is short).
            const rowBytes =
              format === 'q4' ? (Math.ceil(d / 32) * 32) / 2 : format === 'f16' ? Math.ceil(d / 2) * 4 : d * 4;
            const options = split ? { maxPartBytes: rowBytes * 77 } : {};
            const table = await uploadMatrix(ctx, 'table', format, VOCAB, d, values, options);
            if (split) expect(table.parts.length).toBe(4);
            const stored = storedTable(format, values, VOCAB, d);
            for (const T of [1, 7, 257]) {
              const ids = new Uint32Array(T).map(() => rng.int(0, VOCAB));
              // Part boundaries, the last row, and ids past the table (must give zeros, not read out of bounds).
              const special = [0, 76, 77, 153, 154, VOCAB - 1, VOCAB, VOCAB + 7, 0xffffffff];
              for (let i = 0; i < Math.min(T, special.length); i++) ids[(i * 31) % T] = special[i];
              const idT = await uploadU32(ctx, 'ids', ids);
              const out = await createAct(ctx, 'out', [T, d], dtype);
              ctx.write(out.buffer, new Uint8Array(out.buffer.size).fill(0x7f)); // garbage, not zeros
              await embedding(ctx, table, idT, out);
              const want = ref.embedding(stored, VOCAB, d, ids);
              expectClose(await readAct(ctx, out), want, tol, `embed ${format}→${dtype} split=${split} [${T},${d}]`);
              idT.destroy();
              out.destroy();
            }
            destroyMatrix(table);
          }
        });
      }
    }
  }

  it('rejects mismatched shapes with ShapeError', async () => {
    const table = await uploadMatrix(ctx, 'table', 'f32', 10, 8, new Float32Array(80));
    const ids = await uploadU32(ctx, 'ids', new Uint32Array(3));
    await expect(embedding(ctx, table, ids, await createAct(ctx, 'o', [3, 7], 'f32'))).rejects.toBeInstanceOf(
      ShapeError,
    );
    await expect(embedding(ctx, table, ids, await createAct(ctx, 'o', [4, 8], 'f32'))).rejects.toBeInstanceOf(
      ShapeError,
    );
    const fIds = await createAct(ctx, 'fids', [3], 'f32');
    await expect(embedding(ctx, table, fIds, await createAct(ctx, 'o', [3, 8], 'f32'))).rejects.toBeInstanceOf(
      ShapeError,
    );
    destroyMatrix(table);
  });
});
