#!/usr/bin/env bash
# Idempotent system setup for running real WebGPU on a GPU-less Debian machine:
#   - Mesa lavapipe >= 25 (bookworm-backports on Debian 12; the main suite on 13+), for Node + Dawn with shader-f16
#   - Debian chromium, for SwiftShader (its Vulkan ICD) and the headless browser tests
# Reuses the mirror URI already configured for the main suite; never hard-codes a host.
# A rerun on a set-up machine returns in well under a second.
set -euo pipefail

need_mesa=1
need_chromium=1
mesa_version() { dpkg-query -W -f='${Version}' mesa-vulkan-drivers 2>/dev/null || true; }
v=$(mesa_version)
if [ -n "$v" ] && dpkg --compare-versions "$v" ge 25; then need_mesa=0; fi
if [ -x /usr/bin/chromium ] && [ -f /usr/lib/chromium/vk_swiftshader_icd.json ]; then need_chromium=0; fi
if [ "$need_mesa" = 0 ] && [ "$need_chromium" = 0 ]; then exit 0; fi

if [ "$(id -u)" != 0 ]; then
  echo "setup-system: needs root to install mesa-vulkan-drivers>=25 and chromium (or install them yourself)" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")

if [ "$need_mesa" = 1 ] && [ "$codename" = bookworm ]; then
  if ! grep -rqs 'bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/; then
    uri=""
    if [ -f /etc/apt/sources.list.d/debian.sources ]; then
      # The URIs: line of the stanza whose Suites include plain "bookworm".
      uri=$(awk 'BEGIN{RS="";FS="\n"} /Suites:[^\n]* bookworm( |\n|$)/ {for(i=1;i<=NF;i++) if ($i ~ /^URIs:/) {sub(/^URIs:[ \t]*/,"",$i); split($i,a," "); print a[1]; exit}}' /etc/apt/sources.list.d/debian.sources)
    fi
    if [ -z "$uri" ] && [ -f /etc/apt/sources.list ]; then
      uri=$(awk '$1=="deb" && $3=="bookworm" {print $2; exit}' /etc/apt/sources.list)
    fi
    [ -n "$uri" ] || { echo "setup-system: cannot find the bookworm mirror URI in apt sources" >&2; exit 1; }
    printf 'Types: deb\nURIs: %s\nSuites: bookworm-backports\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' "$uri" \
      > /etc/apt/sources.list.d/bookworm-backports.sources
  fi
fi

retry() {  # apt mirrors time out now and then: three tries, a few seconds apart
  local i
  for i in 1 2 3; do "$@" && return 0; echo "setup-system: '$*' failed (try $i)" >&2; sleep $((i * 5)); done
  return 1
}

retry apt-get update -qq
pkgs=()
if [ "$need_mesa" = 1 ]; then
  if [ "$codename" = bookworm ]; then
    retry apt-get install -y -qq --no-install-recommends -t bookworm-backports mesa-vulkan-drivers libvulkan1 >/dev/null
  else
    pkgs+=(mesa-vulkan-drivers libvulkan1)
  fi
fi
[ "$need_chromium" = 1 ] && pkgs+=(chromium)
if [ "${#pkgs[@]}" -gt 0 ]; then retry apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >/dev/null; fi

v=$(mesa_version)
dpkg --compare-versions "$v" ge 25 || { echo "setup-system: mesa-vulkan-drivers $v < 25; Dawn needs >= 25" >&2; exit 1; }
echo "setup-system: mesa-vulkan-drivers $v, $(/usr/bin/chromium --version 2>/dev/null || echo 'chromium missing')"
