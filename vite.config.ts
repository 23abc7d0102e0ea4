/**
 * Vite: the demo page (`index.html`), the `<trol-chat>` embedding example (`src/ui/embed-example.html`) and,
 * in dev, the browser test pages under `test/browser/`.
 *
 *  - `npm run dev` serves the repo root on 127.0.0.1 (a secure context, so WebGPU, Workers and the Cache API work).
 *  - `npm run build` writes the installable offline app to `dist/app` (relative URLs: it works from any path).
 *  - Shaders are imported with `?raw` (src/gpu/shaders.ts); the engine runs in a module Worker (format 'es').
 *  - The Node WebGPU package `webgpu` is never bundled: src/gpu/acquire.ts reaches it only in Node, through an
 *    opaque dynamic import; it is also excluded from dep optimisation and marked external as a second guard.
 *  - Class names are kept in both bundles: `TrolError` subclasses set `name` from their class.
 *  - `public/models/tiny-trol/` (the tiny random test model, 0.5 MB) is copied into the build as is, so the
 *    demo can load a model with no network beyond its own origin; the service worker precaches it too.
 *  - `onnxruntime-web` is replaced by a stub (src/worker/onnxruntime-stub.ts): transformers.js is only our
 *    tokenizer, and ONNX Runtime Web would add ~600 kB of script and a 26 MB .wasm to the app shell.
 *  - `public/sw.js` is stamped after the build with the list of built files and a content hash, so the service
 *    worker precaches exactly this build's app shell and a new build replaces the old cache.
 */
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { defineConfig, type Plugin } from 'vite';

const root = fileURLToPath(new URL('.', import.meta.url));
const outDir = 'dist/app';
const NODE_ONLY = ['webgpu'];
const SW_PLACEHOLDER = '/*__TROL_BUILD__*/ null';
const ORT_STUB = join(root, 'src/worker/onnxruntime-stub.ts');

function listFiles(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...listFiles(p));
    else out.push(p);
  }
  return out;
}

/** After the client build: write `{version, files}` into dist/app/sw.js (see public/sw.js). */
function stampServiceWorker(): Plugin {
  let dir = '';
  return {
    name: 'trol-stamp-service-worker',
    apply: 'build',
    applyToEnvironment: (env) => env.name === 'client',
    configResolved(config) {
      dir = resolve(config.root, config.build.outDir);
    },
    closeBundle: {
      order: 'post',
      handler() {
        const swPath = join(dir, 'sw.js');
        if (!existsSync(swPath)) return;
        const sw = readFileSync(swPath, 'utf8');
        if (!sw.includes(SW_PLACEHOLDER)) throw new Error(`public/sw.js lacks the placeholder ${SW_PLACEHOLDER}`);
        const files = listFiles(dir)
          .filter((p) => p !== swPath && !p.endsWith('.map'))
          .map((p) => relative(dir, p).split(sep).join('/'))
          .sort();
        const hash = createHash('sha256');
        for (const f of files)
          hash
            .update(f)
            .update('\0')
            .update(readFileSync(join(dir, f)));
        const build = { version: hash.digest('hex').slice(0, 12), files: ['./', ...files.map((f) => `./${f}`)] };
        writeFileSync(swPath, sw.replace(SW_PLACEHOLDER, JSON.stringify(build)));
      },
    },
  };
}

export default defineConfig({
  root,
  base: './',
  publicDir: 'public',
  plugins: [stampServiceWorker()],
  resolve: {
    alias: [{ find: /^onnxruntime-web(\/.*)?$/, replacement: ORT_STUB }],
  },
  server: {
    host: '127.0.0.1',
    port: 5173,
  },
  preview: {
    host: '127.0.0.1',
  },
  worker: {
    format: 'es',
    rolldownOptions: { external: NODE_ONLY, output: { keepNames: true } },
  },
  optimizeDeps: {
    // Scan every page (the demo and the browser test pages) so comlink is pre-bundled up front: discovering
    // it later makes Vite reload the page in the middle of a test.
    entries: ['index.html', 'src/ui/*.html', 'test/browser/*.html'],
    include: ['comlink'],
    exclude: NODE_ONLY,
  },
  build: {
    outDir,
    emptyOutDir: true,
    target: 'es2022',
    sourcemap: true,
    rolldownOptions: {
      input: { main: join(root, 'index.html'), embed: join(root, 'src/ui/embed-example.html') },
      external: NODE_ONLY,
      output: { keepNames: true },
    },
  },
});
