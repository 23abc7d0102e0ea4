/** Small DOM helpers shared by the demo page and `<trol-chat>` (no framework; text never goes in as HTML). */

export type Child = Node | string;

/** Build an element: attributes as strings, children as nodes or text. */
export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Record<string, string> = {},
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
  el.append(...children);
  return el;
}

/** `document.getElementById` that fails loudly when the page and the script disagree. */
export function byId<T extends HTMLElement>(id: string, root: Document | ShadowRoot = document): T {
  const el = root.getElementById(id);
  if (!el) throw new Error(`ui: #${id} is missing from the page`);
  return el as T;
}

/** The first image among dropped or pasted files, or null. */
export function firstImage(files: FileList | Iterable<File> | null | undefined): File | null {
  if (!files) return null;
  for (const f of Array.from(files)) if (f.type.startsWith('image/')) return f;
  return null;
}

/**
 * Make `zone` accept a dropped image (and `input`'s picked one): `onImage` receives the file. The zone gets
 * the `dragover` class while something hovers over it.
 */
export function acceptImageDrops(zone: HTMLElement, input: HTMLInputElement, onImage: (f: File) => void): void {
  input.addEventListener('change', () => {
    const f = firstImage(input.files);
    if (f) onImage(f);
    input.value = '';
  });
  zone.addEventListener('dragover', (ev) => {
    if (!ev.dataTransfer?.types.includes('Files')) return;
    ev.preventDefault();
    ev.dataTransfer.dropEffect = 'copy';
    zone.classList.add('dragover');
  });
  zone.addEventListener('dragleave', () => zone.classList.remove('dragover'));
  zone.addEventListener('drop', (ev) => {
    ev.preventDefault();
    zone.classList.remove('dragover');
    const f = firstImage(ev.dataTransfer?.files);
    if (f) onImage(f);
  });
}
