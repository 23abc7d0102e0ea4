/**
 * A minimal in-page test harness for the headless-Chromium run (test/browser/run-browser-tests.mjs).
 *
 * A page lists named async checks and calls `runChecks(checks)`. Each check passes by returning (optionally a
 * detail string) and fails by throwing; it may also report sub-results with `t.sub(...)` (one line each in the
 * runner's output). Results land in `window.__results` as they happen, so a run that times out still shows
 * how far it got. Query parameters of the page reach checks as `t.params` (the runner passes expectations
 * such as `?adapter=swiftshader&act=f32`).
 */

export interface CheckResult {
  name: string;
  ok: boolean;
  detail: string;
  ms: number;
}

export interface BrowserResults {
  done: boolean;
  results: CheckResult[];
}

export interface CheckTools {
  params: URLSearchParams;
  /**
   * Record a sub-result under this check (shown as `<check> / <name>`; `ms` defaults to the time since the
   * check started). A failing sub-result fails the check too.
   */
  sub(name: string, ok: boolean, detail?: string, ms?: number): void;
}

export interface Check {
  name: string;
  /** Per-check limit (default 120 s); the runner's overall limit still applies. */
  timeoutMs?: number;
  /** Resolve to pass (a string result becomes the detail); throw to fail. */
  run(t: CheckTools): Promise<unknown>;
}

declare global {
  interface Window {
    __results?: BrowserResults;
  }
}

export class CheckFailure extends Error {}

export function assert(condition: unknown, message: string): asserts condition {
  if (!condition) throw new CheckFailure(message);
}

function describe(e: unknown): string {
  if (e instanceof CheckFailure) return e.message;
  if (e instanceof Error) return `${e.name}: ${e.message}`;
  return String(e);
}

function log(r: CheckResult): void {
  const list = document.getElementById('log');
  if (!list) return;
  const li = document.createElement('li');
  li.textContent = `${r.ok ? 'PASS' : 'FAIL'} ${r.name} (${r.ms.toFixed(0)} ms)${r.detail ? ` — ${r.detail}` : ''}`;
  list.append(li);
}

export async function runChecks(checks: readonly Check[]): Promise<BrowserResults> {
  const state: BrowserResults = { done: false, results: [] };
  window.__results = state;
  const params = new URLSearchParams(location.search);
  for (const check of checks) {
    const t0 = performance.now();
    const subs: CheckResult[] = [];
    const tools: CheckTools = {
      params,
      sub(name, ok, detail = '', ms = performance.now() - t0) {
        subs.push({ name: `${check.name} / ${name}`, ok, detail, ms });
      },
    };
    let ok = true;
    let detail = '';
    let timer: ReturnType<typeof setTimeout> | undefined;
    try {
      const limit = check.timeoutMs ?? 120_000;
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new CheckFailure(`timed out after ${limit} ms`)), limit);
      });
      const value = await Promise.race([check.run(tools), timeout]);
      detail = typeof value === 'string' ? value : '';
    } catch (e) {
      ok = false;
      detail = describe(e);
    } finally {
      clearTimeout(timer);
    }
    const failedSubs = subs.filter((s) => !s.ok).length;
    if (ok && failedSubs > 0) {
      ok = false;
      detail = `${failedSubs} of ${subs.length} sub-checks failed${detail ? `; ${detail}` : ''}`;
    }
    const result = { name: check.name, ok, detail, ms: performance.now() - t0 };
    for (const s of subs) {
      state.results.push(s);
      log(s);
    }
    state.results.push(result);
    log(result);
  }
  state.done = true;
  return state;
}
