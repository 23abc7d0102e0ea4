/**
 * Browser smoke test: the engine Worker through comlink in real Chromium (SwiftShader under the runner).
 * Checks: the Worker finds an adapter (the one the runner expects, with the expected activation dtype), every
 * kernel self-check passes, and a ShapeError thrown in the Worker arrives here as a ShapeError.
 *
 * To add a check, append to `checks`; the runner needs no change. The model checks (goldens, streaming,
 * cancel, device loss) are in model.ts; the driven UI checks in ui-checks.mjs.
 */
import { createEngineWorker, type EngineInfo, ShapeError, TrolError } from '../../src/worker/client.ts';
import { assert, type Check, runChecks } from './harness.ts';

const engine = createEngineWorker({
  onError: (ev) => console.error(`engine worker error: ${ev.message} (${ev.filename}:${ev.lineno})`),
});
let info: EngineInfo | null = null;

const checks: Check[] = [
  {
    name: 'info(): the worker found an adapter',
    async run() {
      info = await engine.info();
      const a = info.adapter;
      assert(typeof a.vendor === 'string' && a.features.length >= 0, 'info() returned no adapter summary');
      assert(a.limits.maxStorageBufferBindingSize > 0, 'adapter summary has no limits');
      return `${a.vendor} / ${a.architecture} / ${a.device || a.description || '-'}; act ${info.act}; software ${a.software}; features [${a.features.join(', ')}]`;
    },
  },
  {
    name: 'the adapter and activation dtype are the expected ones',
    async run(t) {
      assert(info, 'no info (the previous check failed)');
      const want = t.params.get('adapter');
      const text = `${info.adapter.vendor} ${info.adapter.architecture} ${info.adapter.device} ${info.adapter.description}`;
      if (want) assert(text.toLowerCase().includes(want.toLowerCase()), `expected a '${want}' adapter, got '${text}'`);
      const act = t.params.get('act');
      if (act) assert(info.act === act, `expected act ${act}, got ${info.act}`);
      return `adapter '${text.trim()}' matches '${want ?? '*'}', act ${info.act}`;
    },
  },
  {
    name: 'selfCheck()',
    timeoutMs: 180_000,
    async run(t) {
      const results = await engine.selfCheck();
      assert(results.length > 0, 'selfCheck() returned no results');
      for (const r of results) {
        const err = r.error ? `; ${r.error.name}: ${r.error.message}` : '';
        t.sub(r.name, r.ok, `max abs err ${r.maxAbsErr.toExponential(2)} at index ${r.worstIndex}${err}`, r.ms);
      }
      return `${results.filter((r) => r.ok).length} of ${results.length} kernels match their CPU reference`;
    },
  },
  {
    name: "failOnPurpose('shape'): a ShapeError crosses the worker boundary typed",
    async run() {
      let caught: unknown = null;
      try {
        await engine.failOnPurpose('shape');
      } catch (e) {
        caught = e;
      }
      assert(caught !== null, 'failOnPurpose did not throw');
      assert(
        caught instanceof ShapeError,
        `not a ShapeError: ${Object.prototype.toString.call(caught)} ${String(caught)}`,
      );
      assert(caught instanceof TrolError, 'not a TrolError');
      assert(caught.name === 'ShapeError', `name is '${caught.name}'`);
      assert(caught.kind === 'input', `kind is '${caught.kind}'`);
      assert(caught.message.includes('[2, 3]'), `message lost: '${caught.message}'`);
      assert(JSON.stringify(caught.details) === JSON.stringify({ expected: [2, 4], got: [2, 3] }), 'details lost');
      return `${caught.name}: ${caught.message}`;
    },
  },
];

void runChecks(checks);
