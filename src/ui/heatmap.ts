/**
 * The traversal heatmap: TroL's gate s ∈ (0, 1) for every layer (rows, layer 1 at the top) and every prompt
 * token of the last prefill (columns). s is the weight of the second pass through the same layer:
 * y = (1 − s)·h1 + s·h2, so a dark cell means "the layer was used once", a bright one "traversed again".
 * A strip above the map marks `<image>` tokens. Hovering (or focusing and using the arrow keys) names the
 * cell; a per-layer mean table gives the same picture as text.
 *
 * Drawing: one pixel per cell into an ImageData, scaled up without smoothing to the canvas's CSS size
 * (times devicePixelRatio), so thousands of prompt tokens still fit one row of the page.
 */

/** Viridis, sampled at 9 stops (perceptually uniform, readable in greyscale and by most colour-blind readers). */
const STOPS: [number, number, number][] = [
  [68, 1, 84],
  [71, 44, 122],
  [59, 81, 139],
  [44, 113, 142],
  [33, 144, 141],
  [39, 173, 129],
  [92, 200, 99],
  [170, 220, 50],
  [253, 231, 37],
];

/** The colour of gate value `s` (clamped to [0, 1]; NaN is magenta so it cannot hide). */
export function gateColour(s: number): [number, number, number] {
  if (Number.isNaN(s)) return [255, 0, 255];
  const x = Math.min(1, Math.max(0, s)) * (STOPS.length - 1);
  const i = Math.min(STOPS.length - 2, Math.floor(x));
  const f = x - i;
  const a = STOPS[i];
  const b = STOPS[i + 1];
  return [0, 1, 2].map((k) => Math.round(a[k] + (b[k] - a[k]) * f)) as [number, number, number];
}

/** A CSS linear-gradient of the colour map (for the legend). */
export function gateGradientCss(): string {
  const stops = STOPS.map(([r, g, b], i) => `rgb(${r} ${g} ${b}) ${((i / (STOPS.length - 1)) * 100).toFixed(1)}%`);
  return `linear-gradient(to right, ${stops.join(', ')})`;
}

export interface HeatmapData {
  /** [layers][tokens] */
  gates: number[][];
  /** Per token: is it an `<image>` placeholder? */
  isImage: boolean[];
  /** Per token: a short label (the SentencePiece piece). */
  labels: string[];
}

const STRIP = 6; // px (CSS) of the image-token strip
const GAP = 2;

export class GateHeatmap {
  private data: HeatmapData | null = null;
  private cursor: { layer: number; token: number } | null = null;

  constructor(
    private readonly canvas: HTMLCanvasElement,
    /** Where the hovered / focused cell is described (an aria-live region). */
    private readonly readout: HTMLElement,
  ) {
    canvas.addEventListener('mousemove', (ev) => this.hover(ev));
    canvas.addEventListener('mouseleave', () => this.describe(null));
    canvas.addEventListener('keydown', (ev) => this.key(ev));
    new ResizeObserver(() => this.draw()).observe(canvas);
  }

  set(data: HeatmapData | null): void {
    this.data = data;
    this.cursor = null;
    this.draw();
    this.describe(null);
  }

  private rowHeight(layers: number): number {
    return Math.max(6, Math.min(24, Math.floor(240 / Math.max(1, layers))));
  }

  draw(): void {
    const c = this.canvas;
    const d = this.data;
    const dpr = globalThis.devicePixelRatio || 1;
    const cssW = c.clientWidth || 600;
    const L = d?.gates.length ?? 0;
    const T = d?.gates[0]?.length ?? 0;
    const cssH = L > 0 ? STRIP + GAP + L * this.rowHeight(L) : 40;
    c.style.height = `${cssH}px`;
    c.width = Math.round(cssW * dpr);
    c.height = Math.round(cssH * dpr);
    const g = c.getContext('2d');
    if (!g) return;
    g.clearRect(0, 0, c.width, c.height);
    if (!d || L === 0 || T === 0) return;
    // One pixel per cell, then scaled.
    const img = new ImageData(T, L + 1);
    for (let t = 0; t < T; t++) {
      const o = 4 * t;
      const [r, gg, b] = d.isImage[t] ? [230, 90, 40] : [160, 165, 180];
      img.data.set([r, gg, b, 255], o);
    }
    for (let l = 0; l < L; l++) {
      const row = d.gates[l];
      for (let t = 0; t < T; t++) {
        const [r, gg, b] = gateColour(row[t]);
        img.data.set([r, gg, b, 255], 4 * ((l + 1) * T + t));
      }
    }
    const bmp = new OffscreenCanvas(T, L + 1);
    bmp.getContext('2d')!.putImageData(img, 0, 0);
    g.imageSmoothingEnabled = false;
    const W = c.width;
    const strip = STRIP * dpr;
    const top = (STRIP + GAP) * dpr;
    g.drawImage(bmp, 0, 0, T, 1, 0, 0, W, strip);
    g.drawImage(bmp, 0, 1, T, L, 0, top, W, c.height - top);
    if (this.cursor) {
      const cw = W / T;
      const rh = (c.height - top) / L;
      g.strokeStyle = '#ffffff';
      g.lineWidth = Math.max(1, dpr);
      g.strokeRect(this.cursor.token * cw, top + this.cursor.layer * rh, Math.max(cw, 2 * dpr), rh);
    }
  }

  private hover(ev: MouseEvent): void {
    const d = this.data;
    if (!d || d.gates.length === 0) return;
    const rect = this.canvas.getBoundingClientRect();
    const L = d.gates.length;
    const T = d.gates[0].length;
    const x = ev.clientX - rect.left;
    const y = ev.clientY - rect.top - (STRIP + GAP);
    const token = Math.min(T - 1, Math.max(0, Math.floor((x / rect.width) * T)));
    const layer = Math.floor((y / (rect.height - STRIP - GAP)) * L);
    this.describe(layer >= 0 && layer < L ? { layer, token } : { layer: -1, token });
  }

  private key(ev: KeyboardEvent): void {
    const d = this.data;
    if (!d || d.gates.length === 0) return;
    const L = d.gates.length;
    const T = d.gates[0].length;
    const c = this.cursor ?? { layer: 0, token: 0 };
    const step = ev.shiftKey ? 10 : 1;
    const moves: Record<string, [number, number]> = {
      ArrowLeft: [0, -step],
      ArrowRight: [0, step],
      ArrowUp: [-1, 0],
      ArrowDown: [1, 0],
      Home: [0, -T],
      End: [0, T],
    };
    const m = moves[ev.key];
    if (!m) return;
    ev.preventDefault();
    this.describe({
      layer: Math.min(L - 1, Math.max(0, c.layer + m[0])),
      token: Math.min(T - 1, Math.max(0, c.token + m[1])),
    });
  }

  private describe(cell: { layer: number; token: number } | null): void {
    const d = this.data;
    const had = this.cursor;
    this.cursor = cell && cell.layer >= 0 ? cell : null;
    if (!d || !cell) {
      this.readout.textContent = d
        ? 'Point at (or focus and use the arrow keys on) the map to read one cell.'
        : 'Ask a question to see how the layers were traversed.';
    } else {
      const label = JSON.stringify(d.labels[cell.token] ?? '');
      const kind = d.isImage[cell.token] ? 'image token' : 'text token';
      if (cell.layer < 0) {
        this.readout.textContent = `Token ${cell.token + 1} ${label} (${kind})`;
      } else {
        const s = d.gates[cell.layer][cell.token];
        this.readout.textContent = `Layer ${cell.layer + 1}, token ${cell.token + 1} ${label} (${kind}): s = ${s.toFixed(3)}`;
      }
    }
    if (had !== this.cursor) this.draw();
  }
}

/** Mean gate per layer, split into image and text tokens (NaN where a turn has none). */
export function layerMeans(d: HeatmapData): { all: number; image: number; text: number }[] {
  return d.gates.map((row) => {
    let sa = 0;
    let si = 0;
    let ni = 0;
    for (let t = 0; t < row.length; t++) {
      sa += row[t];
      if (d.isImage[t]) {
        si += row[t];
        ni++;
      }
    }
    const nt = row.length - ni;
    return { all: sa / row.length, image: ni ? si / ni : Number.NaN, text: nt ? (sa - si) / nt : Number.NaN };
  });
}
