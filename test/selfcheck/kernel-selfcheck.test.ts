/**
 * The kernel self-check that the worker runs in browsers, run here in Node on the test adapter: every check
 * must pass with the context's own activation dtype and with forced f32; the harness must report a wrong
 * result and a throwing check as failures (so a self-check that always says "pass" cannot slip through).
 */
import { describe, expect, it } from 'vitest';
import { ShapeError } from '../../src/errors.ts';
import {
  compareOutputs,
  KERNEL_CHECKS,
  type KernelCheck,
  runKernelSelfCheck,
} from '../../src/selfcheck/kernel-selfcheck.ts';
import { createTestContext } from '../helpers/gpu.ts';

function summary(results: { name: string; ok: boolean; maxAbsErr: number; worstIndex: number; ms: number }[]) {
  return results
    .map(
      (r) => `${r.ok ? 'ok  ' : 'FAIL'} ${r.name}: max abs ${r.maxAbsErr} at ${r.worstIndex} (${r.ms.toFixed(0)} ms)`,
    )
    .join('\n');
}

describe('compareOutputs', () => {
  it('passes within atol + rtol·|ref| and reports the largest error and where', () => {
    expect(compareOutputs([1, 2.001, 3], [1, 2, 3], 0, 1e-3)).toEqual({
      ok: true,
      maxAbsErr: expect.closeTo(0.001, 9),
      worstIndex: 1,
    });
  });
  it('fails outside the tolerance', () => {
    const r = compareOutputs([1, 2, 3.1], [1, 2, 3], 1e-3, 1e-3);
    expect(r.ok).toBe(false);
    expect(r.worstIndex).toBe(2);
  });
  it('fails on NaN and points at it', () => {
    const r = compareOutputs([1, Number.NaN, 3], [1, 2, 3], 1, 1);
    expect(r.ok).toBe(false);
    expect(r.maxAbsErr).toBeNaN();
    expect(r.worstIndex).toBe(1);
  });
  it('fails on a length mismatch', () => {
    expect(compareOutputs([1], [1, 2], 1, 1).ok).toBe(false);
  });
});

describe('kernel self-check on the test adapter', async () => {
  const ctx = await createTestContext();
  const ctx32 = ctx.hasF16 ? await createTestContext({ forceF32: true }) : null;

  it(`every check passes (act ${ctx.act})`, async () => {
    const results = await runKernelSelfCheck(ctx);
    if (process.env.TROL_TEST_VERBOSE) console.log(`act ${ctx.act}\n${summary(results)}`);
    expect(results.map((r) => r.name)).toEqual(KERNEL_CHECKS.map((c) => c.name));
    expect(
      results.filter((r) => !r.ok),
      summary(results),
    ).toEqual([]);
  });

  it.runIf(ctx32)('every check passes with forced f32 activations', async () => {
    const results = await runKernelSelfCheck(ctx32!);
    if (process.env.TROL_TEST_VERBOSE) console.log(`act f32 (forced)\n${summary(results)}`);
    expect(
      results.filter((r) => !r.ok),
      summary(results),
    ).toEqual([]);
  });

  it('reports a wrong result and a throwing check as failures, and keeps going', async () => {
    const wrong: KernelCheck = {
      name: 'wrong',
      async run() {
        return compareOutputs([1, 2, 4], [1, 2, 3], 1e-3, 1e-3);
      },
    };
    const throws: KernelCheck = {
      name: 'throws',
      async run({ ctx: c, track }) {
        track(await c.upload('selfcheck.test.buffer', new Uint32Array(4)));
        throw new ShapeError('bad shape on purpose');
      },
    };
    const results = await runKernelSelfCheck(ctx, [wrong, throws, KERNEL_CHECKS[0]]);
    expect(results[0]).toMatchObject({ name: 'wrong', ok: false, maxAbsErr: 1, worstIndex: 2 });
    expect(results[1]).toMatchObject({
      name: 'throws',
      ok: false,
      worstIndex: -1,
      error: { name: 'ShapeError', message: 'bad shape on purpose' },
    });
    expect(results[2].ok).toBe(true);
  });
});
