#!/usr/bin/env node
/**
 * The built app as a user gets it (`node test/browser/run-pwa-check.mjs`): `vite build` into a temporary
 * folder, `vite preview` it on 127.0.0.1, open the demo in headless Chromium (SwiftShader) and check that
 *   - the demo reports an adapter and every kernel self-check passes (status "Ready"),
 *   - the manifest is linked and names 192 px and 512 px icons that load,
 *   - the service worker controls the page and its cache holds every built file,
 *   - with the server stopped and the browser offline, a reload shows the demo and passes the self-check again,
 *   - and, still offline, the built-in tiny model loads (its Range requests answered from the service worker's
 *     cache) and answers a question; the `<trol-chat>` example page is in the cache too.
 * Prints one line per check and ends with exactly `PWA: N passed, M failed`; hard limit 240 s.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build, preview } from 'vite';
import { launchChromium, withTimeout } from './chromium.mjs';

const root = fileURLToPath(new URL('../..', import.meta.url));
const HARD_LIMIT_S = Number(process.env.TROL_BROWSER_TIMEOUT_S ?? 240);
const verbose = !!process.env.TROL_BROWSER_VERBOSE;
let passed = 0;
let failed = 0;
let server = null;
let browser = null;
let outDir = null;

function line(ok, name, detail = '') {
  if (ok) passed++;
  else failed++;
  console.log(`${ok ? 'PASS' : 'FAIL'} ${name}${detail ? ` — ${detail}` : ''}`);
}

function check(name, ok, detail) {
  line(!!ok, name, detail);
  return !!ok;
}

async function cleanup() {
  for (const step of [
    async () => browser && (await browser.close()),
    async () => server && (await withTimeout(server.close(), 10_000, 'closing the preview server')),
    async () => outDir && (await rm(outDir, { recursive: true, force: true })),
  ]) {
    try {
      await step();
    } catch (e) {
      console.error(`cleanup: ${e.message}`);
    }
  }
  browser = server = outDir = null;
}

function finish(code) {
  console.log(`PWA: ${passed} passed, ${failed} failed`);
  process.exit(code);
}

const hardTimer = setTimeout(async () => {
  line(false, `hard limit: the run exceeded ${HARD_LIMIT_S} s`);
  await withTimeout(cleanup(), 20_000, 'cleanup').catch(() => {});
  finish(1);
}, HARD_LIMIT_S * 1000);

const READY = /Ready|failed|not available|could not|did not/;

async function demoState(page) {
  await page.waitForFunction(
    (re) => new RegExp(re).test(document.getElementById('status')?.textContent ?? ''),
    READY.source,
    {
      timeout: 120_000,
    },
  );
  return page.evaluate(() => ({
    status: document.getElementById('status').textContent,
    rows: [...document.querySelectorAll('#selfcheck tbody tr')].map((tr) =>
      [...tr.children].map((c) => c.textContent.replace(/\s+/g, ' ').trim()).join(' · '),
    ),
    failures: document.querySelectorAll('#selfcheck tbody td.fail').length,
    error: document.getElementById('error').hidden ? null : document.getElementById('error').textContent,
  }));
}

async function main() {
  outDir = await mkdtemp(join(tmpdir(), 'trol-app-'));
  await build({
    configFile: join(root, 'vite.config.ts'),
    root,
    logLevel: 'warn',
    build: { outDir, emptyOutDir: true },
  });
  line(true, 'vite build', outDir);
  server = await preview({
    configFile: join(root, 'vite.config.ts'),
    root,
    logLevel: 'warn',
    build: { outDir },
    preview: { host: '127.0.0.1', port: 0, strictPort: false },
  });
  const addr = server.httpServer.address();
  const base = `http://127.0.0.1:${addr.port}/`;
  browser = await launchChromium({ verbose });
  const { page, context } = browser;

  await page.goto(base, { waitUntil: 'load' });
  const first = await demoState(page);
  check(
    'demo: adapter found and every kernel self-check passed',
    first.status.startsWith('Ready') && first.failures === 0 && first.rows.length > 0,
    `${first.status} [${first.rows.join(' | ')}]${first.error ? ` error: ${first.error}` : ''}`,
  );

  const manifest = await page.evaluate(async () => {
    const link = document.querySelector('link[rel="manifest"]');
    if (!link) return null;
    const m = await (await fetch(link.href)).json();
    const icons = [];
    for (const icon of m.icons ?? []) {
      const r = await fetch(new URL(icon.src, link.href));
      icons.push({ sizes: icon.sizes, ok: r.ok });
    }
    return { name: m.name, display: m.display, start_url: m.start_url, icons };
  });
  check(
    'manifest: linked, standalone, 192 px and 512 px icons load',
    manifest &&
      manifest.display === 'standalone' &&
      ['192x192', '512x512'].every((s) => manifest.icons.some((i) => i.sizes === s && i.ok)),
    JSON.stringify(manifest),
  );

  await withTimeout(
    page.evaluate(() => navigator.serviceWorker.ready.then(() => true)),
    30_000,
    'service worker ready',
  );
  // The first visit may not be controlled yet (clients.claim races the page); a reload always is.
  if (!(await page.evaluate(() => !!navigator.serviceWorker.controller))) {
    await page.reload({ waitUntil: 'load' });
    await demoState(page);
  }
  const sw = await page.evaluate(async () => {
    const out = {};
    for (const k of await caches.keys()) {
      out[k] = (await (await caches.open(k)).keys()).map((r) => new URL(r.url).pathname);
    }
    return { controlled: !!navigator.serviceWorker.controller, caches: out };
  });
  const cached = Object.values(sw.caches).flat();
  check(
    'service worker: controls the page and cached the app shell',
    sw.controlled && cached.includes('/index.html') && cached.some((p) => /engine-worker.*\.js$/.test(p)),
    `${Object.keys(sw.caches).join(', ')}: ${cached.length} files`,
  );
  check(
    'service worker: cached the built-in model and the <trol-chat> example page',
    ['/models/tiny-trol/model.safetensors', '/models/tiny-trol/tokenizer.model', '/src/ui/embed-example.html'].every(
      (p) => cached.includes(p),
    ),
    cached.filter((p) => p.startsWith('/models/') || p.endsWith('.html')).join(', '),
  );

  await withTimeout(server.close(), 10_000, 'closing the preview server');
  server = null;
  await context.setOffline(true);
  await page.reload({ waitUntil: 'load' });
  const offline = await demoState(page);
  check(
    'offline (server stopped): demo loads and the self-check passes again',
    offline.status.startsWith('Ready') && offline.failures === 0 && offline.rows.length > 0,
    offline.status,
  );

  // Offline, the built-in model is read with Range requests that the service worker answers from its cache.
  await page.click('#load');
  await page.waitForFunction(
    () => /^Model loaded|could not/.test(document.getElementById('status').textContent),
    null,
    {
      timeout: 60_000,
    },
  );
  const loadStatus = await page.locator('#status').textContent();
  const loadError = (await page.locator('#error').isHidden()) ? '' : await page.locator('#error').textContent();
  if (
    check('offline: the built-in tiny model loads', loadStatus.startsWith('Model loaded'), `${loadStatus} ${loadError}`)
  ) {
    await page.click('.sampling summary');
    await page.fill('#max-new', '8');
    await page.fill('#question', 'Is this offline?');
    await page.click('#send');
    await page.waitForSelector('.turn.assistant.done', { timeout: 60_000 });
    const answer = await page.locator('.turn.assistant.done .answer').textContent();
    const error = (await page.locator('#error').isHidden()) ? '' : await page.locator('#error').textContent();
    check(
      'offline: the built-in tiny model answers',
      answer.length > 0 && !error,
      `${JSON.stringify(answer)} ${error}`,
    );
  }
}

try {
  await main();
} catch (e) {
  line(false, 'run', e.stack ?? String(e));
}
clearTimeout(hardTimer);
if (failed > 0 && browser && !verbose) {
  console.log('--- browser console ---');
  for (const l of browser.lines) console.log(l);
  console.log('--- end of browser console ---');
}
await withTimeout(cleanup(), 30_000, 'cleanup').catch((e) => console.error(e.message));
finish(failed > 0 || passed === 0 ? 1 : 0);
