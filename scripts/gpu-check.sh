#!/usr/bin/env bash
# GPU validation in one command (issue 6): builds (or takes a carried build),
# runs the GPU tests and the GPU benchmarks, and writes a report.
#
#   scripts/gpu-check.sh pack          on a machine with Node and nvcc: builds the CUDA
#                                      addon and packs node + node_modules into .gpu-carry/
#                                      for a GPU machine that has no Node.js
#   scripts/gpu-check.sh run [OUTDIR]  on the GPU machine (a CI runner labelled gpu, or
#                                      the lent device machine): report in OUTDIR
#                                      (default: $OUT, else ./gpu-report)
#
# On the lent device machine (CUDA, NCCL from Python's nvidia-nccl wheel, PyTorch, no
# Node.js), carry: .gpu-carry, dist, build-cmake/Release/mics.node (see docs/cuda.md).
set -uo pipefail
cd "$(dirname "$0")/.."
mode="${1:-run}"

pack() {
  set -e
  npm run build:ts >/dev/null
  npm run build:cmake
  mkdir -p .gpu-carry
  xz -T0 -6 -c "$(command -v node)" > .gpu-carry/node.xz
  tar -C . -cf - node_modules | xz -T0 -6 > .gpu-carry/node_modules.tar.xz
  du -sh .gpu-carry/* build-cmake/Release/mics.node dist
}

find_node() {
  if command -v node >/dev/null 2>&1; then command -v node; return; fi
  if [ -f .gpu-carry/node.xz ]; then
    xz -dc .gpu-carry/node.xz > /tmp/mics-node && chmod +x /tmp/mics-node && echo /tmp/mics-node; return
  fi
  return 1
}

find_nccl() {
  [ -n "${MICS_NCCL_LIBRARY:-}" ] && { echo "$MICS_NCCL_LIBRARY"; return; }
  for py in python3 python; do
    command -v "$py" >/dev/null 2>&1 || continue
    lib=$("$py" -c 'import os, nvidia.nccl as m; print(os.path.join(list(m.__path__)[0], "lib", "libnccl.so.2"))' 2>/dev/null) && [ -f "$lib" ] && { echo "$lib"; return; }
  done
  return 1
}

run() {
  local out="${1:-${OUT:-./gpu-report}}"
  mkdir -p "$out"
  local report="$out/gpu-report.md"
  local NODE
  NODE=$(find_node) || { echo "no node binary: install Node.js or run 'scripts/gpu-check.sh pack' and carry .gpu-carry" | tee "$report"; exit 2; }
  if [ ! -d node_modules ] && [ -f .gpu-carry/node_modules.tar.xz ]; then xz -dc .gpu-carry/node_modules.tar.xz | tar -xf -; fi
  if [ ! -f build-cmake/Release/mics.node ]; then
    if command -v cmake >/dev/null 2>&1 && { command -v nvcc >/dev/null 2>&1 || [ -x /usr/local/cuda/bin/nvcc ]; }; then
      PATH="$(dirname "$NODE"):$PATH" "$NODE" node_modules/.bin/cmake-js rebuild --out build-cmake >"$out/build.log" 2>&1 || { echo "CMake build failed: see build.log" | tee "$report"; exit 1; }
    else
      echo "no CUDA build: carry build-cmake/Release/mics.node or install cmake and nvcc" | tee "$report"; exit 2
    fi
  fi
  [ -d dist ] || PATH="$(dirname "$NODE"):$PATH" "$NODE" node_modules/.bin/tsc -p tsconfig.build.json
  export MICS_NATIVE_VARIANT=cuda
  if lib=$(find_nccl); then export MICS_NCCL_LIBRARY="$lib"; fi
  export PATH="$(dirname "$NODE"):$PATH"
  local gpus
  gpus=0
  command -v nvidia-smi >/dev/null 2>&1 && gpus=$(nvidia-smi -L 2>/dev/null | wc -l)
  {
    echo "# mics GPU check, $(date -u +%Y-%m-%dT%H:%MZ)"
    echo
    echo '```'
    if [ "$gpus" -gt 0 ]; then nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1 | head -9
    else echo "nvidia-smi: not found or no GPU"; fi
    "$NODE" dist/cli/mics.js info
    echo '```'
    echo
    echo "## GPU tests (jest test/cuda test/nccl test/engine/cuda.test.ts)"
    echo '```'
    "$NODE" node_modules/.bin/jest test/cuda test/nccl test/engine/cuda.test.ts test/native.test.ts 2>&1 | grep -E "^(PASS|FAIL)|Tests:|skipped|✕" | head -60
    echo '```'
    echo
    echo "## NCCL collectives, 1 rank (mics bench collectives --backend nccl --nproc 1)"
    echo '```'
    timeout 600 "$NODE" dist/cli/mics.js bench collectives --backend nccl --nproc 1 -b 8 -e 256M -f 4 -n 20 -w 5 2>&1 | tail -60
    echo '```'
    if [ "$gpus" -gt 1 ]; then
      echo
      echo "## NCCL collectives, $gpus ranks"
      echo '```'
      timeout 600 "$NODE" dist/cli/mics.js bench collectives --backend nccl --nproc "$gpus" -b 8 -e 256M -f 4 -n 20 -w 5 2>&1 | tail -60
      echo '```'
    fi
    echo
    echo "## Kernels (scripts/bench-gpu-kernels.js)"
    echo '```'
    timeout 600 "$NODE" scripts/bench-gpu-kernels.js 2>&1
    echo '```'
  } > "$report" 2>&1
  cat "$report"
}

case "$mode" in
  pack) pack ;;
  run) shift || true; run "$@" ;;
  *) echo "usage: scripts/gpu-check.sh pack | run [OUTDIR]" >&2; exit 2 ;;
esac
