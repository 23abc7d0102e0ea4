/**
 * Golden verification: run a checkpoint on this machine's GPU and compare every intermediate with goldens
 * from an independent reference (the tiny-trol fixture layout: golden/index.json + *.bin).
 * Used by `trol verify`, by the test suite (Node, lavapipe/SwiftShader) and by the browser test (Worker).
 *
 * Tolerances (from the fixture README): f32 activations: |Δ| ≤ 1e-3 · max(1, max|golden|);
 * f16 activations: 0.07 on logits, 0.05 on hidden states and gates; ids and the resized image exact (≤ 1 LSB).
 * q4 weights are lossy by design: their float checks are reported (`informational`) rather than gated.
 */
import type { GenerateRequest, RgbImage, TrolEngine } from '../engine.ts';
import type { ModelFiles } from '../weights/byte-source.ts';

export interface GoldenCheck {
  name: string;
  pass: boolean;
  maxAbs: number;
  tol: number;
  worst: number;
  informational?: boolean;
  note?: string;
}

interface GoldenEntry {
  name: string;
  file: string;
  shape: number[];
  dtype: 'int32' | 'float32' | 'uint8';
}

export interface GoldenSet {
  index: {
    img: { question: string };
    txt: { question: string };
    max_new_tokens: number;
    files: GoldenEntry[];
  };
  read(name: string): Promise<Float32Array | Int32Array | Uint8Array>;
  has(name: string): boolean;
}

export async function openGoldens(files: ModelFiles): Promise<GoldenSet> {
  const src = await files.get('index.json');
  if (!src) throw new Error('golden folder has no index.json');
  const index = JSON.parse(new TextDecoder().decode(await src.read(0, await src.size())));
  const byName = new Map<string, GoldenEntry>(index.files.map((f: GoldenEntry) => [f.name, f]));
  return {
    index,
    has: (name) => byName.has(name),
    async read(name) {
      const e = byName.get(name);
      if (!e) throw new Error(`no golden '${name}'`);
      const s = await files.get(e.file);
      if (!s) throw new Error(`golden file ${e.file} missing`);
      const bytes = await s.read(0, await s.size());
      const buf = bytes.slice().buffer;
      if (e.dtype === 'int32') return new Int32Array(buf);
      if (e.dtype === 'uint8') return new Uint8Array(buf);
      return new Float32Array(buf);
    },
  };
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): { maxAbs: number; worst: number } {
  if (a.length !== b.length) return { maxAbs: Number.POSITIVE_INFINITY, worst: -1 };
  let maxAbs = 0;
  let worst = -1;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i] - b[i]);
    if (!(d <= maxAbs)) {
      maxAbs = Number.isNaN(d) ? Number.POSITIVE_INFINITY : d;
      worst = i;
    }
  }
  return { maxAbs, worst };
}

function maxAbs(a: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]));
  return m;
}

export interface VerifyOptions {
  /** Which prompt cases to run (default both). */
  cases?: ('img' | 'txt')[];
  /** Check the *_gatelast goldens instead of the per-layer ones (engine must use gateMode 'last'). */
  gateLast?: boolean;
  log?: (c: GoldenCheck) => void;
}

/** Run the goldens on `engine`; `image` is the decoded golden/image.png. */
export async function verifyGoldens(
  engine: TrolEngine,
  golden: GoldenSet,
  image: RgbImage,
  opts: VerifyOptions = {},
): Promise<GoldenCheck[]> {
  const checks: GoldenCheck[] = [];
  const f16 = engine.ctx.act === 'f16';
  const q4 = engine.weights.mode === 'q4';
  const push = (c: GoldenCheck) => {
    checks.push(c);
    opts.log?.(c);
  };
  const floatCheck = async (name: string, actual: ArrayLike<number> | undefined, kind: 'hidden' | 'logits') => {
    if (!golden.has(name) || !actual) return;
    const g = (await golden.read(name)) as Float32Array;
    const { maxAbs: m, worst } = maxAbsDiff(actual, g);
    const scale = Math.max(1, maxAbs(g));
    const tol = f16 ? (kind === 'logits' ? 0.07 : 0.05) : 1e-3 * scale;
    push({ name, pass: m <= tol, maxAbs: m, tol, worst, informational: q4 || undefined });
  };
  const exactCheck = async (name: string, actual: ArrayLike<number>, tol = 0) => {
    const g = await golden.read(name);
    const { maxAbs: m, worst } = maxAbsDiff(actual, g);
    push({ name, pass: m <= tol, maxAbs: m, tol, worst, informational: (q4 && name.includes('gen_ids')) || undefined });
  };

  for (const which of opts.cases ?? ['img', 'txt']) {
    const hasImage = which === 'img';
    const question = golden.index[which].question;
    const promptIds = engine.promptIds(question, hasImage);
    if (!opts.gateLast) await exactCheck(`${which}_prompt_ids`, promptIds);
    const steps = golden.index.max_new_tokens;
    const debug: NonNullable<GenerateRequest['debug']> = {};
    const result = await engine.complete({
      question,
      image: hasImage ? image : null,
      maxNewTokens: steps,
      temperature: 0,
      keepLogits: true,
      debug,
    });
    if (opts.gateLast) {
      if (which === 'img') {
        await floatCheck('img_prefill_logits_last_gatelast', result.logits[0], 'logits');
        await exactCheck('img_gen_ids_gatelast', result.generatedIds);
      }
      continue;
    }
    if (hasImage) {
      await exactCheck('img_resized_u8', debug.resized ?? [], 1);
      await exactCheck('img_pixel_values', debug.pixels ?? [], 1e-6); // CPU float32 arithmetic: ≤ 1 ulp
      await floatCheck('img_vision_out', debug.visionOut, 'hidden');
      await floatCheck('img_proj_out', debug.projOut, 'hidden');
    }
    await floatCheck(`${which}_embeds`, debug.embeds, 'hidden');
    await floatCheck(`${which}_layer0_h1`, debug.layer0H1, 'hidden');
    await floatCheck(`${which}_layer0_h2`, debug.layer0H2, 'hidden');
    await floatCheck(`${which}_layer0_gate`, debug.layer0Gate, 'hidden');
    await floatCheck(`${which}_layer0_y`, debug.layer0Y, 'hidden');
    await floatCheck(`${which}_layer0_k`, debug.layer0K, 'hidden');
    await floatCheck(`${which}_layer0_v`, debug.layer0V, 'hidden');
    await floatCheck(`${which}_gates`, concat(result.gates), 'hidden');
    await floatCheck(`${which}_layers_y`, debug.layersY, 'hidden');
    await floatCheck(`${which}_prefill_logits_last`, result.logits[0], 'logits');
    await exactCheck(`${which}_gen_ids`, result.generatedIds);
    // Teacher-forced decode logits: feed the golden ids so a divergent greedy choice cannot skew the rows.
    const goldIds = Array.from((await golden.read(`${which}_gen_ids`)) as Int32Array);
    const forced = await teacherForce(engine, question, hasImage ? image : null, goldIds);
    await floatCheck(`${which}_gen_logits`, forced, 'logits');
  }
  return checks;
}

/** Logits row k after feeding goldIds[0..k−1] (row 0 = prefill). */
export async function teacherForce(
  engine: TrolEngine,
  question: string,
  image: RgbImage | null,
  goldIds: number[],
): Promise<Float32Array> {
  await engine.complete({ question, image, maxNewTokens: 1, temperature: 0 });
  const V = engine.cfg.vocabSize;
  const out = new Float32Array(goldIds.length * V);
  out.set(await engine.model.readLogits(), 0);
  for (let k = 1; k < goldIds.length; k++) {
    await engine.model.decode(goldIds[k - 1]);
    out.set(await engine.model.readLogits(), k * V);
  }
  return out;
}

function concat(rows: Float32Array[]): Float32Array {
  const n = rows.reduce((a, r) => a + r.length, 0);
  const out = new Float32Array(n);
  let o = 0;
  for (const r of rows) {
    out.set(r, o);
    o += r.length;
  }
  return out;
}
