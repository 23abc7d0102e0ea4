/**
 * Kernel benchmark: `npm run bench -- [--json] [--quick] [--adapter llvmpipe|swiftshader|default]
 *                                     [--variant auto|register|tiled] [--f32]`
 *
 * Reports, for the adapter (ctx.adapterSummary, `software: true` on CPU drivers):
 *  - copy_gbps: the WGSL copy kernel (src/ops/copy.ts) over 64 MiB, read + written bytes per second;
 *  - gemv: q4 linear at M = 1 for the TroL-1.8B decode shapes, GB/s of weights + scales read, and the ratio to
 *    copy_gbps measured in the same run;
 *  - gemm: q4 linear at M = 1289 (a prefill chunk: 1225 image tokens + text), GFLOP/s = 2·M·N·K / t; on software
 *    adapters or with --quick, M = 128 (the JSON says which M was used);
 *  - fma_gflops: an arithmetic peak probe (register-only vec4 FMAs), and each GEMM's ratio to it;
 *  - attention: prefill (T = 1289), decode (past 1289 and 4095) and vision (T = 1226) timings (bench/attention.ts).
 * Times are medians of several runs after a warm-up, from GPU timestamp queries when the adapter has them, else
 * wall clock around ctx.finish(). With --json, stdout carries exactly one JSON object; logs go to stderr.
 * Nothing here asserts anything about speed.
 */
import type { AdapterChoice } from '../src/gpu/acquire.ts';
import { createAct } from '../src/gpu/act-io.ts';
import { GpuContext } from '../src/gpu/context.ts';
import { destroyMatrix } from '../src/gpu/tensor.ts';
import { copyKernel } from '../src/ops/copy.ts';
import { type LinearVariant, linear } from '../src/ops/linear.ts';
import { toF16Array } from '../src/util/f16.ts';
import { benchAttention } from './attention.ts';
import { log, q4Bytes, randomQ4Matrix, timeRuns } from './helpers.ts';

/** N × K of the q4 matrices a TroL-1.8B decode step multiplies (wqkv, wo, w1/w3, w2, the head). */
const SHAPES: [number, number][] = [
  [4096, 2048],
  [2048, 2048],
  [8192, 2048],
  [2048, 8192],
  [92544, 2048],
];
const COPY_BYTES = 64 * 2 ** 20;
const GEMM_M = 1289;
const GEMM_M_SMALL = 128;

interface Args {
  json: boolean;
  quick: boolean;
  adapter: AdapterChoice;
  variant: LinearVariant;
  f32: boolean;
}

function parseArgs(argv: string[]): Args {
  const args: Args = { json: false, quick: false, adapter: 'llvmpipe', variant: 'auto', f32: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--json') args.json = true;
    else if (a === '--quick') args.quick = true;
    else if (a === '--f32') args.f32 = true;
    else if (a === '--adapter' || a === '--variant') {
      const v = argv[++i];
      if (a === '--adapter') {
        if (v !== 'llvmpipe' && v !== 'swiftshader' && v !== 'default') throw new Error(`bad --adapter ${v}`);
        args.adapter = v;
      } else {
        if (v !== 'auto' && v !== 'register' && v !== 'tiled') throw new Error(`bad --variant ${v}`);
        args.variant = v;
      }
    } else if (a !== '--') throw new Error(`unknown argument ${a}`);
  }
  return args;
}

async function benchCopy(ctx: GpuContext): Promise<{ gbps: number; ms: number }> {
  const usage = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST;
  const src = await ctx.allocate('bench.copy.src', COPY_BYTES, usage);
  const dst = await ctx.allocate('bench.copy.dst', COPY_BYTES, usage);
  ctx.write(src, new Uint32Array(COPY_BYTES / 4).fill(0x3c003c00));
  const t = await timeRuns(ctx, 'copy', () => copyKernel(ctx, src, dst, COPY_BYTES), { warmup: 2, reps: 9 });
  src.destroy();
  dst.destroy();
  return { gbps: (2 * COPY_BYTES) / (t.ms * 1e6), ms: t.ms };
}

/** Arithmetic peak: 4 vec4 FMA chains per invocation, FMA_ITERS iterations (32 flops each). */
async function benchPeak(ctx: GpuContext, software: boolean): Promise<{ gflops: number; ms: number }> {
  const n = software ? 16384 : 1 << 20;
  const iters = software ? 256 : 1024;
  const out = await ctx.allocate('bench.fma.out', n * 4, GPUBufferUsage.STORAGE);
  const key = { shader: 'copy', entry: 'fma_peak', act: 'f32', constants: { WG: 256, FMA_ITERS: iters } } as const;
  const params = new ArrayBuffer(16);
  new Uint32Array(params, 0, 1)[0] = n;
  new Float32Array(params, 4, 1)[0] = 0.5;
  const t = await timeRuns(
    ctx,
    'fma_peak',
    () =>
      ctx.dispatch({
        label: 'fma_peak',
        key,
        bindings: [out],
        uniforms: new Uint8Array(params),
        workgroups: ctx.grid(Math.ceil(n / 256)),
      }),
    { warmup: 2, reps: 7 },
  );
  out.destroy();
  return { gflops: (n * iters * 32) / (t.ms * 1e6), ms: t.ms };
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const ctx = await GpuContext.create({ adapter: args.adapter, profile: true, forceF32: args.f32 });
  const software = ctx.adapterSummary.software;
  log(`adapter: ${ctx.adapterSummary.vendor} / ${ctx.adapterSummary.device || ctx.adapterSummary.description}`);
  log(`activations ${ctx.act}, variant ${args.variant}, timestamps ${ctx.hasTimestamps}`);

  const copy = await benchCopy(ctx);
  log(`copy: ${copy.gbps.toFixed(2)} GB/s`);
  const peak = await benchPeak(ctx, software);
  log(`fma peak: ${peak.gflops.toFixed(2)} GFLOP/s`);

  const gemv: { n: number; k: number; parts: number; gbps: number; ratio_to_copy: number; ms: number }[] = [];
  const gemm: { m: number; n: number; k: number; gflops: number; ratio_to_peak: number; ms: number }[] = [];
  const m = software || args.quick ? GEMM_M_SMALL : GEMM_M;
  let timingSource = ctx.hasTimestamps ? 'gpu-timestamps' : 'wall-clock';
  for (const [i, [n, k]] of SHAPES.entries()) {
    const w = await randomQ4Matrix(ctx, `W${n}x${k}`, n, k, 1 + i);
    const xv = new Float32Array(m * k).map((_, j) => Math.sin(j * 0.37));
    const x = await createAct(ctx, 'bench.x', [m, k]);
    ctx.write(x.buffer, ctx.act === 'f16' ? toF16Array(xv) : xv);
    const x1 = await createAct(ctx, 'bench.x1', [1, k]);
    ctx.copy(x.buffer, 0, x1.buffer, 0, x1.byteLength);
    const y1 = await createAct(ctx, 'bench.y1', [1, n]);
    const label = `linear:${w.label}`;
    const tv = await timeRuns(ctx, label, () => linear(ctx, x1, w, y1, { variant: args.variant }), { reps: 7 });
    const gbps = q4Bytes(n, k) / (tv.ms * 1e6);
    gemv.push({ n, k, parts: w.parts.length, gbps, ratio_to_copy: gbps / copy.gbps, ms: tv.ms });
    log(
      `gemv ${n}×${k}: ${tv.ms.toFixed(2)} ms, ${gbps.toFixed(3)} GB/s (${((100 * gbps) / copy.gbps).toFixed(1)} % of copy)`,
    );
    if (tv.source === 'wall-clock') timingSource = 'wall-clock';
    y1.destroy();
    x1.destroy();

    const y = await createAct(ctx, 'bench.y', [m, n]);
    const budgetMs = software ? 6000 : 4000;
    const tm = await timeRuns(ctx, label, () => linear(ctx, x, w, y, { variant: args.variant }), {
      reps: software ? 3 : 7,
      budgetMs,
    });
    const gflops = (2 * m * n * k) / (tm.ms * 1e6);
    gemm.push({ m, n, k, gflops, ratio_to_peak: gflops / peak.gflops, ms: tm.ms });
    log(`gemm ${m}×${n}×${k}: ${tm.ms.toFixed(1)} ms, ${gflops.toFixed(2)} GFLOP/s`);
    if (tm.source === 'wall-clock') timingSource = 'wall-clock';
    y.destroy();
    x.destroy();
    destroyMatrix(w);
  }

  const result = {
    adapter: ctx.adapterSummary,
    act: ctx.act,
    variant: args.variant,
    timing: timingSource,
    copy_gbps: copy.gbps,
    gemv,
    gemm,
    gemm_m: m,
    gemm_m_note:
      m === GEMM_M ? 'prefill chunk M = 1289' : `M = ${m} instead of ${GEMM_M} (software adapter or --quick)`,
    fma_gflops: peak.gflops,
    attention: await benchAttention(ctx, { reps: software ? 2 : 5 }),
  };
  if (args.json) {
    process.stdout.write(`${JSON.stringify(result)}\n`);
  } else {
    printTable(result);
  }
  // Let the last timestamp readbacks land: destroying the device under a pending mapAsync rejects it.
  await ctx.finish();
  await new Promise((r) => setTimeout(r, 200));
  ctx.destroy();
}

function printTable(r: {
  adapter: { vendor: string; device: string; description: string; software: boolean };
  act: string;
  variant: string;
  timing: string;
  copy_gbps: number;
  gemv: { n: number; k: number; parts: number; gbps: number; ratio_to_copy: number; ms: number }[];
  gemm: { m: number; n: number; k: number; gflops: number; ratio_to_peak: number; ms: number }[];
  gemm_m_note: string;
  fma_gflops: number;
  attention: { name: string; T: number; past: number; ms: number }[];
}): void {
  const a = r.adapter;
  console.log(`adapter   ${a.vendor} / ${a.device || a.description}${a.software ? ' (software)' : ''}`);
  console.log(`act ${r.act}, variant ${r.variant}, timing ${r.timing}`);
  console.log(`copy      ${r.copy_gbps.toFixed(2)} GB/s`);
  console.log(`fma peak  ${r.fma_gflops.toFixed(2)} GFLOP/s`);
  console.log('\nq4 GEMV (M = 1)      ms        GB/s   of copy   parts');
  for (const g of r.gemv) {
    const shape = `${g.n}×${g.k}`.padEnd(14);
    console.log(
      `  ${shape}${g.ms.toFixed(2).padStart(10)}${g.gbps.toFixed(3).padStart(12)}${`${(100 * g.ratio_to_copy).toFixed(1)} %`.padStart(10)}${String(g.parts).padStart(8)}`,
    );
  }
  console.log(`\nq4 GEMM (${r.gemm_m_note})`);
  console.log('                      ms     GFLOP/s   of peak');
  for (const g of r.gemm) {
    const shape = `${g.m}×${g.n}×${g.k}`.padEnd(18);
    console.log(
      `  ${shape}${g.ms.toFixed(1).padStart(10)}${g.gflops.toFixed(2).padStart(12)}${`${(100 * g.ratio_to_peak).toFixed(1)} %`.padStart(10)}`,
    );
  }
  console.log('\nattention                    T    past          ms');
  for (const a of r.attention) {
    console.log(
      `  ${a.name.padEnd(24)}${String(a.T).padStart(6)}${String(a.past).padStart(8)}${a.ms.toFixed(2).padStart(12)}`,
    );
  }
}

await main();
