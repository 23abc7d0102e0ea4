/**
 * The whole model on the GPU against the fixture's goldens (an independent float64 PyTorch reference):
 * f32 path everywhere; f16 activations where the device has shader-f16; gate mode `last`; q4 reported.
 */
import { readFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { TrolEngine } from '../../src/engine.ts';
import { decodeImageNode } from '../../src/image/decode-node.ts';
import { type GoldenCheck, openGoldens, verifyGoldens } from '../../src/verify/golden.ts';
import { dirFiles } from '../../src/weights/byte-source.ts';
import { createTestContext } from '../helpers/gpu.ts';

const MODEL = 'test/fixtures/tiny-trol';
const GOLDEN = `${MODEL}/golden`;

function report(label: string, checks: GoldenCheck[]): void {
  for (const c of checks) {
    if (process.env.TROL_TEST_VERBOSE || !c.pass) {
      console.log(
        `${label} ${c.pass ? 'ok  ' : 'FAIL'} ${c.name} max|Δ| ${c.maxAbs.toExponential(3)} tol ${c.tol.toExponential(2)} worst ${c.worst}`,
      );
    }
  }
}

describe('tiny-trol goldens on the GPU', async () => {
  const golden = await openGoldens(dirFiles(GOLDEN));
  const image = await decodeImageNode(new Uint8Array(await readFile(`${GOLDEN}/image.png`)));
  const ctx32 = await createTestContext({ forceF32: true });

  it('f32 weights + f32 activations match every golden (ids exact, floats within 1e-3·max(1,|g|))', async () => {
    const engine = await TrolEngine.create(dirFiles(MODEL), { weights: 'f32', context: ctx32 });
    try {
      const checks = await verifyGoldens(engine, golden, image);
      report('f32', checks);
      expect(checks.length).toBeGreaterThanOrEqual(30);
      expect(checks.filter((c) => !c.pass).map((c) => c.name)).toEqual([]);
    } finally {
      engine.destroy();
    }
  });

  it('gate mode `last` matches the *_gatelast goldens', async () => {
    const engine = await TrolEngine.create(dirFiles(MODEL), { weights: 'f32', gateMode: 'last', context: ctx32 });
    try {
      const checks = await verifyGoldens(engine, golden, image, { gateLast: true, cases: ['img'] });
      report('gatelast', checks);
      expect(checks.map((c) => c.name).sort()).toEqual(['img_gen_ids_gatelast', 'img_prefill_logits_last_gatelast']);
      expect(checks.filter((c) => !c.pass).map((c) => c.name)).toEqual([]);
    } finally {
      engine.destroy();
    }
  });
});

describe('tiny-trol goldens with f16 activations', async () => {
  const golden = await openGoldens(dirFiles(GOLDEN));
  const image = await decodeImageNode(new Uint8Array(await readFile(`${GOLDEN}/image.png`)));
  const ctx = await createTestContext();
  it.skipIf(!ctx.hasF16)('f16 weights + f16 activations: greedy ids identical, logits within 0.07', async () => {
    const engine = await TrolEngine.create(dirFiles(MODEL), { weights: 'f16', context: ctx });
    try {
      expect(engine.ctx.act).toBe('f16');
      const checks = await verifyGoldens(engine, golden, image);
      report('f16', checks);
      expect(checks.filter((c) => !c.pass).map((c) => c.name)).toEqual([]);
    } finally {
      engine.destroy();
    }
  });
});
