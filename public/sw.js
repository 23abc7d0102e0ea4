/*
 * Service worker: the built app shell, cache-first, so the demo opens offline after the first visit.
 *
 * `vite build` replaces the placeholder below with `{ version, files }`: the content hash of the build and
 * every file it wrote (see vite.config.ts). Install precaches those files in `trol-shell-<version>`; activate
 * deletes the shells of older builds. Only the shell is served from here: other requests (model weights from
 * other URLs, other origins) pass through untouched. The shell includes the built-in tiny test model
 * (models/tiny-trol/), which the engine reads with HTTP Range requests: those are answered from the cached
 * file with a 206 slice, so the demo loads that model offline too.
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

/** Answer `Range: bytes=a-b` (one range) from the cached copy of a shell file: 206 with that slice, or 416. */
async function rangeFromCache(request, key) {
  const cache = await caches.open(CACHE);
  const hit = await cache.match(key);
  if (!hit) return fetch(request);
  const blob = await hit.blob();
  const size = blob.size;
  const m = /^bytes=(\d*)-(\d*)$/.exec((request.headers.get('range') || '').trim());
  let start = -1;
  let end = -1;
  if (m && m[1] !== '') {
    start = Number(m[1]);
    end = m[2] === '' ? size - 1 : Math.min(Number(m[2]), size - 1);
  } else if (m && m[2] !== '') {
    start = Math.max(0, size - Number(m[2]));
    end = size - 1;
  }
  if (start < 0 || start >= size || end < start) {
    return new Response(null, { status: 416, headers: { 'Content-Range': `bytes */${size}` } });
  }
  return new Response(blob.slice(start, end + 1), {
    status: 206,
    headers: {
      'Content-Type': hit.headers.get('content-type') || 'application/octet-stream',
      'Content-Range': `bytes ${start}-${end}/${size}`,
      'Content-Length': String(end - start + 1),
    },
  });
}

self.addEventListener('fetch', (event) => {
  const request = event.request;
  if (request.method !== 'GET') return;
  const url = new URL(request.url);
  if (url.origin !== self.location.origin) return;
  const bare = url.origin + url.pathname;
  if (request.headers.has('range')) {
    if (SHELL_SET.has(bare)) event.respondWith(rangeFromCache(request, bare));
    return;
  }
  if (request.mode === 'navigate' && (bare === ROOT || bare === INDEX)) {
    event.respondWith(cacheFirst(request, INDEX));
  } else if (SHELL_SET.has(bare)) {
    event.respondWith(cacheFirst(request, bare));
  }
});
