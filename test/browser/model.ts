/**
 * The model in the engine Worker, through comlink, in real Chromium (SwiftShader under the runner: f32 only).
 *
 *  - the golden test: `verifyGoldens` runs src/verify/golden.ts inside the Worker on the fixture served by the
 *    dev server (test/fixtures/tiny-trol and its golden/), f32 weights and activations; every check must pass;
 *  - loading with progress; a streamed generation whose tokens arrive one by one through the proxy callback
 *    and concatenate to the final text, with the golden's greedy ids; an image question (PNG Blob decoded in
 *    the Worker); a follow-up turn;
 *  - Stop: cancel mid-generation → GenerationCancelledError arrives typed, and the next generate equals a
 *    fresh run; a lost device → DeviceLostError (reload path), and reloading works; typed input errors.
 */
import {
  ArgumentError,
  createEngineWorker,
  DeviceLostError,
  GenerationCancelledError,
  generate,
  ImageDecodeError,
  type LoadProgressEvent,
  loadModel,
  type ResultSummary,
  type TokenEventWire,
  TrolError,
  verifyGoldens,
} from '../../src/worker/client.ts';
import { assert, type Check, runChecks } from './harness.ts';

const MODEL = '../fixtures/tiny-trol/';
const GOLDEN = '../fixtures/tiny-trol/golden/';

const engine = createEngineWorker({
  onError: (ev) => console.error(`engine worker error: ${ev.message} (${ev.filename}:${ev.lineno})`),
});

interface GoldenIndex {
  max_new_tokens: number;
  img: { question: string; generated_text: string };
  txt: { question: string; generated_text: string };
}

async function fetchOk(url: string): Promise<Response> {
  const r = await fetch(url);
  assert(r.ok, `GET ${url}: HTTP ${r.status}`);
  return r;
}

const golden = {
  index: null as GoldenIndex | null,
  async load(): Promise<GoldenIndex> {
    this.index ??= (await (await fetchOk(`${GOLDEN}index.json`)).json()) as GoldenIndex;
    return this.index;
  },
  async ids(name: string): Promise<number[]> {
    return Array.from(new Int32Array(await (await fetchOk(`${GOLDEN}${name}.bin`)).arrayBuffer()));
  },
};

function same(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

function firstDiff(a: readonly number[], b: readonly number[]): string {
  if (same(a, b)) return `identical (${a.length} ids)`;
  const i = a.findIndex((x, k) => x !== b[k]);
  return `lengths ${a.length}/${b.length}, first difference at ${i < 0 ? Math.min(a.length, b.length) : i}`;
}

async function expectThrows<T extends Error>(
  what: string,
  fn: () => Promise<unknown>,
  cls: abstract new (...args: never[]) => T,
): Promise<T> {
  let caught: unknown = null;
  try {
    await fn();
  } catch (e) {
    caught = e;
  }
  assert(caught !== null, `${what}: did not throw`);
  assert(
    caught instanceof cls,
    `${what}: expected ${cls.name}, got ${(caught as Error)?.name}: ${(caught as Error)?.message}`,
  );
  return caught as T;
}

/** A streamed run: every callback with its arrival time, and the result with its arrival time. */
async function streamed(req: Parameters<typeof generate>[1], onEach?: (e: TokenEventWire, n: number) => void) {
  const events: { e: TokenEventWire; at: number }[] = [];
  const t0 = performance.now();
  const result = await generate(engine, req, (e) => {
    events.push({ e, at: performance.now() });
    onEach?.(e, events.length);
  });
  return { events, result, doneAt: performance.now(), t0 };
}

let fresh: ResultSummary | null = null;

const checks: Check[] = [
  {
    name: 'verifyGoldens in the worker: f32 weights + f32 activations, every golden check passes',
    timeoutMs: 150_000,
    async run(t) {
      const checks = await verifyGoldens(engine, GOLDEN, MODEL, { weights: 'f32', forceF32: true });
      for (const c of checks) {
        t.sub(
          c.name,
          c.pass,
          `max|Δ| ${c.maxAbs.toExponential(2)} tol ${c.tol.toExponential(2)} worst ${c.worst}${c.note ? ` (${c.note})` : ''}`,
        );
      }
      assert(checks.length >= 30, `only ${checks.length} golden checks ran`);
      return `${checks.filter((c) => c.pass).length} of ${checks.length} golden checks pass`;
    },
  },
  {
    name: "verifyGoldens in the worker: gate mode 'last' matches the *_gatelast goldens",
    timeoutMs: 60_000,
    async run(t) {
      const checks = await verifyGoldens(engine, GOLDEN, MODEL, { weights: 'f32', gateLast: true, cases: ['img'] });
      for (const c of checks)
        t.sub(c.name, c.pass, `max|Δ| ${c.maxAbs.toExponential(2)} tol ${c.tol.toExponential(2)}`);
      assert(checks.length === 2, `expected 2 gatelast checks, got ${checks.map((c) => c.name).join(', ')}`);
      return checks.map((c) => c.name).join(', ');
    },
  },
  {
    name: 'loadModel(url): progress reaches the page, the model info is right',
    timeoutMs: 60_000,
    async run() {
      const progress: LoadProgressEvent[] = [];
      const info = await loadModel(engine, { kind: 'url', baseUrl: MODEL }, { weights: 'f32' }, (p) =>
        progress.push(p),
      );
      const phases = [...new Set(progress.map((p) => p.phase))];
      assert(
        JSON.stringify(phases) === JSON.stringify(['device', 'files', 'weights', 'model', 'ready']),
        `phases ${phases.join(' → ')}`,
      );
      const w = progress.filter((p) => p.phase === 'weights');
      const last = w[w.length - 1];
      assert(last.loaded === last.total && last.total > 10, `last weight event ${last.loaded}/${last.total}`);
      assert(progress[progress.length - 1].phase === 'ready', 'progress did not end with ready');
      assert(info.numLayers === 2 && info.hiddenSize === 64 && info.imageTokens === 16, JSON.stringify(info));
      assert(info.weights === 'f32' && info.imageTokenId === 640, JSON.stringify(info));
      assert((await engine.modelInfo())?.source === info.source, 'modelInfo() differs from loadModel()');
      return `${progress.length} progress events (${w.length} weight events of ${last.total} tensors); act ${info.act}; ${info.source}`;
    },
  },
  {
    name: 'generate: tokens stream one by one through the comlink proxy and equal the final text and golden ids',
    timeoutMs: 60_000,
    async run(t) {
      const g = await golden.load();
      const { events, result, doneAt } = await streamed({
        question: g.txt.question,
        maxNewTokens: g.max_new_tokens,
        temperature: 0,
      });
      fresh = result;
      const ids = events.map((x) => x.e.id).filter((id) => id >= 0);
      t.sub(
        'one callback per generated token, in order',
        same(ids, result.ids) && events.every((x, i) => x.e.index === i),
        `${events.length} callbacks for ${result.ids.length} ids`,
      );
      const text = events.map((x) => x.e.text).join('');
      t.sub('concatenated token texts equal the final text', text === result.text, JSON.stringify(text.slice(0, 40)));
      t.sub(
        'tokens arrive while generating (before the result)',
        events.length > 1 && events[0].at < doneAt && events.every((x) => x.at <= doneAt),
        `first token ${Math.round(doneAt - events[0].at)} ms before the result`,
      );
      const want = await golden.ids('txt_gen_ids');
      t.sub('greedy ids equal the golden txt_gen_ids', same(result.ids, want), firstDiff(result.ids, want));
      t.sub('text equals the golden generated_text', result.text === g.txt.generated_text, JSON.stringify(result.text));
      const L = result.gates.length;
      const T = result.promptIds.length;
      const inRange = result.gates.every((row) => row.length === T && row.every((s) => s > 0 && s < 1));
      t.sub('gates are [layers][prompt tokens] in (0, 1)', L === 2 && T === 137 && inRange, `${L} × ${T}`);
      t.sub(
        'prompt pieces and timings come back',
        result.promptPieces.length === T &&
          result.timings.prefillTokensPerSecond > 0 &&
          result.timings.newTokens === 24,
        `prefill ${result.timings.prefillTokensPerSecond.toFixed(0)} tok/s, decode ${result.timings.decodeTokensPerSecond.toFixed(1)} tok/s`,
      );
      return `${result.ids.length} tokens, stop ${result.stopReason}`;
    },
  },
  {
    name: 'generate with a PNG Blob (decoded in the worker) gives the golden image answer; a follow-up continues',
    timeoutMs: 60_000,
    async run(t) {
      const g = await golden.load();
      const png = await (await fetchOk(`${GOLDEN}image.png`)).blob();
      const r = await generate(engine, { question: g.img.question, image: png, maxNewTokens: g.max_new_tokens });
      const want = await golden.ids('img_gen_ids');
      t.sub('greedy ids equal the golden img_gen_ids', same(r.ids, want), firstDiff(r.ids, want));
      const nImage = r.promptIds.filter((id) => id === r.imageTokenId).length;
      t.sub('16 image tokens in the prompt', nImage === 16 && r.gates[0].length === r.promptIds.length, `${nImage}`);
      const f = await generate(engine, { question: 'And the colours?', conversation: 'continue', maxNewTokens: 6 });
      t.sub(
        "follow-up ('continue') feeds only the new turn",
        f.promptIds.length > 5 && f.promptIds.length < 40 && !f.promptIds.includes(r.imageTokenId) && f.ids.length > 0,
        `${f.promptIds.length} new prompt tokens, ${f.ids.length} generated`,
      );
      await expectThrows(
        'a follow-up with an image',
        () => generate(engine, { question: 'x', image: png, conversation: 'continue', maxNewTokens: 2 }),
        ArgumentError,
      );
      return `${r.ids.length} tokens; follow-up ${JSON.stringify(f.text)}`;
    },
  },
  {
    name: 'cancel() mid-generation: GenerationCancelledError arrives typed; the next generate equals a fresh run',
    timeoutMs: 60_000,
    async run(t) {
      assert(fresh, 'no fresh run (an earlier check failed)');
      const g = await golden.load();
      let cancelledAt = -1;
      const events: TokenEventWire[] = [];
      const err = await expectThrows(
        'a cancelled generation',
        () =>
          generate(engine, { question: g.txt.question, maxNewTokens: 400 }, (e) => {
            events.push(e);
            if (events.length === 2) {
              cancelledAt = events.length;
              void engine.cancel();
            }
          }),
        GenerationCancelledError,
      );
      t.sub(
        'typed: GenerationCancelledError, a TrolError of kind cancelled',
        err instanceof TrolError && err.name === 'GenerationCancelledError' && err.kind === 'cancelled',
        `${err.name} (${err.kind}): ${err.message}`,
      );
      t.sub('stopped mid-generation', cancelledAt === 2 && events.length < 400, `${events.length} tokens arrived`);
      const again = await generate(engine, { question: g.txt.question, maxNewTokens: g.max_new_tokens });
      t.sub('the next generate equals a fresh run', same(again.ids, fresh.ids), firstDiff(again.ids, fresh.ids));
      const f = await generate(engine, { question: 'More?', conversation: 'continue', maxNewTokens: 2 });
      t.sub('and can be followed up', f.ids.length > 0, `${f.promptIds.length} prompt tokens`);
      return `cancelled after ${events.length} tokens`;
    },
  },
  {
    name: 'typed input errors: bad sampling, bad image, missing model',
    async run() {
      const a = await expectThrows(
        'temperature -1',
        () => generate(engine, { question: 'x', temperature: -1, maxNewTokens: 2 }),
        ArgumentError,
      );
      const b = await expectThrows(
        'an RGB image of the wrong size',
        () =>
          generate(engine, { question: 'x', image: { data: new Uint8Array(5), width: 2, height: 2 }, maxNewTokens: 2 }),
        ImageDecodeError,
      );
      const c = await expectThrows(
        'an undecodable image Blob',
        () => generate(engine, { question: 'x', image: new Blob([new Uint8Array([1, 2, 3])], { type: 'image/png' }) }),
        ImageDecodeError,
      );
      const d = await expectThrows(
        'a model URL that does not exist',
        () => loadModel(engine, { kind: 'url', baseUrl: '../fixtures/no-such-model/' }, { weights: 'f32' }),
        TrolError,
      );
      return [a, b, c, d].map((e) => `${e.name}: ${e.message}`).join(' | ');
    },
  },
  {
    name: 'a lost GPU device reaches the page as DeviceLostError (reload path); reloading the model works',
    timeoutMs: 60_000,
    async run(t) {
      assert(fresh, 'no fresh run (an earlier check failed)');
      const g = await golden.load();
      await loadModel(engine, { kind: 'url', baseUrl: MODEL }, { weights: 'f32' });
      await engine.failOnPurpose('device-lost');
      const err = await expectThrows(
        'generate after the device was lost',
        () => generate(engine, { question: g.txt.question, maxNewTokens: 2 }),
        DeviceLostError,
      );
      t.sub('typed DeviceLostError with details.reloadModel', err.details.reloadModel === true, err.message);
      t.sub('the model is gone', (await engine.modelInfo()) === null, '');
      await expectThrows('generate with no model', () => generate(engine, { question: 'x' }), ArgumentError);
      await loadModel(engine, { kind: 'url', baseUrl: MODEL }, { weights: 'f32' });
      const r = await generate(engine, { question: g.txt.question, maxNewTokens: g.max_new_tokens });
      t.sub('after reloading, the answer equals a fresh run', same(r.ids, fresh.ids), firstDiff(r.ids, fresh.ids));
      const info = await engine.info();
      return `${err.name}: ${err.message}; new device act ${info.act}`;
    },
  },
  {
    name: "loadModel({kind: 'files'}): picked File objects load the same model",
    timeoutMs: 60_000,
    async run() {
      assert(fresh, 'no fresh run (an earlier check failed)');
      const g = await golden.load();
      const names = ['config.json', 'model.safetensors', 'trol_gating.pt', 'tokenizer.model', 'added_tokens.json'];
      const files = await Promise.all(
        names.map(async (n) => new File([await (await fetchOk(`${MODEL}${n}`)).blob()], n)),
      );
      const info = await loadModel(engine, { kind: 'files', files }, { weights: 'f32' });
      assert(info.source === '5 local files', `source ${info.source}`);
      const r = await generate(engine, { question: g.txt.question, maxNewTokens: g.max_new_tokens });
      assert(same(r.ids, fresh.ids), `ids differ from the URL-loaded model: ${firstDiff(r.ids, fresh.ids)}`);
      return `${info.source}: ${firstDiff(r.ids, fresh.ids)}`;
    },
  },
  {
    name: 'unloadModel(): the next generate is a typed ArgumentError',
    async run() {
      await engine.unloadModel();
      const e = await expectThrows('generate after unload', () => generate(engine, { question: 'x' }), ArgumentError);
      return `${e.name}: ${e.message}`;
    },
  },
];

void runChecks(checks);
