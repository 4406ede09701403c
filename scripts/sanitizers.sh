#!/usr/bin/env bash
# Runs the CPU backend under ThreadSanitizer and AddressSanitizer. Run by hand
# (`scripts/sanitizers.sh`), not by `npm test`: it needs g++ with libtsan and
# libasan (Debian: the gcc package brings both) and takes a few minutes.
#
#   1. ThreadSanitizer: a stock node binary cannot load a TSan-instrumented addon,
#      so test/native/tsan_harness.cc drives the same C++ (CpuCommunicator on its
#      ProgressThread, Abort and the getters from another thread, shared memory,
#      the TCP ring, allocHost regions) with ranks as threads of one process.
#   2. AddressSanitizer: the addon is rebuilt with -fsanitize=address in a copy of
#      the tree (your build/ is left alone) and the comm tests (test/comm) run on
#      it with libasan preloaded into node and into every rank process.
#
#      The one test that bounds memory growth (RSS) is left out there: ASan's
#      quarantine and shadow memory grow RSS by design, so it says nothing under ASan.
#
# Options: --tsan-only, --asan-only, --keep (keep the work directory); after `--`,
# test paths for the ASan run instead of test/comm.
# Exit status 0 only when both are clean; reports are printed, and kept with --keep.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
runTsan=1
runAsan=1
keep=0
asanTests=(test/comm)
while [ $# -gt 0 ]; do
  case "$1" in
    --tsan-only) runAsan=0 ;;
    --asan-only) runTsan=0 ;;
    --keep) keep=1 ;;
    --) shift; asanTests=("$@"); break ;;
    *) echo "unknown option $1 (use --tsan-only, --asan-only, --keep, -- test paths)" >&2; exit 2 ;;
  esac
  shift
done

work=$(mktemp -d /tmp/mics-sanitizers.XXXXXX)
if [ "$keep" = 0 ]; then trap 'rm -rf "$work"' EXIT; else echo "work directory: $work"; fi
status=0

# The C++ below csrc/napi: everything the CPU backend runs (napi.h stays out).
cpuSources() {
  (cd "$root" && ls csrc/core/dtype.cc csrc/core/error.cc csrc/comm/collective.cc csrc/comm/progress_thread.cc \
    csrc/cpu/*.cc csrc/kernels/*.cc)
}

if [ "$runTsan" = 1 ]; then
  echo "== ThreadSanitizer: test/native/tsan_harness.cc"
  (cd "$root" && g++ -std=c++17 -O1 -g -fno-omit-frame-pointer -fsanitize=thread -Icsrc \
    test/native/tsan_harness.cc $(cpuSources) -o "$work/tsan_harness" -lpthread)
  set +e
  TSAN_OPTIONS="halt_on_error=0 exitcode=66 log_path=$work/tsan-report" "$work/tsan_harness"
  rc=$?
  set -e
  reports=$(find "$work" -maxdepth 1 -name 'tsan-report.*' | wc -l)
  if [ "$reports" -gt 0 ]; then cat "$work"/tsan-report.*; fi
  echo "ThreadSanitizer: harness exit status $rc, $reports report file(s)"
  if [ "$rc" != 0 ] || [ "$reports" != 0 ]; then status=1; fi
fi

if [ "$runAsan" = 1 ]; then
  echo "== AddressSanitizer: the addon built with -fsanitize=address, test/comm with libasan preloaded"
  copy="$work/tree"
  mkdir -p "$copy"
  (cd "$root" && git ls-files -z --cached --others --exclude-standard | xargs -0 cp --parents -t "$copy")
  ln -s "$root/node_modules" "$copy/node_modules"
  (cd "$copy" && npm run --silent build:ts)
  (cd "$copy" && CXXFLAGS="-fsanitize=address -fno-omit-frame-pointer -g" LDFLAGS="-fsanitize=address" \
    npm run --silent build:native >"$work/asan-build.log" 2>&1) || { cat "$work/asan-build.log"; exit 1; }
  asanSymbols=$(nm -D "$copy/build/Release/mics.node" | grep -c __asan_ || true)
  echo "addon built with AddressSanitizer ($asanSymbols __asan_ symbols)"
  libasan=$(g++ -print-file-name=libasan.so)
  set +e
  # detect_leaks=0: node itself is not instrumented and keeps allocations to exit.
  (cd "$copy" && LD_PRELOAD="$libasan" MICS_NATIVE_VARIANT=cpu \
    ASAN_OPTIONS="detect_leaks=0:abort_on_error=0:log_path=$work/asan-report" \
    npx jest -t '^(?!.*do not grow memory)' "${asanTests[@]}")
  rc=$?
  set -e
  reports=$(find "$work" -maxdepth 1 -name 'asan-report.*' | wc -l)
  if [ "$reports" -gt 0 ]; then cat "$work"/asan-report.*; fi
  echo "AddressSanitizer: jest exit status $rc, $reports report file(s)"
  if [ "$rc" != 0 ] || [ "$reports" != 0 ] || [ "$asanSymbols" = 0 ]; then status=1; fi
fi

if [ "$status" = 0 ]; then echo "sanitizers: clean"; else echo "sanitizers: FAILED"; fi
exit "$status"
