/**
 * `<trol-chat>`: the whole chat in one custom element, with its own engine Worker and a shadow root.
 *
 *   <script type="module" src=".../trol-chat.js"></script>
 *   <trol-chat model-url="https://huggingface.co/BK-Lee/TroL-1.8B/resolve/main/" weights="q4"></trol-chat>
 *
 * Attributes
 *   model-url        base URL of the model folder (relative URLs resolve against the page)      (required)
 *   weights          'q4' (default) | 'f16' | 'f32'
 *   force-f32        present: f32 activations even where shader-f16 exists
 *   max-new-tokens   answer length limit (default 256)
 *   temperature      0 (default) = greedy
 *   autoload         present: load the model as soon as the element is on the page (else on the first
 *                    question, or the Load button)
 * Changing model-url, weights or force-f32 unloads the model; it loads again when next needed.
 *
 * Events (bubbling, composed)
 *   trol-load   detail: ModelInfo                                 the model is ready
 *   trol-token  detail: { id, text, index }                       one streamed token
 *   trol-done   detail: ResultSummary (text, ids, timings, gates)  an answer finished
 *   trol-error  detail: { error, name, message }                  a typed error (GenerationCancelledError on Stop)
 *
 * Methods: `load()`, `ask(question, image?)`, `cancel()`, `newConversation()`. Styling hooks: the custom
 * properties --trol-accent, --trol-bg, --trol-fg, --trol-line, --trol-muted, and `::part(log)`, `::part(form)`.
 * The element never touches WebGPU itself: the engine runs in the Worker it owns, ended when the element is
 * removed from the page.
 */
import {
  createEngineWorker,
  DeviceLostError,
  type EngineRemote,
  GenerationCancelledError,
  generate,
  loadModel,
  type ModelInfo,
  type ResultSummary,
  type TokenEventWire,
  TrolError,
  terminateEngineWorker,
  type WeightMode,
} from '../worker/client.ts';
import { acceptImageDrops, firstImage, h } from './dom.ts';
import { formatProgress, formatTimings } from './format.ts';

const STYLE = `
:host {
  --trol-accent: #14213d; --trol-bg: #ffffff; --trol-fg: #16181d; --trol-line: #d9dce3; --trol-muted: #5a6070;
  --trol-bad: #b3261e;
  display: block; max-width: 40rem; font: 15px/1.5 system-ui, sans-serif; color: var(--trol-fg);
  background: var(--trol-bg); border: 1px solid var(--trol-line); border-radius: 10px; padding: 0.8rem;
}
@media (prefers-color-scheme: dark) {
  :host { --trol-accent: #8ecae6; --trol-bg: #181b23; --trol-fg: #e8eaf0; --trol-line: #2c3140; --trol-muted: #a4aabb;
    --trol-bad: #ff8a80; }
}
:host([hidden]) { display: none; }
* { box-sizing: border-box; }
.head { display: flex; gap: 0.6rem; align-items: center; flex-wrap: wrap; }
.title { font-weight: 700; }
.status { color: var(--trol-muted); font-size: 0.88em; flex: 1; overflow-wrap: anywhere; }
progress { width: 100%; }
ol { list-style: none; margin: 0.6rem 0; padding: 0; display: flex; flex-direction: column; gap: 0.4rem;
  max-height: 22rem; overflow-y: auto; }
li { border: 1px solid var(--trol-line); border-radius: 8px; padding: 0.35rem 0.6rem; white-space: pre-wrap;
  overflow-wrap: anywhere; }
li.user { align-self: flex-end; background: color-mix(in srgb, var(--trol-accent) 10%, var(--trol-bg)); }
li.bot[aria-busy="true"]::after { content: "▍"; }
li.meta { border: none; color: var(--trol-muted); font-size: 0.8em; padding: 0 0.2rem; }
li img { display: block; max-width: 6rem; max-height: 5rem; border-radius: 4px; margin-bottom: 0.2rem; }
form { display: flex; gap: 0.4rem; align-items: flex-end; flex-wrap: wrap; border-radius: 8px; }
form.dragover { outline: 2px dashed var(--trol-accent); }
textarea { flex: 1 1 14rem; font: inherit; color: inherit; background: transparent; border: 1px solid var(--trol-line);
  border-radius: 6px; padding: 0.3rem 0.5rem; resize: vertical; min-height: 2.4rem; }
button, .attach { font: inherit; padding: 0.3rem 0.8rem; border-radius: 6px; border: 1px solid var(--trol-accent);
  background: var(--trol-accent); color: var(--trol-bg); cursor: pointer; }
button.secondary, .attach { background: transparent; color: var(--trol-accent); }
button:disabled { opacity: 0.5; cursor: default; }
.attach:focus-within, :focus-visible { outline: 3px solid #ffb703; outline-offset: 2px; }
.attach input { position: absolute; width: 1px; height: 1px; opacity: 0; }
.preview { display: flex; align-items: center; gap: 0.4rem; font-size: 0.85em; color: var(--trol-muted); }
.preview img { max-height: 2.4rem; border-radius: 4px; }
.error { color: var(--trol-bad); font-size: 0.9em; margin: 0.4rem 0 0; }
.error b { font-family: ui-monospace, monospace; }
.timings { color: var(--trol-muted); font: 0.78em ui-monospace, monospace; margin: 0.3rem 0 0; }
`;

let instances = 0;

export class TrolChatElement extends HTMLElement {
  static observedAttributes = ['model-url', 'weights', 'force-f32'];

  private remote: EngineRemote | null = null;
  private loading: Promise<ModelInfo> | null = null;
  private info: ModelInfo | null = null;
  private conversation = false;
  private generating = false;
  private image: File | null = null;
  private imageUrl: string | null = null;
  private readonly ids = `trol-chat-${++instances}`;

  private readonly statusEl = h('span', { class: 'status', role: 'status' }, 'Model not loaded.');
  private readonly loadBtn = h('button', { type: 'button', class: 'secondary', part: 'load' }, 'Load model');
  private readonly progress = h('progress', { max: '1', hidden: '' });
  private readonly log = h('ol', { role: 'log', 'aria-live': 'polite', 'aria-label': 'Conversation', part: 'log' });
  private readonly question = h('textarea', {
    rows: '2',
    'aria-label': 'Your question',
    placeholder: 'Ask about an image…',
  });
  private readonly fileInput = h('input', { type: 'file', accept: 'image/*', 'aria-label': 'Attach an image' });
  private readonly preview = h('span', { class: 'preview' });
  private readonly sendBtn = h('button', { type: 'submit' }, 'Send');
  private readonly stopBtn = h('button', { type: 'button', class: 'secondary', disabled: '' }, 'Stop');
  private readonly newBtn = h('button', { type: 'button', class: 'secondary' }, 'New conversation');
  private readonly errorEl = h('p', { class: 'error', role: 'alert', hidden: '' });
  private readonly timingsEl = h('p', { class: 'timings' });

  constructor() {
    super();
    const root = this.attachShadow({ mode: 'open' });
    const style = document.createElement('style');
    style.textContent = STYLE;
    const form = h(
      'form',
      { part: 'form' },
      h('label', { class: 'attach', title: 'Attach an image (or drop one here)' }, 'Image…', this.fileInput),
      this.question,
      this.sendBtn,
      this.stopBtn,
      this.newBtn,
    );
    root.append(
      style,
      h('div', { class: 'head' }, h('span', { class: 'title' }, 'TroL'), this.statusEl, this.loadBtn),
      this.progress,
      this.log,
      this.preview,
      form,
      this.errorEl,
      this.timingsEl,
    );
    this.question.id = `${this.ids}-q`;
    form.addEventListener('submit', (ev) => {
      ev.preventDefault();
      const q = this.question.value.trim();
      if (!q) return;
      this.question.value = '';
      this.ask(q).catch(() => undefined); // reported through trol-error and the error line
    });
    this.question.addEventListener('keydown', (ev) => {
      if (ev.key === 'Enter' && !ev.shiftKey && !ev.isComposing) {
        ev.preventDefault();
        form.requestSubmit();
      }
    });
    this.loadBtn.addEventListener('click', () => void this.load().catch(() => undefined));
    this.stopBtn.addEventListener('click', () => this.cancel());
    this.newBtn.addEventListener('click', () => this.newConversation());
    acceptImageDrops(form, this.fileInput, (f) => this.setImage(f));
    form.addEventListener('paste', (ev) => {
      const f = firstImage(ev.clipboardData?.files);
      if (f) this.setImage(f);
    });
  }

  connectedCallback(): void {
    if (this.hasAttribute('autoload')) void this.load().catch(() => undefined);
  }

  disconnectedCallback(): void {
    if (this.remote) terminateEngineWorker(this.remote);
    this.remote = null;
    this.loading = null;
    this.info = null;
    this.conversation = false;
    this.generating = false;
    this.sync();
  }

  attributeChangedCallback(name: string, oldValue: string | null, value: string | null): void {
    if (oldValue === value || !this.remote || (!this.info && !this.loading)) return;
    // A different model or weight mode: the loaded one no longer applies.
    this.loading = null;
    this.info = null;
    this.conversation = false;
    void this.remote.unloadModel().catch(() => undefined);
    this.setStatus(`Model not loaded (${name} changed).`);
    this.sync();
  }

  /** The loaded model's facts, or null. */
  get modelInfo(): ModelInfo | null {
    return this.info;
  }

  private engine(): EngineRemote {
    this.remote ??= createEngineWorker({
      onError: (ev) => this.fail(new TrolError(`The engine worker failed to start: ${ev.message || 'script error'}`)),
    });
    return this.remote;
  }

  private readyText(): string {
    return this.info && this.info.hiddenSize < 256
      ? 'Tiny random test model: its answers are gibberish by design.'
      : 'Ready.';
  }

  private setStatus(text: string): void {
    this.statusEl.textContent = text;
  }

  private sync(): void {
    this.loadBtn.hidden = !!this.info;
    this.loadBtn.disabled = !!this.loading;
    this.sendBtn.disabled = this.generating;
    this.stopBtn.disabled = !this.generating;
    this.newBtn.disabled = this.generating;
  }

  private fail(error: unknown): void {
    const err = error instanceof Error ? error : new TrolError(String(error));
    this.errorEl.replaceChildren(h('b', {}, err.name), `: ${err.message}`);
    this.errorEl.hidden = false;
    this.dispatchEvent(
      new CustomEvent('trol-error', {
        detail: { error: err, name: err.name, message: err.message },
        bubbles: true,
        composed: true,
      }),
    );
  }

  private setImage(file: File | null): void {
    if (this.imageUrl) URL.revokeObjectURL(this.imageUrl);
    this.image = file;
    this.imageUrl = file ? URL.createObjectURL(file) : null;
    this.preview.replaceChildren();
    if (file && this.imageUrl) {
      const remove = h('button', { type: 'button', class: 'secondary' }, 'Remove');
      remove.addEventListener('click', () => this.setImage(null));
      this.preview.append(h('img', { src: this.imageUrl, alt: `Attached: ${file.name}` }), file.name, remove);
    }
    // A follow-up cannot add an image.
    if (this.conversation) {
      this.conversation = false;
      this.log.append(h('li', { class: 'meta' }, 'New image: a new conversation starts.'));
    }
  }

  /** Load the model named by `model-url` (once; concurrent calls share the load). */
  load(): Promise<ModelInfo> {
    if (this.loading) return this.loading;
    const url = this.getAttribute('model-url');
    if (!url) {
      const e = new TrolError('<trol-chat> needs a model-url attribute (the base URL of the model folder).');
      this.fail(e);
      return Promise.reject(e);
    }
    const weights = (this.getAttribute('weights') ?? 'q4') as WeightMode;
    this.errorEl.hidden = true;
    this.progress.hidden = false;
    this.progress.removeAttribute('value');
    this.setStatus('Loading the model…');
    const p = loadModel(
      this.engine(),
      { kind: 'url', baseUrl: url },
      { weights, forceF32: this.hasAttribute('force-f32') },
      (ev) => {
        if (this.loading !== p) return;
        this.setStatus(formatProgress(ev));
        if (ev.phase === 'weights' && ev.total > 0) this.progress.value = ev.loaded / ev.total;
      },
    );
    this.loading = p;
    this.sync();
    p.then(
      (info) => {
        if (this.loading !== p) return;
        this.info = info;
        this.progress.hidden = true;
        this.setStatus(this.readyText());
        this.sync();
        this.dispatchEvent(new CustomEvent('trol-load', { detail: info, bubbles: true, composed: true }));
      },
      (e) => {
        if (this.loading !== p) return;
        this.loading = null;
        this.progress.hidden = true;
        this.setStatus('The model could not be loaded.');
        this.sync();
        this.fail(e);
      },
    );
    return p;
  }

  /**
   * Ask a question (about `image`, or the attached one, when it starts a conversation). Resolves with the
   * answer; tokens stream as `trol-token` events. Follow-ups continue the conversation until
   * `newConversation()`, a new image, Stop, or an error.
   */
  async ask(question: string, image?: Blob | null): Promise<ResultSummary> {
    if (this.generating) throw new TrolError('<trol-chat> is already answering; stop it or wait.');
    this.generating = true;
    this.sync();
    this.errorEl.hidden = true;
    const follow = this.conversation;
    const img = follow ? null : (image ?? this.image);
    const userItem = h('li', { class: 'user' });
    if (img) {
      const own = image ? URL.createObjectURL(image) : null;
      const src = own ?? this.imageUrl;
      const thumb = h('img', { src: src ?? '', alt: 'attached image' });
      if (own) thumb.addEventListener('load', () => URL.revokeObjectURL(own), { once: true });
      userItem.append(thumb);
    }
    userItem.append(question);
    const answer = h('li', { class: 'bot', 'aria-busy': 'true' });
    this.log.append(userItem, answer);
    try {
      await this.load();
      this.setStatus('Answering…');
      const maxNew = Number(this.getAttribute('max-new-tokens') ?? 256);
      const temperature = Number(this.getAttribute('temperature') ?? 0);
      const r = await generate(
        this.engine(),
        {
          question,
          image: img,
          conversation: follow ? 'continue' : 'new',
          maxNewTokens: maxNew,
          temperature,
        },
        (ev: TokenEventWire) => {
          answer.append(ev.text);
          answer.scrollIntoView?.({ block: 'nearest' });
          this.dispatchEvent(new CustomEvent('trol-token', { detail: ev, bubbles: true, composed: true }));
        },
      );
      answer.textContent = r.text;
      this.conversation = true;
      this.timingsEl.textContent = formatTimings(r);
      this.setStatus(this.readyText());
      this.dispatchEvent(new CustomEvent('trol-done', { detail: r, bubbles: true, composed: true }));
      return r;
    } catch (e) {
      this.conversation = false;
      answer.append(e instanceof GenerationCancelledError ? ' (stopped)' : ' (failed)');
      if (e instanceof DeviceLostError) {
        this.info = null;
        this.loading = null;
        this.setStatus('The GPU device was lost: load the model again.');
      } else {
        this.setStatus(e instanceof GenerationCancelledError ? 'Stopped.' : 'Error.');
      }
      this.fail(e);
      throw e;
    } finally {
      answer.setAttribute('aria-busy', 'false');
      this.generating = false;
      this.sync();
    }
  }

  /** Stop the answer being generated (it ends with a GenerationCancelledError). */
  cancel(): void {
    if (this.remote) void this.remote.cancel();
  }

  /** Forget the conversation: the next question starts afresh. */
  newConversation(): void {
    if (this.generating) return;
    this.conversation = false;
    this.log.replaceChildren();
    this.timingsEl.textContent = '';
    this.errorEl.hidden = true;
  }
}

if (!customElements.get('trol-chat')) customElements.define('trol-chat', TrolChatElement);

declare global {
  interface HTMLElementTagNameMap {
    'trol-chat': TrolChatElement;
  }
}
