#!/usr/bin/env bash
# Build the demo (dist/app) and serve it as a user would get it: on http://127.0.0.1:${PORT:-4173}/, with the
# service worker registered (the dev server skips it), so installing and offline use can be tried.
# For development with hot reload use `npm run dev` instead.
set -euo pipefail
cd "$(dirname "$0")/.."
npx vite build
exec npx vite preview --host 127.0.0.1 --port "${PORT:-4173}" --strictPort
