/**
 * The f64 CPU reference (test/reference/trol-ref.ts) against the tiny-trol fixture goldens (float64 results
 * of an independent PyTorch reference, stored as float32): tolerance 1e-4 · max(1, max|golden|), the measured
 * error is ~1e-6 (float32 storage). Greedy ids must match exactly.
 */
import { readFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { expectClose } from '../helpers/compare.ts';
import { readRefFiles } from '../reference/ref-files.ts';
import {
  argmax,
  type GateMode,
  loadRefModel,
  loadRefTensors,
  RefModel,
  type RefTensor,
  refVision,
} from '../reference/trol-ref.ts';

const DIR = 'test/fixtures/tiny-trol';
const GOLD = `${DIR}/golden`;
const N_GEN = 24;

async function f32(name: string): Promise<Float32Array> {
  const b = await readFile(`${GOLD}/${name}.bin`);
  return new Float32Array(b.buffer, b.byteOffset, b.byteLength / 4);
}
async function i32(name: string): Promise<number[]> {
  const b = await readFile(`${GOLD}/${name}.bin`);
  return Array.from(new Int32Array(b.buffer, b.byteOffset, b.byteLength / 4));
}

/** The golden tolerance: atol = 1e-4 · max(1, max|golden|), no relative part. */
function near(actual: ArrayLike<number>, golden: Float32Array, label: string) {
  let m = 1;
  for (const v of golden) m = Math.max(m, Math.abs(v));
  const r = expectClose(actual, golden, { atol: 1e-4 * m, rtol: 0 }, label);
  console.log(`${label}: max abs err ${r.maxAbs.toExponential(2)} (max|golden| ${m.toFixed(2)})`);
  return r;
}

function concat(rows: Float64Array[]): Float64Array {
  const out = new Float64Array(rows.reduce((n, r) => n + r.length, 0));
  let o = 0;
  for (const r of rows) {
    out.set(r, o);
    o += r.length;
  }
  return out;
}

/** Greedy decode after a prefill: `n` ids (the first from the prefill logits). */
function greedy(model: RefModel, ids: number[], img: Float64Array | undefined, gateMode: GateMode, n: number) {
  const s = model.newSession();
  let logits = s.prefill(ids, img, { gateMode }).logitsLast;
  const out: number[] = [];
  for (let k = 0; k < n; k++) {
    out.push(argmax(logits));
    if (k + 1 < n) logits = s.decode(out[k]);
  }
  return out;
}

describe('f64 TroL reference vs tiny-trol goldens', async () => {
  const model = await loadRefModel(DIR);
  const pixels = await f32('img_pixel_values');
  const { visionOut, projOut } = refVision(model, pixels);

  it('the engine readers agree exactly with the independent test-only readers', async () => {
    const engine = await loadRefTensors(DIR);
    const local = await readRefFiles(DIR);
    expect([...engine.tensors.keys()].sort()).toEqual([...local.tensors.keys()].sort());
    for (const [name, t] of local.tensors) {
      const e = engine.tensors.get(name)!;
      expect(e.shape, name).toEqual(t.shape);
      expect(e.data, name).toEqual(t.data);
    }
    for (const [k, v] of Object.entries(local.config)) {
      expect((engine.config as unknown as Record<string, unknown>)[k], k).toEqual(
        k === 'vision' ? expect.objectContaining(v) : v,
      );
    }
  });

  it('vision tower and projector', async () => {
    near(visionOut, await f32('img_vision_out'), 'img_vision_out');
    near(projOut, await f32('img_proj_out'), 'img_proj_out');
  });

  for (const tag of ['img', 'txt'] as const) {
    describe(`${tag} prompt`, async () => {
      const ids = await i32(`${tag}_prompt_ids`);
      const img = tag === 'img' ? projOut : undefined;

      it('embeddings after the image merge', async () => {
        near(model.embed(ids, img), await f32(`${tag}_embeds`), `${tag}_embeds`);
      });

      it('prefill: layer 0 passes, gates, every layer, last logits; teacher-forced decode logits', async () => {
        const s = model.newSession();
        const r = s.prefill(ids, img, { gateMode: 'per-layer' });
        for (const k of ['h1', 'h2', 'gate', 'y', 'k', 'v'] as const) {
          near(r.layer0[k], await f32(`${tag}_layer0_${k}`), `${tag}_layer0_${k}`);
        }
        near(concat(r.gates), await f32(`${tag}_gates`), `${tag}_gates`);
        near(concat(r.layersY), await f32(`${tag}_layers_y`), `${tag}_layers_y`);
        near(r.logitsLast, await f32(`${tag}_prefill_logits_last`), `${tag}_prefill_logits_last`);
        expect(s.length).toBe(ids.length);
        near(s.cached(0, 'k'), await f32(`${tag}_layer0_k`), `${tag}_cache0_k`);

        const genIds = await i32(`${tag}_gen_ids`);
        const gold = await f32(`${tag}_gen_logits`);
        const V = model.config.vocabSize;
        const rows = [r.logitsLast];
        for (let k = 1; k < N_GEN; k++) rows.push(s.decode(genIds[k - 1]));
        near(concat(rows), gold, `${tag}_gen_logits`);
        expect(s.length).toBe(ids.length + N_GEN - 1);
        expect(gold.length).toBe(N_GEN * V);
      });

      it('greedy ids (24 steps) match exactly', async () => {
        expect(greedy(model, ids, img, 'per-layer', N_GEN)).toEqual(await i32(`${tag}_gen_ids`));
      });
    });
  }

  describe("gateMode 'last' (official loader: gate entry L−1 for every layer)", async () => {
    const ids = await i32('img_prompt_ids');
    it('prefill logits and greedy ids', async () => {
      const r = model.newSession().prefill(ids, projOut, { gateMode: 'last' });
      near(r.logitsLast, await f32('img_prefill_logits_last_gatelast'), 'img_prefill_logits_last_gatelast');
      expect(greedy(model, ids, projOut, 'last', N_GEN)).toEqual(await i32('img_gen_ids_gatelast'));
      // and it does differ from per-layer on this fixture (README: max |Δlogit| 4.34)
      const per = await f32('img_prefill_logits_last');
      let d = 0;
      for (let i = 0; i < per.length; i++) d = Math.max(d, Math.abs(per[i] - r.logitsLast[i]));
      expect(d).toBeGreaterThan(1);
    });
  });

  describe('session semantics', async () => {
    const ids = await i32('txt_prompt_ids');
    // A model whose gates are forced to s = 0 (bias −1e9: 0.5·tanh(−1e9) + 0.5 = 0 exactly), so y = h1: the
    // plain IXC2 network, for which chunked prefill, decode and one-shot prefill must agree.
    const { config, tensors } = await loadRefTensors(DIR);
    const plain = new RefModel(config, {
      get(name: string): RefTensor {
        const t = tensors.get(name)!;
        return name.startsWith('trol_gating.') && name.endsWith('.bias')
          ? { shape: t.shape, data: new Float64Array([-1e9]) }
          : t;
      },
    });
    const opts = { gateMode: 'per-layer' } as const;

    it('a follow-up turn continues positions and attends to the cache (gates off: chunking is invisible)', () => {
      const w = plain.newSession();
      const whole = w.prefill(ids, undefined, opts);
      const s = plain.newSession();
      s.prefill(ids.slice(0, 100), undefined, opts);
      const second = s.prefill(ids.slice(100), undefined, opts);
      expect(s.length).toBe(ids.length);
      expectClose(second.logitsLast, whole.logitsLast, { atol: 1e-10, rtol: 0 }, 'chunked vs whole');
      for (const l of [0, 1]) {
        expectClose(s.cached(l, 'k'), w.cached(l, 'k'), { atol: 1e-10, rtol: 0 }, `cache ${l} k`);
        expectClose(s.cached(l, 'v'), w.cached(l, 'v'), { atol: 1e-10, rtol: 0 }, `cache ${l} v`);
      }
      // decode = a one-token step of the same network
      const d = plain.newSession();
      d.prefill(ids.slice(0, -3), undefined, opts);
      d.decode(ids[ids.length - 3]);
      d.decode(ids[ids.length - 2]);
      expectClose(d.decode(ids[ids.length - 1]), whole.logitsLast, { atol: 1e-10, rtol: 0 }, 'decode vs whole');
      expect(whole.gates.every((g) => g.every((v) => v === 0))).toBe(true);
    });

    it('with real gates a follow-up turn traverses its own chunk (differs from decoding it)', () => {
      const a = model.newSession();
      a.prefill(ids.slice(0, 130), undefined, opts);
      const turn = a.prefill(ids.slice(130), undefined, opts);
      const b = model.newSession();
      b.prefill(ids.slice(0, 130), undefined, opts);
      let last: Float64Array = new Float64Array();
      for (const id of ids.slice(130)) last = b.decode(id);
      expect(turn.gates[0].length).toBe(ids.length - 130);
      expect(turn.gates[0].every((g) => g > 0 && g < 1)).toBe(true);
      let diff = 0;
      for (let i = 0; i < last.length; i++) diff = Math.max(diff, Math.abs(last[i] - turn.logitsLast[i]));
      expect(diff).toBeGreaterThan(1e-3);
      // the cache after the turn holds pass-1 K/V of every position
      expect(a.length).toBe(ids.length);
    });

    it('rejects mismatched image features and bad ids', async () => {
      const imgIds = await i32('img_prompt_ids');
      const s = model.newSession();
      expect(() => s.prefill(imgIds, projOut.slice(64), opts)).toThrow(/imageFeatures/);
      expect(() => s.prefill(imgIds, undefined, opts)).toThrow(/no imageFeatures/);
      expect(() => s.prefill([1, 641], undefined, opts)).toThrow(/outside/);
      expect(() => s.prefill([], undefined, opts)).toThrow();
      expect(s.length).toBe(0);
      expect(() => refVision(model, new Float32Array(10))).toThrow(/pixels/);
    });
  });
});
