#!/usr/bin/env bash
# Sets up dexrl on a fresh Debian machine, idempotently: bun (from npm), the SwiftShader Vulkan
# driver when no GPU driver is present, and the project's npm dependencies. Safe to re-run.
set -euo pipefail
cd "$(dirname "$0")/.."
BUN_VERSION=1.4.5
say() { printf '[setup] %s\n' "$*" >&2; }

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"
  elif command -v sudo >/dev/null; then sudo "$@"
  else say "need root for: $*"; return 1; fi
}

# 1. bun, installed from the npm registry into .tools/ (a fresh machine has node+npm, no bun).
if [ ! -x .tools/bin/bun ] || [ "$(.tools/bin/bun --version 2>/dev/null)" != "$BUN_VERSION" ]; then
  say "installing bun $BUN_VERSION from npm into .tools/"
  mkdir -p .tools/bin
  npm install --prefix .tools --no-save --no-audit --no-fund --loglevel=error "bun@$BUN_VERSION" >&2
  ln -sf ../node_modules/.bin/bun .tools/bin/bun
fi

# 2. A Vulkan driver for WebGPU. A GPU machine brings its own; otherwise Debian's chromium ships
#    SwiftShader (a CPU Vulkan driver that Dawn accepts; Mesa's lavapipe is rejected by Dawn).
has_gpu_device() { [ -e /dev/nvidiactl ] || compgen -G "/dev/dri/renderD*" >/dev/null; }
need=()
[ -e /usr/lib/x86_64-linux-gnu/libvulkan.so.1 ] || ldconfig -p 2>/dev/null | grep -q 'libvulkan.so.1 ' || need+=(libvulkan1)
if ! has_gpu_device && [ ! -e /usr/lib/chromium/vk_swiftshader_icd.json ]; then need+=(chromium); fi
if [ ${#need[@]} -gt 0 ]; then
  say "installing Debian packages: ${need[*]} (a minute or two; log in ${TMPDIR:-/tmp}/dexrl-apt.log)"
  log="${TMPDIR:-/tmp}/dexrl-apt.log"
  if ! { as_root apt-get update -qq && as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"; } >"$log" 2>&1; then
    tail -n 30 "$log" >&2
    say "apt-get failed (see above); install ${need[*]} by hand, or a Vulkan GPU driver"
    exit 1
  fi
fi

# 3. npm dependencies. Lifecycle scripts stay blocked (bun's default): onnxruntime-node's would
#    download CUDA binaries from outside the registry; its CPU binaries are in the package.
if [ ! -f node_modules/.dexrl-installed ] || [ package.json -nt node_modules/.dexrl-installed ] || [ bun.lock -nt node_modules/.dexrl-installed ]; then
  say "installing npm dependencies"
  ONNXRUNTIME_NODE_INSTALL=skip .tools/bin/bun install --frozen-lockfile >&2
  touch node_modules/.dexrl-installed
fi
say "ready: $(.tools/bin/bun --version) (bun), $(ls node_modules | wc -l) packages"
