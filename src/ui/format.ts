/** Number and error formatting for the UI. */
import type { LoadProgressEvent, ResultSummary } from '../worker/client.ts';

export function formatBytes(n: number): string {
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

export function formatError(x: number): string {
  if (Number.isNaN(x)) return 'NaN';
  if (x === 0) return '0';
  return x.toExponential(2);
}

function rate(x: number): string {
  return x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x.toFixed(2);
}

/** One line of timings for a finished turn. */
export function formatTimings(r: ResultSummary): string {
  const t = r.timings;
  const parts = [
    `prompt ${t.promptTokens} tokens`,
    `prefill ${rate(t.prefillTokensPerSecond)} tok/s (${t.prefillMs.toFixed(0)} ms)`,
    `decode ${rate(t.decodeTokensPerSecond)} tok/s (${t.newTokens} tokens, ${t.decodeMs.toFixed(0)} ms)`,
  ];
  if (t.visionMs > 0) parts.splice(1, 0, `vision ${t.visionMs.toFixed(0)} ms`);
  const why = { eos: 'end of answer', stop: 'stop string', length: 'max new tokens reached' }[r.stopReason];
  return `${parts.join(' · ')} · stopped: ${why}`;
}

/** A progress event as text. */
export function formatProgress(p: LoadProgressEvent): string {
  switch (p.phase) {
    case 'device':
      return 'Opening the GPU device…';
    case 'files':
      return 'Reading config, tokenizer and the weight index…';
    case 'weights':
      return `Uploading weights: ${p.loaded} of ${p.total} tensors${p.tensor ? ` (${p.tensor})` : ''}`;
    case 'model':
      return 'Weights are on the GPU; finishing the set-up…';
    case 'ready':
      return 'Ready.';
  }
}
