#!/usr/bin/env node
/**
 * Browser tests in headless Chromium (`npm run test:browser`).
 *
 * Starts the Vite dev server on 127.0.0.1 (a free port), launches /usr/bin/chromium through playwright-core
 * with WebGPU enabled (SwiftShader on a machine without a GPU) and a fresh profile, opens each test page
 * (default: test/browser/smoke.html, then test/browser/model.html; or the pages given as arguments), streams
 * the page's check results (`window.__results`, see harness.ts) one line each, then (by default) drives the
 * chat demo and the `<trol-chat>` example page like a user (ui-checks.mjs), and ends with exactly
 * `Browser: N passed, M failed`.
 * Exit code 0 only when every check passed. A hard limit (240 s, TROL_BROWSER_TIMEOUT_S) ends a stuck run;
 * the browser, the server and the profile directory are always cleaned up.
 *
 * Environment:
 *   TROL_BROWSER_ADAPTER  text the adapter must contain (default 'swiftshader'; empty: any adapter)
 *   TROL_BROWSER_ACT      activation dtype the engine must pick (default 'f32'; empty: either)
 *   TROL_BROWSER_VERBOSE  print the page's and the worker's console output even when everything passes
 *   TROL_BROWSER_UI       '0': skip the driven UI checks (they are also skipped when pages are given)
 *   CHROMIUM_PATH         the browser (default /usr/bin/chromium); nothing is ever downloaded
 */
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createServer } from 'vite';
import { launchChromium, withTimeout } from './chromium.mjs';
import { runUiChecks } from './ui-checks.mjs';

const root = fileURLToPath(new URL('../..', import.meta.url));
const HARD_LIMIT_S = Number(process.env.TROL_BROWSER_TIMEOUT_S ?? 240);
const started = Date.now();
const deadline = started + HARD_LIMIT_S * 1000;
const explicitPages = process.argv.slice(2);
const pages = explicitPages.length > 0 ? explicitPages : ['test/browser/smoke.html', 'test/browser/model.html'];
const runUi = explicitPages.length === 0 && process.env.TROL_BROWSER_UI !== '0';
const expectAdapter = process.env.TROL_BROWSER_ADAPTER ?? 'swiftshader';
const expectAct = process.env.TROL_BROWSER_ACT ?? 'f32';
const verbose = !!process.env.TROL_BROWSER_VERBOSE;

let server = null;
let browser = null;
let passed = 0;
let failed = 0;

function line(ok, name, detail = '', ms = null) {
  if (ok) passed++;
  else failed++;
  const time = ms === null ? '' : ` (${Math.round(ms)} ms)`;
  console.log(`${ok ? 'PASS' : 'FAIL'} ${name}${time}${detail ? ` — ${detail}` : ''}`);
}

let cleaned = null;
function cleanup() {
  cleaned ??= (async () => {
    const steps = [
      async () => browser && (await browser.close()),
      async () => server && (await withTimeout(server.close(), 10_000, 'closing the dev server')),
    ];
    for (const step of steps) {
      try {
        await step();
      } catch (e) {
        console.error(`cleanup: ${e.message}`);
      }
    }
  })();
  return cleaned;
}

function finish(code) {
  console.log(`Browser: ${passed} passed, ${failed} failed`);
  // Playwright kills the browser process it launched on exit if closing it above did not.
  process.exit(code);
}

const hardTimer = setTimeout(async () => {
  line(false, `hard limit: the run exceeded ${HARD_LIMIT_S} s`);
  dumpConsole();
  await withTimeout(cleanup(), 20_000, 'cleanup').catch(() => {});
  finish(1);
}, HARD_LIMIT_S * 1000);

for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, async () => {
    line(false, `interrupted by ${sig}`);
    await withTimeout(cleanup(), 20_000, 'cleanup').catch(() => {});
    finish(130);
  });
}

function dumpConsole() {
  if (!browser || browser.lines.length === 0) return;
  console.log('--- browser console ---');
  for (const l of browser.lines) console.log(l);
  console.log('--- end of browser console ---');
}

async function startServer() {
  const s = await createServer({
    configFile: join(root, 'vite.config.ts'),
    root,
    logLevel: 'warn',
    clearScreen: false,
    // Other work may edit sources during a run: no file watching and no hot reload, so a page never reloads
    // mid-test.
    server: { host: '127.0.0.1', port: 0, strictPort: false, hmr: false, watch: null },
  });
  await s.listen();
  const addr = s.httpServer?.address();
  if (!addr || typeof addr === 'string') throw new Error('the dev server did not report a port');
  return { s, base: `http://127.0.0.1:${addr.port}/` };
}

async function runPage(page, base, path) {
  const url = new URL(path, base);
  if (expectAdapter) url.searchParams.set('adapter', expectAdapter);
  if (expectAct) url.searchParams.set('act', expectAct);
  const prefix = pages.length > 1 ? `${path.split('/').pop()}: ` : '';
  await page.goto(url.href, { waitUntil: 'load', timeout: Math.max(1000, deadline - Date.now()) });
  const loaded = Date.now();
  let shown = 0;
  for (;;) {
    const state = await page.evaluate(() => window.__results ?? null);
    const results = state?.results ?? [];
    for (; shown < results.length; shown++) {
      const r = results[shown];
      line(r.ok, prefix + r.name, r.detail, r.ms);
    }
    if (state?.done) {
      if (results.length === 0) line(false, `${prefix}the page ran no checks`);
      return;
    }
    // A page whose module failed to load never creates __results: fail it without waiting for the hard limit.
    if (!state && Date.now() - loaded > 60_000) throw new Error(`${path} never started its checks (see the console)`);
    if (Date.now() > deadline - 5000) throw new Error(`${path} did not finish within ${HARD_LIMIT_S} s`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

async function main() {
  const { s, base } = await startServer();
  server = s;
  console.log(`dev server: ${base}`);
  browser = await launchChromium({ verbose });
  const page = browser.page;
  for (const path of pages) {
    try {
      await runPage(page, base, path);
    } catch (e) {
      line(false, `${path}`, e.message);
    }
  }
  if (runUi) {
    try {
      await runUiChecks({ page, base, root, line });
    } catch (e) {
      line(false, 'ui checks', e.stack ?? String(e));
    }
  }
}

try {
  await main();
} catch (e) {
  line(false, 'setup', e.stack ?? String(e));
}
clearTimeout(hardTimer);
if (failed > 0 && !verbose) dumpConsole();
await withTimeout(cleanup(), 30_000, 'cleanup').catch((e) => console.error(e.message));
console.log(`(${((Date.now() - started) / 1000).toFixed(1)} s)`);
finish(failed > 0 || passed === 0 ? 1 : 0);
