/**
 * Demo page: what the engine Worker found (adapter, features, limits, activation dtype) and the kernel
 * self-check as a table. The UI thread never touches WebGPU: everything comes from the Worker through
 * comlink, and failures arrive as typed errors (`e.name` is the TrolError subclass).
 */
import {
  createEngineWorker,
  type EngineInfo,
  type SelfCheckResult,
  TrolError,
  WebGPUUnavailableError,
} from '../worker/client.ts';
import { registerServiceWorker } from './register-sw.ts';

type Child = Node | string;

/** A tiny element builder; text always goes in as text, never as HTML. */
function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Record<string, string> = {},
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
  el.append(...children);
  return el;
}

function byId<T extends HTMLElement>(id: string): T {
  const el = document.getElementById(id);
  if (!el) throw new Error(`demo: #${id} is missing from index.html`);
  return el as T;
}

function formatBytes(n: number): string {
  if (!Number.isFinite(n)) return String(n);
  const units = ['bytes', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let u = 0;
  while (v >= 1024 && u < units.length - 1 && v % 1024 === 0) {
    v /= 1024;
    u++;
  }
  return `${v.toLocaleString('en')} ${units[u]}`;
}

function formatError(x: number): string {
  if (Number.isNaN(x)) return 'NaN';
  if (x === 0) return '0';
  return x.toExponential(2);
}

const status = byId<HTMLParagraphElement>('status');
const errorBox = byId<HTMLDivElement>('error');
const runButton = byId<HTMLButtonElement>('run-selfcheck');

function setStatus(text: string): void {
  status.textContent = text;
}

function showError(e: unknown): void {
  const err = e instanceof Error ? e : new Error(String(e));
  const hint =
    err instanceof WebGPUUnavailableError
      ? 'This browser does not offer WebGPU to workers here. Try a current Chrome or Edge (113+), Safari 26+, or ' +
        'Firefox 141+ on Windows; on Linux, Chrome may need chrome://flags/#enable-unsafe-webgpu and Vulkan. ' +
        'The page must be served over https or from localhost.'
      : err instanceof TrolError && err.kind === 'input'
        ? 'The request was rejected before any GPU work ran.'
        : '';
  errorBox.replaceChildren(
    h('p', { class: 'error-name' }, err.name),
    h('p', {}, err.message),
    ...(hint ? [h('p', { class: 'hint' }, hint)] : []),
  );
  errorBox.hidden = false;
}

function renderAdapter(info: EngineInfo): void {
  const a = info.adapter;
  const rows: [string, string][] = [
    ['Vendor', a.vendor || '(not reported)'],
    ['Architecture', a.architecture || '(not reported)'],
    ['Device', a.device || '(not reported)'],
    ['Description', a.description || '(not reported)'],
    ['Implementation', a.software ? 'software (runs on the CPU: correct, but slow)' : 'hardware GPU'],
    ['Activation dtype', info.act === 'f16' ? 'f16 (half precision storage)' : 'f32 (no shader-f16 on this device)'],
  ];
  byId('adapter').replaceChildren(...rows.map(([k, v]) => h('div', {}, h('dt', {}, k), h('dd', {}, v))));

  const wanted: [string, string][] = [
    ['shader-f16', 'half-precision activations: half the memory traffic'],
    ['subgroups', 'faster reductions (norms, attention, sampling)'],
    ['timestamp-query', 'per-kernel GPU timings'],
  ];
  byId('features').replaceChildren(
    ...wanted.map(([name, why]) => {
      const has = a.features.includes(name);
      return h(
        'li',
        { class: has ? 'yes' : 'no' },
        h('span', { class: 'mark', 'aria-hidden': 'true' }, has ? '✓' : '✗'),
        h('code', {}, name),
        ` ${has ? 'available' : 'not available'} — ${why}`,
      );
    }),
  );

  const limits: [string, boolean, string][] = [
    ['maxStorageBufferBindingSize', true, 'largest weight block one kernel can read (bigger matrices are split)'],
    ['maxBufferSize', true, 'largest single GPU buffer'],
    ['maxComputeInvocationsPerWorkgroup', false, 'threads per workgroup'],
    ['maxComputeWorkgroupStorageSize', true, 'shared memory per workgroup'],
    ['maxComputeWorkgroupsPerDimension', false, 'dispatch grid size'],
    ['maxStorageBuffersPerShaderStage', false, 'buffers one kernel can bind'],
  ];
  byId('limits')
    .querySelector('tbody')!
    .replaceChildren(
      ...limits.map(([name, bytes, why]) => {
        const v = a.limits[name];
        const text = v === undefined ? '—' : bytes ? formatBytes(v) : v.toLocaleString('en');
        return h(
          'tr',
          {},
          h('th', { scope: 'row' }, h('code', {}, name)),
          h('td', { class: 'num' }, text),
          h('td', {}, why),
        );
      }),
    );
}

function renderSelfCheck(results: SelfCheckResult[]): void {
  const body = byId('selfcheck').querySelector('tbody')!;
  body.replaceChildren(
    ...results.map((r) => {
      const result = h(
        'td',
        { class: r.ok ? 'pass' : 'fail' },
        h('span', { 'aria-hidden': 'true' }, r.ok ? '✓ ' : '✗ '),
        r.ok ? 'pass' : 'FAIL',
      );
      if (r.error) result.append(h('div', { class: 'detail' }, `${r.error.name}: ${r.error.message}`));
      return h(
        'tr',
        {},
        h('th', { scope: 'row' }, r.name),
        result,
        h('td', { class: 'num' }, formatError(r.maxAbsErr)),
        h('td', { class: 'num' }, r.worstIndex < 0 ? '—' : String(r.worstIndex)),
        h('td', { class: 'num' }, r.ms.toFixed(1)),
      );
    }),
  );
  const failed = results.filter((r) => !r.ok).length;
  byId('selfcheck-summary').textContent =
    failed === 0
      ? `All ${results.length} kernels agree with the CPU reference.`
      : `${failed} of ${results.length} kernels disagree with the CPU reference on this device.`;
}

async function main(): Promise<void> {
  registerServiceWorker();
  const engine = createEngineWorker({
    onError: (ev) => {
      showError(new TrolError(`The engine worker failed to start: ${ev.message || 'script error'}`));
      setStatus('The engine worker failed to start.');
    },
  });

  async function selfCheck(): Promise<void> {
    runButton.disabled = true;
    setStatus('Running the kernel self-check…');
    byId('selfcheck-summary').textContent = 'Running…';
    try {
      const results = await engine.selfCheck();
      renderSelfCheck(results);
      const failed = results.filter((r) => !r.ok).length;
      setStatus(failed === 0 ? 'Ready: every kernel passed its self-check.' : `${failed} kernel self-check(s) failed.`);
    } catch (e) {
      showError(e);
      setStatus('The self-check could not run.');
      byId('selfcheck-summary').textContent = 'Not run.';
    } finally {
      runButton.disabled = false;
    }
  }
  runButton.addEventListener('click', () => void selfCheck());

  try {
    setStatus('Asking the worker for a WebGPU adapter…');
    renderAdapter(await engine.info());
  } catch (e) {
    showError(e);
    setStatus(e instanceof WebGPUUnavailableError ? 'WebGPU is not available here.' : 'The engine could not start.');
    byId('adapter').replaceChildren(h('div', {}, h('dt', {}, 'Status'), h('dd', {}, 'no adapter')));
    // Nothing to show without a device: keep the page to the error and the adapter status.
    for (const id of ['features', 'limits', 'selfcheck']) {
      const section = byId(id).closest('section');
      if (section) section.hidden = true;
    }
    return;
  }
  await selfCheck();
}

void main();
