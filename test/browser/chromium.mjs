/**
 * Launching the system Chromium for browser tests: WebGPU on (SwiftShader on a machine without a GPU), no
 * network chatter, a fresh profile directory that `close()` removes. Never downloads a browser.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

// The flags from shared/docs/webgpu-on-cpu.md ("Headless Chromium"); the profile comes from launchPersistentContext.
export const CHROMIUM_ARGS = [
  '--headless=new',
  '--no-sandbox',
  '--enable-unsafe-webgpu',
  '--disable-gpu-sandbox',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
  '--disable-quic',
  '--disable-dev-shm-usage',
];

export function withTimeout(promise, ms, what) {
  let timer;
  return Promise.race([
    promise.finally(() => clearTimeout(timer)),
    new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what} took longer than ${ms} ms`)), ms);
    }),
  ]);
}

/**
 * Launch Chromium with a fresh profile. Returns the browser context, its first page with console capture
 * (`lines`), and `close()`, which closes the browser and deletes the profile (safe to call twice).
 */
export async function launchChromium({ verbose = false, viewport } = {}) {
  const profileDir = await mkdtemp(join(tmpdir(), 'trol-chromium-'));
  let context;
  try {
    context = await chromium.launchPersistentContext(profileDir, {
      executablePath: process.env.CHROMIUM_PATH || '/usr/bin/chromium',
      headless: true,
      args: CHROMIUM_ARGS,
      timeout: 60_000,
      ...(viewport ? { viewport } : {}),
    });
  } catch (e) {
    await rm(profileDir, { recursive: true, force: true });
    throw e;
  }
  const lines = [];
  const record = (text) => {
    lines.push(text);
    if (verbose) console.log(`browser: ${text}`);
  };
  const page = context.pages()[0] ?? (await context.newPage());
  page.on('console', (m) => record(`[${m.type()}] ${m.text()}`));
  page.on('pageerror', (e) => record(`[pageerror] ${e.message}`));
  page.on('worker', (w) => record(`[worker] started ${w.url()}`));
  let closed = null;
  const close = () => {
    closed ??= (async () => {
      try {
        await withTimeout(context.close(), 15_000, 'closing the browser');
      } finally {
        await rm(profileDir, { recursive: true, force: true });
      }
    })();
    return closed;
  };
  return { context, page, lines, close };
}
