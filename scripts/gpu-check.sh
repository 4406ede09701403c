#!/usr/bin/env bash
# The GPU check in one command (issue 15): preflight, the GPU tests, several NCCL ranks
# on one GPU, the no-device messages, trimmed benchmarks; a report written as it goes,
# an overall deadline, and a non-zero exit on any failure OR skip.
#
#   scripts/gpu-check.sh pack [DIR]       here (Node, npm install, npm run build:ts,
#                                         npm run build:native, npm run build:cmake done):
#                                         packs what a GPU machine without Node.js needs
#                                         into DIR (default .gpu-carry): node.xz and
#                                         payload.tar.xz (dist, both addons, node_modules
#                                         of the production dependencies + jest), checked
#                                         to fit the 64 MiB carry limit
#   scripts/gpu-check.sh pack --dry-run   the same into a temporary directory, then removed
#   scripts/gpu-check.sh run [OUTDIR]     on the GPU machine: unpacks .gpu-carry when there
#                                         is one, runs everything, writes OUTDIR
#                                         (default: $OUT, else ./gpu-report)
#
# Phases of `run` and their budgets (seconds; MICS_GPU_CHECK_SECONDS, default 240, is the
# overall deadline; a phase gets what is left when that is less):
#   a) preflight (30): nvidia-smi -q, driver and runtime versions, glibc, ldd of the addon,
#      NCCL path and version, mics info; stops here (exit 3) when the build cannot run
#   b) GPU tests (100): jest with MICS_REQUIRE_GPU=1, JSON results, NCCL_DEBUG=INFO to files
#   c) multi-rank NCCL on one GPU (90): 2 and 4 ranks, hierarchical all-gather, a kill;
#      only in compute mode Default (else recorded as skipped)
#   d) no devices (30): CUDA_VISIBLE_DEVICES= : every message names why
#   e) benchmarks (what is left): nccl-tests columns (1 rank), kernel GB/s against copy
#      bandwidth, N-API call overhead against a bare enqueue
# Exit: 0 only when every phase ran and passed with nothing skipped; 3 when the
# preflight says the build cannot run here; 1 otherwise.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
CARRY_DIR=.gpu-carry
CARRY_LIMIT=$((64 * 1024 * 1024))

die() { echo "gpu-check: $*" >&2; exit 2; }
mib() { awk -v b="$1" 'BEGIN { printf "%.1f MiB", b / 1048576 }'; }

# xz, or Python's lzma where xz is not installed (the lent machine has Python).
unxz_to_stdout() {
  if command -v xz >/dev/null 2>&1; then xz -dc "$1"
  else python3 -c 'import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.argv[1]), sys.stdout.buffer)' "$1"
  fi
}

# ---------------------------------------------------------------- pack
pack() {
  local dry=0 dir=$CARRY_DIR
  for a in "$@"; do
    case "$a" in
      --dry-run) dry=1 ;;
      -*) die "pack: unknown option $a" ;;
      *) dir=$a ;;
    esac
  done
  command -v node >/dev/null 2>&1 || die "pack needs node"
  command -v xz >/dev/null 2>&1 || die "pack needs xz"
  local list
  list=$(node scripts/gpu-carry.js) || die "pack: the carry is incomplete (see above)"
  [ "$dry" = 1 ] && dir=$(mktemp -d "${TMPDIR:-/tmp}/mics-gpu-carry.XXXXXX")
  mkdir -p "$dir"
  rm -f "$dir/node.xz" "$dir/payload.tar.xz"
  # xz -0: a few seconds, and what it saves over -9 is not needed to fit.
  xz -T0 -0 -c "$(command -v node)" > "$dir/node.xz" || die "pack: xz of node failed"
  printf '%s\n' "$list" | tar -cf - -T - | xz -T0 -0 > "$dir/payload.tar.xz" || die "pack: tar of the payload failed"
  printf '%s\n' "$list" > "$dir/MANIFEST"
  { node --version; git rev-parse HEAD 2>/dev/null || true; } > "$dir/VERSION"
  local status=0 total names
  total=$(cat "$dir"/* | wc -c)
  echo "carry: $dir"
  for f in node.xz payload.tar.xz MANIFEST VERSION; do echo "  $f  $(mib "$(wc -c < "$dir/$f")")"; done
  echo "  payload: $(printf '%s\n' "$list" | wc -l) entries ($(printf '%s\n' "$list" | grep -c '^node_modules/') packages)"
  # What the GPU run cannot do without.
  names=$(unxz_to_stdout "$dir/payload.tar.xz" | tar -tf -)
  for need in dist/index.js dist/cli/mics.js dist/cli/mics-launch.js dist/cuda/preflight.js build-cmake/Release/mics.node \
      build/Release/mics.node node_modules/jest/bin/jest.js node_modules/ts-jest/package.json \
      node_modules/typescript/lib/typescript.js node_modules/@types/jest/index.d.ts node_modules/commander/package.json \
      node_modules/node-gyp-build/package.json; do
    grep -qx "$need" <<< "$names" || { echo "  MISSING from the payload: $need"; status=1; }
  done
  for unwanted in node_modules/cmake-js/ node_modules/prebuildify/ node_modules/eslint/; do
    grep -q "^$unwanted" <<< "$names" && { echo "  NOT NEEDED but packed: $unwanted"; status=1; }
  done
  if [ "$total" -gt "$CARRY_LIMIT" ]; then
    echo "  total $(mib "$total"): OVER the $(mib "$CARRY_LIMIT") carry limit"; status=1
  else
    echo "  total $(mib "$total") of $(mib "$CARRY_LIMIT"): fits"
  fi
  if [ "$dry" = 1 ]; then rm -rf "$dir"; echo "dry run: removed $dir"
  elif [ "$status" = 0 ]; then echo "carry to the GPU machine: $dir (one path)"; fi
  return $status
}

# ---------------------------------------------------------------- run
run() {
  local out="${1:-${OUT:-./gpu-report}}"
  mkdir -p "$out" && out=$(cd "$out" && pwd) || die "cannot create $out"
  local start deadline report
  start=$(date +%s)
  deadline=$((start + ${MICS_GPU_CHECK_SECONDS:-240}))
  report="$out/gpu-report.md"
  local -a problems=()
  say() { printf '%s\n' "$*" >> "$report"; }
  left() { echo $((deadline - $(date +%s))); }
  budget() { local want=$1 l; l=$(left); [ "$l" -lt "$want" ] && want=$l; [ "$want" -lt 1 ] && want=1; echo "$want"; }
  problem() { problems+=("$1"); say "- **$1**"; }

  : > "$report"
  say "# mics GPU check, $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  say ""
  say "Host $(hostname), commit $(git rev-parse --short HEAD 2>/dev/null || cat $CARRY_DIR/VERSION 2>/dev/null | tail -1), deadline ${MICS_GPU_CHECK_SECONDS:-240} s."
  say ""

  # Node, and the carried builds (the lent machine has no Node.js).
  if [ -f "$CARRY_DIR/node.xz" ] && ! command -v node >/dev/null 2>&1; then
    mkdir -p "$CARRY_DIR/bin" && unxz_to_stdout "$CARRY_DIR/node.xz" > "$CARRY_DIR/bin/node" && chmod +x "$CARRY_DIR/bin/node"
    export PATH="$ROOT/$CARRY_DIR/bin:$PATH"
  fi
  command -v node >/dev/null 2>&1 || { say "Stopped: no node (install Node.js, or run \`scripts/gpu-check.sh pack\` and carry $CARRY_DIR)"; exit 2; }
  if [ -f "$CARRY_DIR/payload.tar.xz" ]; then
    unxz_to_stdout "$CARRY_DIR/payload.tar.xz" | tar -xf - || { say "Stopped: could not unpack $CARRY_DIR/payload.tar.xz"; exit 2; }
    say "Unpacked $CARRY_DIR ($(cat $CARRY_DIR/VERSION 2>/dev/null | tr '\n' ' '))."
  fi
  [ -f build-cmake/Release/mics.node ] || { say "Stopped: no build-cmake/Release/mics.node (carry $CARRY_DIR or run npm run build:cmake)"; exit 2; }
  [ -d dist ] || { say "Stopped: no dist/ (npm run build:ts)"; exit 2; }

  export MICS_NATIVE_VARIANT=cuda MICS_REQUIRE_GPU=1
  if [ -z "${MICS_NCCL_LIBRARY:-}" ]; then
    for py in python3 python; do
      command -v "$py" >/dev/null 2>&1 || continue
      lib=$("$py" -c 'import os, nvidia.nccl as m; print(os.path.join(list(m.__path__)[0], "lib", "libnccl.so.2"))' 2>/dev/null) &&
        [ -f "$lib" ] && { export MICS_NCCL_LIBRARY="$lib"; break; }
    done
  fi
  mkdir -p "$out/nccl-debug"
  export NCCL_DEBUG=INFO NCCL_DEBUG_FILE="$out/nccl-debug/%h.%p.log"
  local JEST="node node_modules/jest/bin/jest.js"

  # jest_phase NAME SECONDS FILE...: runs the files, records failures and skips.
  jest_phase() {
    local name=$1 secs=$2; shift 2
    local t0 rc summary
    t0=$(date +%s)
    timeout -k 10 "$(budget "$secs")" $JEST --ci --json --outputFile="$out/$name.json" --maxWorkers=4 "$@" > "$out/$name.log" 2>&1
    rc=$?
    summary=$(node -e '
      const fs = require("fs"); const [file, rc] = process.argv.slice(1);
      let r; try { r = JSON.parse(fs.readFileSync(file, "utf8")); } catch { console.log(`no results (exit ${rc}${rc === "124" || rc === "137" ? ": deadline" : ""})`); process.exit(3); }
      const lines = [`${r.numPassedTests} passed, ${r.numFailedTests} failed, ${r.numPendingTests + r.numTodoTests} skipped of ${r.numTotalTests}; suites failed to run: ${r.numRuntimeErrorTestSuites}`];
      for (const s of r.testResults) {
        if (s.status === "failed" && s.assertionResults.length === 0) lines.push(`  SUITE FAILED ${s.name.replace(process.cwd() + "/", "")}: ${(s.message || "").split("\n").slice(0, 3).join(" ")}`);
        for (const a of s.assertionResults) if (a.status !== "passed") lines.push(`  ${a.status.toUpperCase()} ${a.fullName}${a.failureMessages.length ? ": " + a.failureMessages[0].split("\n")[0].slice(0, 300) : ""}`);
      }
      if (lines.length > 21) lines.splice(21, lines.length - 21, `  ... and ${lines.length - 21} more (see the log)`);
      console.log(lines.join("\n"));
      process.exit(r.numFailedTests + r.numRuntimeErrorTestSuites > 0 ? 1 : r.numPendingTests + r.numTodoTests > 0 ? 2 : 0);
    ' "$out/$name.json" "$rc")
    local verdict=$?
    say '```'
    say "$summary"
    say '```'
    say "($(( $(date +%s) - t0 )) s; full log: $name.log, results: $name.json)"
    case "$verdict" in
      0) [ "$rc" = 0 ] || problem "$name: jest exited $rc" ;;
      1) problem "$name: failures" ;;
      2) problem "$name: skipped tests" ;;
      *) problem "$name: did not finish (exit $rc)" ;;
    esac
  }

  # a) preflight
  nvidia-smi -q > "$out/nvidia-smi-q.txt" 2>&1
  nvidia-smi > "$out/nvidia-smi.txt" 2>&1
  ldd build-cmake/Release/mics.node > "$out/ldd.txt" 2>&1
  timeout -k 5 "$(budget 30)" node dist/cuda/preflight.js "$out" build-cmake/Release/mics.node > "$out/preflight.log" 2>&1
  local pre=$?
  cat "$out/preflight.md" >> "$report" 2>/dev/null || say "preflight wrote nothing (exit $pre): see preflight.log"
  node dist/cli/mics.js info --json > "$out/mics-info.json" 2>&1
  say ""
  say '```'
  node dist/cli/mics.js info >> "$report" 2>&1
  say '```'
  if [ "$pre" != 0 ] && [ "${MICS_GPU_CHECK_IGNORE_PREFLIGHT:-}" = 1 ]; then
    # For checking this script itself on a machine without a GPU: every phase runs (and fails).
    problem "preflight: blockers (MICS_GPU_CHECK_IGNORE_PREFLIGHT=1: going on anyway)"
  elif [ "$pre" != 0 ]; then
    say ""
    say "Stopped after the preflight (exit $pre): the CUDA build cannot run its checks on this machine (blockers above)."
    cat "$report"
    exit 3
  fi

  # b) GPU tests
  say ""
  say "## GPU tests (MICS_REQUIRE_GPU=1)"
  jest_phase gpu-tests 100 test/cuda/device-tensor.test.ts test/cuda/kernels.test.ts test/nccl/collectives.test.ts \
    test/nccl/config.test.ts test/engine/cuda.test.ts test/engine/checkpoint-cuda.test.ts test/native.test.ts

  # c) several NCCL ranks on one GPU
  say ""
  say "## NCCL ranks sharing one GPU (2 and 4 ranks, hierarchical all-gather, a kill)"
  local mode
  mode=$(nvidia-smi --query-gpu=compute_mode --format=csv,noheader 2>/dev/null | head -1 | tr -d ' ')
  if [ "$mode" = "Default" ]; then
    jest_phase one-gpu 90 test/nccl/one-gpu.test.ts
  else
    problem "one-gpu: skipped: compute mode '${mode:-unknown}' (Default is needed for several processes on one GPU: nvidia-smi -c DEFAULT)"
  fi

  # d) no devices
  say ""
  say "## Without devices (CUDA_VISIBLE_DEVICES=)"
  CUDA_VISIBLE_DEVICES= jest_phase no-device 30 test/cuda/no-device.test.ts test/nccl/backend.test.ts
  CUDA_VISIBLE_DEVICES= timeout 20 node dist/cli/mics.js info > "$out/no-device-info.txt" 2>&1
  local nd=$?
  say '```'
  grep -E '^(cuda devices|cuda driver|error):' "$out/no-device-info.txt" >> "$report"
  say '```'
  if [ "$nd" != 1 ] || ! grep -q 'no CUDA-capable device\|cudaErrorNoDevice' "$out/no-device-info.txt"; then
    problem "no-device: mics info (MICS_REQUIRE_GPU=1) exited $nd without naming the missing device"
  fi

  # e) benchmarks, trimmed, with what is left
  say ""
  say "## Benchmarks"
  bench() {
    local name=$1 secs=$2; shift 2
    say "### $name"
    say '```'
    timeout -k 5 "$(budget "$secs")" "$@" > "$out/$name.txt" 2>&1
    local rc=$?
    tail -40 "$out/$name.txt" >> "$report"
    say '```'
    if [ "$rc" != 0 ]; then problem "$name: exit $rc$([ "$rc" = 124 ] && echo ' (deadline)')"
    elif grep -q '^# skipped' "$out/$name.txt"; then problem "$name: skipped"; fi
  }
  bench bench-collectives 60 node dist/cli/mics.js bench collectives --backend nccl --nproc 1 -b 8 -e 64M -f 8 -n 5 -w 2
  BENCH_ELEMENTS=$((16 << 20)) bench bench-kernels 45 node scripts/bench-gpu-kernels.js

  # f) verdict
  say ""
  say "## Result"
  say "$(( $(date +%s) - start )) s in all."
  if [ "${#problems[@]}" = 0 ]; then
    say "PASS: every phase ran and passed, nothing skipped."
    cat "$report"
    exit 0
  fi
  say "FAIL: ${#problems[@]} problem(s):"
  for p in "${problems[@]}"; do say "- $p"; done
  cat "$report"
  exit 1
}

mode="${1:-run}"
case "$mode" in
  pack) shift; pack "$@" ;;
  run) shift || true; run "$@" ;;
  *) echo "usage: scripts/gpu-check.sh pack [--dry-run] [DIR] | run [OUTDIR]" >&2; exit 2 ;;
esac
