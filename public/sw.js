/*
 * Service worker: the built app shell, cache-first, so the demo opens offline after the first visit.
 *
 * `vite build` replaces the placeholder below with `{ version, files }`: the content hash of the build and
 * every file it wrote (see vite.config.ts). Install precaches those files in `trol-shell-<version>`; activate
 * deletes the shells of older builds. Only the shell is served from here: other requests (model weights,
 * range requests, other origins) pass through untouched — the engine keeps weights in its own storage.
 * The dev server does not register this worker.
 */
const BUILD = /*__TROL_BUILD__*/ null;

const VERSION = BUILD ? BUILD.version : 'dev';
const CACHE = `trol-shell-${VERSION}`;
const SHELL = (BUILD ? BUILD.files : ['./', './index.html', './manifest.webmanifest', './icon.svg']).map(
  (f) => new URL(f, self.registration.scope).href,
);
const SHELL_SET = new Set(SHELL);
const INDEX = new URL('./index.html', self.registration.scope).href;
const ROOT = new URL('./', self.registration.scope).href;

self.addEventListener('install', (event) => {
  event.waitUntil(
    (async () => {
      const cache = await caches.open(CACHE);
      // `reload` skips the HTTP cache, so the shell stored is exactly this build.
      await cache.addAll(SHELL.map((url) => new Request(url, { cache: 'reload' })));
      await self.skipWaiting();
    })(),
  );
});

self.addEventListener('activate', (event) => {
  event.waitUntil(
    (async () => {
      for (const name of await caches.keys()) {
        if (name.startsWith('trol-shell-') && name !== CACHE) await caches.delete(name);
      }
      await self.clients.claim();
    })(),
  );
});

async function cacheFirst(request, key) {
  const cache = await caches.open(CACHE);
  const hit = await cache.match(key, { ignoreSearch: key === INDEX });
  if (hit) return hit;
  const response = await fetch(request);
  if (response.ok && response.type === 'basic') await cache.put(key, response.clone());
  return response;
}

self.addEventListener('fetch', (event) => {
  const request = event.request;
  if (request.method !== 'GET' || request.headers.has('range')) return;
  const url = new URL(request.url);
  if (url.origin !== self.location.origin) return;
  const bare = url.origin + url.pathname;
  if (request.mode === 'navigate' && (bare === ROOT || bare === INDEX)) {
    event.respondWith(cacheFirst(request, INDEX));
  } else if (SHELL_SET.has(bare)) {
    event.respondWith(cacheFirst(request, bare));
  }
});
