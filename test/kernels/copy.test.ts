import { describe, expect, it } from 'vitest';
import { ShapeError } from '../../src/errors.ts';
import { readAct, uploadAct } from '../../src/gpu/act-io.ts';
import { Tensor } from '../../src/gpu/tensor.ts';
import { castToF32 } from '../../src/ops/cast.ts';
import { copyKernel } from '../../src/ops/copy.ts';
import { roundToF16 } from '../../src/util/f16.ts';
import { expectClose } from '../helpers/compare.ts';
import { actDTypes, createTestContext } from '../helpers/gpu.ts';
import { Rng } from '../helpers/rng.ts';

describe('copy kernel', async () => {
  const ctx = await createTestContext();
  for (const n4 of [1, 7, 257, 70_000]) {
    it(`copies ${n4} vec4s exactly`, async () => {
      const rng = new Rng(n4);
      const data = new Uint32Array(n4 * 4).map(() => rng.int(0, 2 ** 31));
      const src = await ctx.upload('copy-src', data);
      const dst = await ctx.upload('copy-dst', new Uint32Array(n4 * 4).fill(0xdeadbeef));
      await copyKernel(ctx, src, dst, n4 * 16);
      const out = new Uint32Array(await ctx.read(dst));
      expect(out).toEqual(data);
      src.destroy();
      dst.destroy();
    });
  }
  it('rejects a byte count that is not a multiple of 16', async () => {
    const b = await ctx.upload('b', new Uint32Array(8));
    await expect(copyKernel(ctx, b, b, 20)).rejects.toBeInstanceOf(ShapeError);
  });
});

describe('castToF32', async () => {
  const ctx = await createTestContext();
  for (const act of actDTypes(ctx)) {
    for (const n of [1, 7, 257, 5000]) {
      it(`widens ${n} ${act} values exactly`, async () => {
        const rng = new Rng(n + 3);
        const values = rng.floats(n, -20, 20);
        const x = await uploadAct(ctx, 'cast-in', values, [n], act);
        const expected = act === 'f16' ? Float32Array.from(values, roundToF16) : values;
        const out = new Tensor(await ctx.upload('cast-out', new Float32Array(n).fill(Number.NaN)), 'f32', [n]);
        await castToF32(ctx, x, out);
        expectClose(await readAct(ctx, out), expected, { atol: 0, rtol: 0 }, `cast ${act} n=${n}`);
      });
    }
  }
  it('rejects a size mismatch', async () => {
    const x = await uploadAct(ctx, 'x', new Float32Array(4), [4]);
    const out = new Tensor(await ctx.upload('o', new Float32Array(3)), 'f32', [3]);
    await expect(castToF32(ctx, x, out)).rejects.toBeInstanceOf(ShapeError);
  });
});
