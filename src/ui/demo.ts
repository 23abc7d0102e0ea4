/**
 * The demo page: load a model (the built-in tiny test model, a URL, or a local folder), ask questions about an
 * image with the answer streamed token by token, stop, follow up, and look at how TroL traversed its layers.
 * Below, collapsed: what the engine Worker found (adapter, features, limits) and the kernel self-check.
 *
 * The UI thread never touches WebGPU: everything runs in the engine Worker behind comlink
 * (src/worker/client.ts), and failures arrive as typed errors (`e.name` is the TrolError subclass).
 */
import {
  createEngineWorker,
  DeviceLostError,
  type EngineInfo,
  GenerationCancelledError,
  generate,
  loadModel,
  type ModelInfo,
  type ModelSource,
  type ResultSummary,
  type SelfCheckResult,
  StorageQuotaError,
  TrolError,
  WebGPUUnavailableError,
  type WeightMode,
} from '../worker/client.ts';
import { acceptImageDrops, byId, firstImage, h } from './dom.ts';
import { formatBytes, formatError, formatProgress, formatTimings } from './format.ts';
import { GateHeatmap, gateGradientCss, layerMeans } from './heatmap.ts';
import { registerServiceWorker } from './register-sw.ts';

/** The built-in model: public/models/tiny-trol/ (random weights; see test/fixtures/tiny-trol/README.md). */
const EMBEDDED_MODEL = './models/tiny-trol/';

const status = byId<HTMLParagraphElement>('status');
const errorBox = byId<HTMLDivElement>('error');
const runButton = byId<HTMLButtonElement>('run-selfcheck');
const modelForm = byId<HTMLFormElement>('model-form');
const loadButton = byId<HTMLButtonElement>('load');
const unloadButton = byId<HTMLButtonElement>('unload');
const urlInput = byId<HTMLInputElement>('model-url');
const folderInput = byId<HTMLInputElement>('model-folder');
const weightsSelect = byId<HTMLSelectElement>('weights');
const gateSelect = byId<HTMLSelectElement>('gate-mode');
const forceF32Box = byId<HTMLInputElement>('force-f32');
const progressBox = byId<HTMLDivElement>('load-progress');
const progressBar = byId<HTMLProgressElement>('load-bar');
const progressText = byId<HTMLSpanElement>('load-text');
const modelInfoBox = byId<HTMLDListElement>('model-info');
const askForm = byId<HTMLFormElement>('ask-form');
const question = byId<HTMLTextAreaElement>('question');
const sendButton = byId<HTMLButtonElement>('send');
const stopButton = byId<HTMLButtonElement>('stop');
const newButton = byId<HTMLButtonElement>('new-conversation');
const conversationState = byId<HTMLSpanElement>('conversation-state');
const transcript = byId<HTMLOListElement>('transcript');
const timings = byId<HTMLParagraphElement>('timings');
const dropZone = byId<HTMLDivElement>('drop-zone');
const imageInput = byId<HTMLInputElement>('image-input');
const imagePreview = byId<HTMLImageElement>('image-preview');
const imageHint = byId<HTMLParagraphElement>('image-hint');
const imageClear = byId<HTMLButtonElement>('image-clear');

const heatmap = new GateHeatmap(byId<HTMLCanvasElement>('heatmap'), byId('heatmap-readout'));
byId('legend-bar').style.background = gateGradientCss();

const state = {
  engineReady: false,
  model: null as ModelInfo | null,
  loading: false,
  generating: false,
  /** The engine holds a conversation that the next question continues. */
  conversation: false,
  image: null as File | null,
  imageUrl: null as string | null,
};

function setStatus(text: string): void {
  status.textContent = text;
}

function clearError(): void {
  errorBox.hidden = true;
  errorBox.replaceChildren();
}

function hintFor(err: Error): string {
  if (err instanceof WebGPUUnavailableError) {
    return (
      'This browser does not offer WebGPU to workers here. Try a current Chrome or Edge (113+), Safari 26+, or ' +
      'Firefox 141+ on Windows; on Linux, Chrome may need chrome://flags/#enable-unsafe-webgpu and Vulkan. ' +
      'The page must be served over https or from localhost.'
    );
  }
  if (err instanceof DeviceLostError) {
    return 'The GPU device was lost (a driver reset, or the GPU was needed elsewhere). Press “Load model” to load it again.';
  }
  if (err instanceof StorageQuotaError) return 'The browser storage is full: free some space, or load without caching.';
  if (err instanceof TrolError && err.kind === 'input') return 'The request was rejected before any GPU work ran.';
  return '';
}

function showError(e: unknown): void {
  const err = e instanceof Error ? e : new Error(String(e));
  const hint = hintFor(err);
  errorBox.replaceChildren(
    h('p', { class: 'error-name' }, err.name),
    h('p', {}, err.message),
    ...(hint ? [h('p', { class: 'hint' }, hint)] : []),
  );
  errorBox.hidden = false;
}

function updateControls(): void {
  const busy = state.loading || state.generating;
  loadButton.disabled = !state.engineReady || busy;
  unloadButton.disabled = !state.model || busy;
  sendButton.disabled = !state.model || busy;
  stopButton.disabled = !state.generating;
  newButton.disabled = state.generating;
  conversationState.textContent = !state.model
    ? 'Load a model to ask questions.'
    : state.conversation
      ? 'Your next question follows up in this conversation.'
      : state.image
        ? 'Your next question starts a new conversation about this image.'
        : 'Your next question starts a new conversation (no image).';
}

// ---- adapter report and kernel self-check ----

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
  // A failing kernel is worth seeing without digging.
  if (failed > 0) byId<HTMLDetailsElement>('device-details').open = true;
}

// ---- model loading ----

function selectedSource(): string {
  return (modelForm.querySelector('input[name="source"]:checked') as HTMLInputElement | null)?.value ?? 'embedded';
}

function sourceFromForm(): ModelSource {
  switch (selectedSource()) {
    case 'url': {
      const url = urlInput.value.trim();
      if (!url) throw new TrolError('Enter the model’s base URL (the folder that holds config.json).');
      return { kind: 'url', baseUrl: url };
    }
    case 'folder': {
      const files = Array.from(folderInput.files ?? []);
      if (files.length === 0) throw new TrolError('Choose the model folder first.');
      if (!files.some((f) => f.name === 'config.json')) {
        throw new TrolError('That folder has no config.json: choose the folder that holds the model files.');
      }
      return { kind: 'files', files };
    }
    default:
      return { kind: 'url', baseUrl: EMBEDDED_MODEL };
  }
}

function renderModelInfo(info: ModelInfo | null): void {
  modelInfoBox.hidden = !info;
  if (!info) {
    modelInfoBox.replaceChildren();
    return;
  }
  const tiny = info.hiddenSize < 256;
  const rows: [string, string][] = [
    ['Source', info.source],
    ...(tiny ? ([['Note', 'tiny random test model: expect gibberish']] as [string, string][]) : []),
    ['Decoder', `${info.numLayers} layers, width ${info.hiddenSize}, vocabulary ${info.vocabSize}`],
    ['Image', `${info.imgSize}×${info.imgSize} px → ${info.imageTokens} image tokens`],
    ['Weights / activations', `${info.weights} / ${info.act}`],
    ['Traversal gate', info.gateMode],
    ['Context', `${info.contextLength} tokens`],
  ];
  modelInfoBox.replaceChildren(...rows.map(([k, v]) => h('div', {}, h('dt', {}, k), h('dd', {}, v))));
}

function showProgress(text: string, fraction: number | null): void {
  progressBox.hidden = false;
  progressText.textContent = text;
  if (fraction === null) progressBar.removeAttribute('value');
  else progressBar.value = fraction;
}

async function onLoad(): Promise<void> {
  clearError();
  let source: ModelSource;
  try {
    source = sourceFromForm();
  } catch (e) {
    showError(e);
    return;
  }
  state.loading = true;
  state.model = null;
  state.conversation = false;
  renderModelInfo(null);
  updateControls();
  setStatus('Loading the model…');
  showProgress('Starting…', null);
  const t0 = performance.now();
  try {
    const info = await loadModel(
      engine,
      source,
      {
        weights: weightsSelect.value as WeightMode,
        gateMode: gateSelect.value as 'per-layer' | 'last',
        forceF32: forceF32Box.checked,
      },
      (p) => showProgress(formatProgress(p), p.phase === 'weights' && p.total > 0 ? p.loaded / p.total : null),
    );
    state.model = info;
    renderModelInfo(info);
    showProgress(`Loaded in ${((performance.now() - t0) / 1000).toFixed(1)} s.`, 1);
    setStatus(`Model loaded (${info.weights} weights, ${info.act} activations). Ask a question.`);
    question.focus();
  } catch (e) {
    showError(e);
    progressBox.hidden = true;
    setStatus('The model could not be loaded.');
  } finally {
    state.loading = false;
    updateControls();
  }
}

async function onUnload(): Promise<void> {
  state.model = null;
  state.conversation = false;
  renderModelInfo(null);
  progressBox.hidden = true;
  updateControls();
  try {
    await engine.unloadModel();
    setStatus('Model unloaded: its GPU memory is free.');
  } catch (e) {
    showError(e);
  }
}

// ---- image ----

function setImage(file: File | null): void {
  if (state.imageUrl) URL.revokeObjectURL(state.imageUrl);
  state.image = file;
  state.imageUrl = file ? URL.createObjectURL(file) : null;
  imagePreview.hidden = !file;
  imageClear.hidden = !file;
  imageHint.textContent = file ? file.name : 'Drop an image here, paste one, or';
  if (file && state.imageUrl) {
    imagePreview.src = state.imageUrl;
    imagePreview.alt = `Selected image: ${file.name}`;
  } else {
    imagePreview.removeAttribute('src');
    imagePreview.alt = '';
  }
  // A follow-up cannot add an image: a new image starts a new conversation.
  if (state.conversation) {
    state.conversation = false;
    transcript.append(
      h(
        'li',
        { class: 'divider' },
        file
          ? 'New image: the next question starts a new conversation.'
          : 'Image removed: the next question starts a new conversation.',
      ),
    );
  }
  updateControls();
}

// ---- chat ----

function numberField(id: string): number | undefined {
  const v = byId<HTMLInputElement>(id).valueAsNumber;
  return Number.isFinite(v) ? v : undefined;
}

function showHeatmap(r: ResultSummary): void {
  const isImage = r.promptIds.map((id) => id === r.imageTokenId);
  const data = { gates: r.gates, isImage, labels: r.promptPieces };
  heatmap.set(r.gates.length > 0 ? data : null);
  const fmt = (x: number) => (Number.isNaN(x) ? '—' : x.toFixed(3));
  byId('heatmap-table')
    .querySelector('tbody')!
    .replaceChildren(
      ...layerMeans(data).map((m, l) =>
        h(
          'tr',
          {},
          h('th', { scope: 'row' }, String(l + 1)),
          h('td', { class: 'num' }, fmt(m.all)),
          h('td', { class: 'num' }, fmt(m.image)),
          h('td', { class: 'num' }, fmt(m.text)),
        ),
      ),
    );
}

async function onAsk(): Promise<void> {
  const text = question.value.trim();
  if (!text || !state.model || state.generating) return;
  clearError();
  const follow = state.conversation;
  const image = follow ? null : state.image;
  const userTurn = h('li', { class: 'turn user' }, h('span', { class: 'who' }, 'You'));
  const bubble = h('div', { class: 'bubble' });
  if (image && state.imageUrl) bubble.append(h('img', { class: 'thumb', src: state.imageUrl, alt: image.name }));
  bubble.append(h('p', {}, text));
  userTurn.append(bubble);
  const answer = h('p', { class: 'answer' });
  const botTurn = h(
    'li',
    { class: 'turn assistant', 'aria-busy': 'true' },
    h('span', { class: 'who' }, 'TroL'),
    h('div', { class: 'bubble' }, answer),
  );
  transcript.append(userTurn, botTurn);
  botTurn.scrollIntoView({ block: 'nearest' });
  question.value = '';
  state.generating = true;
  updateControls();
  setStatus(image ? 'Reading the image and the question…' : 'Reading the question…');
  let tokens = 0;
  try {
    const r = await generate(
      engine,
      {
        question: text,
        image,
        conversation: follow ? 'continue' : 'new',
        temperature: numberField('temperature'),
        topK: numberField('top-k'),
        topP: numberField('top-p'),
        repetitionPenalty: numberField('rep-penalty'),
        maxNewTokens: numberField('max-new'),
        seed: numberField('seed'),
      },
      (ev) => {
        if (tokens++ === 0) setStatus('Answering…');
        answer.append(ev.text);
      },
    );
    // The streamed pieces are the answer; normalise the text nodes into one.
    answer.textContent = r.text;
    if (!r.text) answer.append(h('em', {}, '(empty answer)'));
    state.conversation = true;
    timings.textContent = formatTimings(r);
    showHeatmap(r);
    setStatus(`Done: ${r.timings.newTokens} tokens at ${r.timings.decodeTokensPerSecond.toFixed(1)} tok/s.`);
  } catch (e) {
    // A stopped or failed turn ends the engine's conversation: the next question starts afresh.
    state.conversation = false;
    if (e instanceof GenerationCancelledError) {
      answer.append(h('em', { class: 'stopped' }, ' (stopped)'));
      setStatus('Stopped. The next question starts a new conversation.');
    } else {
      answer.append(h('em', { class: 'stopped' }, ` (${(e as Error).name ?? 'error'})`));
      showError(e);
      if (e instanceof DeviceLostError) {
        state.model = null;
        renderModelInfo(null);
        progressBox.hidden = true;
        setStatus('The GPU device was lost: load the model again.');
      } else {
        setStatus('The question could not be answered.');
      }
    }
  } finally {
    botTurn.setAttribute('aria-busy', 'false');
    botTurn.classList.add('done');
    state.generating = false;
    updateControls();
  }
}

function onNewConversation(): void {
  state.conversation = false;
  transcript.replaceChildren();
  timings.textContent = '';
  updateControls();
  question.focus();
}

// ---- start ----

registerServiceWorker();
const engine = createEngineWorker({
  onError: (ev) => {
    showError(new TrolError(`The engine worker failed to start: ${ev.message || 'script error'}`));
    setStatus('The engine worker failed to start.');
  },
});

async function selfCheck(): Promise<void> {
  runButton.disabled = true;
  // The status line belongs to the model while one is loading, loaded or answering.
  const quiet = () => state.loading || state.generating || !!state.model;
  if (!quiet()) setStatus('Running the kernel self-check…');
  byId('selfcheck-summary').textContent = 'Running…';
  try {
    const results = await engine.selfCheck();
    renderSelfCheck(results);
    const failed = results.filter((r) => !r.ok).length;
    if (failed > 0) setStatus(`${failed} kernel self-check(s) failed: answers on this device may be wrong.`);
    else if (!quiet()) setStatus('Ready: every kernel passed its self-check. Load a model to start.');
  } catch (e) {
    showError(e);
    setStatus('The self-check could not run.');
    byId('selfcheck-summary').textContent = 'Not run.';
  } finally {
    runButton.disabled = false;
  }
}

function wire(): void {
  runButton.addEventListener('click', () => void selfCheck());
  modelForm.addEventListener('submit', (ev) => {
    ev.preventDefault();
    void onLoad();
  });
  unloadButton.addEventListener('click', () => void onUnload());
  for (const radio of modelForm.querySelectorAll<HTMLInputElement>('input[name="source"]')) {
    // The tiny model is exact and small in f32; real models want q4 (a quarter of the memory).
    radio.addEventListener('change', () => {
      weightsSelect.value = selectedSource() === 'embedded' ? 'f32' : 'q4';
    });
  }
  urlInput.addEventListener('focus', () => {
    (modelForm.querySelector('input[value="url"]') as HTMLInputElement).click();
  });
  folderInput.addEventListener('change', () => {
    (modelForm.querySelector('input[value="folder"]') as HTMLInputElement).click();
  });
  askForm.addEventListener('submit', (ev) => {
    ev.preventDefault();
    void onAsk();
  });
  question.addEventListener('keydown', (ev) => {
    // Enter sends, Shift+Enter is a new line.
    if (ev.key === 'Enter' && !ev.shiftKey && !ev.isComposing) {
      ev.preventDefault();
      askForm.requestSubmit();
    }
  });
  stopButton.addEventListener('click', () => void engine.cancel());
  newButton.addEventListener('click', onNewConversation);
  acceptImageDrops(dropZone, imageInput, setImage);
  imageClear.addEventListener('click', () => setImage(null));
  document.addEventListener('paste', (ev) => {
    const f = firstImage(ev.clipboardData?.files);
    if (f) setImage(f);
  });
}

async function main(): Promise<void> {
  wire();
  updateControls();
  try {
    setStatus('Asking the worker for a WebGPU adapter…');
    renderAdapter(await engine.info());
  } catch (e) {
    showError(e);
    setStatus(e instanceof WebGPUUnavailableError ? 'WebGPU is not available here.' : 'The engine could not start.');
    byId('adapter').replaceChildren(h('div', {}, h('dt', {}, 'Status'), h('dd', {}, 'no adapter')));
    byId<HTMLDetailsElement>('device-details').open = true;
    for (const id of ['features', 'limits', 'selfcheck']) {
      const section = byId(id).closest('section');
      if (section) section.hidden = true;
    }
    return;
  }
  state.engineReady = true;
  updateControls();
  await selfCheck();
}

void main();
