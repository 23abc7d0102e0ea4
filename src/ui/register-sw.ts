/**
 * Registers `sw.js` (public/sw.js, stamped by the build) so the built app is an installable offline shell.
 * Skipped on the dev server: a cache-first worker there would serve stale modules and fight hot reload.
 */
export function registerServiceWorker(): void {
  if (!import.meta.env.PROD || !('serviceWorker' in navigator)) return;
  const url = new URL('./sw.js', document.baseURI);
  navigator.serviceWorker.register(url, { scope: './' }).catch((e: unknown) => {
    // Offline support is a convenience: the page works without it.
    console.warn('trol: service worker registration failed:', e);
  });
}
