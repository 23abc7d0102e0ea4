/**
 * Attention benchmark rows for `npm run bench` (bench/kernels.ts merges them into its `attention` field).
 *
 * TroL-1.8B decoder shapes (nQ = 16, nKV = 8, hd = 128, a 4096-row cache):
 *  - prefill: T = 1289 (1225 image tokens + text), causal, empty cache — one traversal pass of one layer;
 *  - decode:  T = 1 at past = 1289 and past = 4095 (the last position of a 4096 context);
 * and the CLIP vision tower's bidirectional attention (T = 1226, 16 heads × 64) for one layer.
 * Times are medians after a warm-up: summed GPU timestamps of the attention passes when the context records
 * them (GpuContext `profile: true`), else wall clock around ctx.finish(). Nothing here asserts a speed.
 */
import { createAct } from '../src/gpu/act-io.ts';
import type { GpuContext } from '../src/gpu/context.ts';
import type { Tensor } from '../src/gpu/tensor.ts';
import { attention, attentionBidirectional } from '../src/ops/attention.ts';
import { toF16Array } from '../src/util/f16.ts';
import { log } from './helpers.ts';

export interface AttentionBenchRow {
  name: string;
  /** Query tokens. */
  T: number;
  /** Tokens already in the cache. */
  past: number;
  /** Median milliseconds per call. */
  ms: number;
  timing: 'gpu-timestamps' | 'wall-clock';
}

const N_Q = 16;
const N_KV = 8;
const HD = 128;
const CAP = 4096;

async function randomAct(ctx: GpuContext, label: string, shape: number[], seed: number): Promise<Tensor> {
  const t = await createAct(ctx, label, shape);
  const v = new Float32Array(t.numel);
  for (let i = 0; i < v.length; i++) v[i] = Math.sin((i + 1) * 0.618 * seed) * 0.8;
  ctx.write(t.buffer, ctx.act === 'f16' ? toF16Array(v) : v);
  return t;
}

function median(v: number[]): number {
  const s = [...v].sort((a, b) => a - b);
  const h = s.length >> 1;
  return s.length % 2 ? s[h] : (s[h - 1] + s[h]) / 2;
}

/** Median time of `record` (its passes labelled attn_*), after one warm-up run (which compiles). */
async function time(
  ctx: GpuContext,
  record: () => Promise<void>,
  reps: number,
): Promise<{ ms: number; timing: AttentionBenchRow['timing'] }> {
  await record();
  await ctx.finish();
  const samples: number[] = [];
  let timing: AttentionBenchRow['timing'] = ctx.hasTimestamps ? 'gpu-timestamps' : 'wall-clock';
  for (let i = 0; i < reps; i++) {
    ctx.resetTimings();
    const t0 = performance.now();
    await record();
    await ctx.finish();
    const wall = performance.now() - t0;
    let gpu = 0;
    if (timing === 'gpu-timestamps') {
      // The timestamp readback lands shortly after the submission completes.
      const deadline = performance.now() + 3000;
      while (gpu === 0 && performance.now() < deadline) {
        for (const [label, t] of ctx.timings) if (label.startsWith('attn_')) gpu += t.ms;
        if (gpu === 0) await new Promise((r) => setTimeout(r, 1));
      }
      if (gpu === 0) timing = 'wall-clock';
    }
    samples.push(gpu > 0 ? gpu : wall);
  }
  return { ms: median(samples), timing };
}

export async function benchAttention(ctx: GpuContext, opts: { reps?: number } = {}): Promise<AttentionBenchRow[]> {
  const reps = opts.reps ?? (ctx.adapterSummary.software ? 3 : 10);
  const rows: AttentionBenchRow[] = [];
  const kCache = await randomAct(ctx, 'bench.attn.k', [N_KV, CAP, HD], 2);
  const vCache = await randomAct(ctx, 'bench.attn.v', [N_KV, CAP, HD], 3);

  const T = 1289;
  const q = await randomAct(ctx, 'bench.attn.q', [T, N_Q * HD], 1);
  const out = await createAct(ctx, 'bench.attn.out', [T, N_Q * HD]);
  const p = { T, past: 0, nQ: N_Q, nKV: N_KV, hd: HD };
  const prefill = await time(ctx, () => attention(ctx, q, kCache, vCache, out, p), reps);
  rows.push({ name: 'prefill', T, past: 0, ...prefill });
  log(`attention prefill T=${T}: ${prefill.ms.toFixed(2)} ms`);

  for (const past of [1289, 4095]) {
    const q1 = await randomAct(ctx, 'bench.attn.q1', [1, N_Q * HD], 4);
    const o1 = await createAct(ctx, 'bench.attn.o1', [1, N_Q * HD]);
    const d = await time(ctx, () => attention(ctx, q1, kCache, vCache, o1, { ...p, T: 1, past }), reps);
    rows.push({ name: 'decode', T: 1, past, ...d });
    log(`attention decode past=${past}: ${d.ms.toFixed(3)} ms`);
    q1.destroy();
    o1.destroy();
  }
  q.destroy();
  out.destroy();
  kCache.destroy();
  vCache.destroy();

  // CLIP ViT-L/14 at 490 px: 1226 tokens, 16 heads × 64.
  const tv = 1226;
  const shape = [tv, 16 * 64];
  const [vq, vk, vv] = [
    await randomAct(ctx, 'bench.vit.q', shape, 5),
    await randomAct(ctx, 'bench.vit.k', shape, 6),
    await randomAct(ctx, 'bench.vit.v', shape, 7),
  ];
  const vo = await createAct(ctx, 'bench.vit.out', shape);
  const vit = await time(ctx, () => attentionBidirectional(ctx, vq, vk, vv, vo, { T: tv, nH: 16, hd: 64 }), reps);
  rows.push({ name: 'vision', T: tv, past: 0, ...vit });
  log(`attention vision T=${tv}: ${vit.ms.toFixed(2)} ms`);
  for (const t of [vq, vk, vv, vo]) t.destroy();
  return rows;
}
