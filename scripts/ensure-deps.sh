#!/usr/bin/env bash
# Install npm dependencies exactly as locked, once: reruns skip `npm ci` while package-lock.json is unchanged.
set -euo pipefail
cd "$(dirname "$0")/.."
export ONNXRUNTIME_NODE_INSTALL=skip  # see .npmrc: onnxruntime-node's CUDA download cannot work here
stamp=node_modules/.trol-lock.sha256
want=$(sha256sum package-lock.json | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then exit 0; fi
npm ci --no-audit --no-fund --loglevel=error
echo "$want" > "$stamp"
