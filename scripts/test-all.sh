#!/usr/bin/env bash
# The whole test suite, from a fresh machine: system packages (Mesa lavapipe, Chromium), npm packages, lint,
# type check, every vitest suite on lavapipe (f16 + f32 paths), the kernel and model suites again on
# SwiftShader (f32 fallback path), and the headless-Chromium tests (a Worker, through comlink).
# Ends with one summary line "Total: N passed, M failed"; exits non-zero on any failure.
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-system.sh || exit 1
bash scripts/ensure-deps.sh || exit 1

out=$(mktemp -d)
failed_steps=()
step() {  # step NAME CMD...
  local name=$1; shift
  echo "==> $name"
  if ! "$@"; then failed_steps+=("$name"); fi
}

step lint npx biome check .
step typecheck npx tsc -p tsconfig.json --noEmit
step "vitest (lavapipe)" npx vitest run --reporter=default --reporter=json --outputFile.json="$out/lavapipe.json"
step "vitest (swiftshader)" env VK_ICD_FILENAMES=/usr/lib/chromium/vk_swiftshader_icd.json TROL_ADAPTER=swiftshader \
  npx vitest run test/kernels test/model test/selfcheck --reporter=default --reporter=json --outputFile.json="$out/swiftshader.json"
step "browser (chromium)" bash -c "node test/browser/run-browser-tests.mjs | tee '$out/browser.txt'; exit \${PIPESTATUS[0]}"
step "offline PWA (chromium)" bash -c "node test/browser/run-pwa-check.mjs | tee '$out/pwa.txt'; exit \${PIPESTATUS[0]}"

node -e '
const fs = require("fs");
let passed = 0, failed = 0;
for (const f of ["lavapipe.json", "swiftshader.json"]) {
  const p = process.argv[1] + "/" + f;
  if (!fs.existsSync(p)) { failed++; continue; }
  const r = JSON.parse(fs.readFileSync(p, "utf8"));
  passed += r.numPassedTests; failed += r.numFailedTests + (r.numFailedTestSuites || 0);
}
for (const [file, label] of [["browser.txt", "Browser"], ["pwa.txt", "PWA"]]) {
  const b = process.argv[1] + "/" + file;
  const m = fs.existsSync(b) && fs.readFileSync(b, "utf8").match(new RegExp(label + ": (\\d+) passed, (\\d+) failed"));
  if (m) { passed += +m[1]; failed += +m[2]; } else failed++;
}
console.log("Total: " + passed + " passed, " + (failed + Number(process.argv[2])) + " failed");
' "$out" "${#failed_steps[@]}"
if [ "${#failed_steps[@]}" -gt 0 ]; then
  echo "failed steps: ${failed_steps[*]}" >&2
  exit 1
fi
