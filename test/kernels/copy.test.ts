import { describe, expect, it } from 'vitest';
import { ShapeError } from '../../src/errors.ts';
import { copyKernel } from '../../src/ops/copy.ts';
import { createTestContext } from '../helpers/gpu.ts';
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
