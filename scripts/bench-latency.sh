#!/usr/bin/env bash
# Small-message all_reduce latency on one node, 4 ranks: mics (`mics bench collectives
# -T mean`: the mean per call over back-to-back calls) against Open MPI (mpi4py
# Allreduce, the same statistic: mean of rank 0 over back-to-back calls after a
# warm-up), interleaved REPEATS times in one session; prints every run and the
# medians and ratios per size. float32, sum, 8 B to 64 KiB.
#
#   scripts/bench-latency.sh [--repeats 5] [--iters 2000] [--warmup 100] [--code DIR]...
#                            [--env NAME=VALUE]... [--min 8]
#
# --code DIR (repeatable) measures other builds too (dist/ and build/Release of another
# checkout, e.g. a frozen snapshot of main), labelled by directory; a build whose
# `mics bench` has no -T reports its default statistic instead (the median per
# iteration of the slowest rank), and the summary says so. --env sets a variable for
# every mics run (e.g. MICS_SHM_INLINE_US=0). --min 4 starts mics' sweep at 4 bytes, so
# that the 8-byte row is not the first the new processes run (their start-up phase
# lands in the 4-byte row, which is not reported). Peers: apt-get install -y openmpi-bin
# python3-mpi4py python3-numpy. Raw output in bench-results/latency-<time>/.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
REPEATS=5 ITERS=2000 WARMUP=100 MIN=8
CODES=("$ROOT")
ENVS=()
while [ $# -gt 0 ]; do
  case $1 in
    --repeats) REPEATS=$2; shift 2 ;;
    --iters) ITERS=$2; shift 2 ;;
    --warmup) WARMUP=$2; shift 2 ;;
    --code) CODES+=("$(cd "$2" && pwd)"); shift 2 ;;
    --env) ENVS+=("$2"); shift 2 ;;
    --min) MIN=$2; shift 2 ;;
    -h|--help) sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "bench-latency: unknown option '$1' (see --help)" >&2; exit 2 ;;
  esac
done
command -v mpirun >/dev/null || { echo "bench-latency: mpirun not found (apt-get install -y openmpi-bin python3-mpi4py)" >&2; exit 1; }
OUT=$ROOT/bench-results/latency-$(date -u +%Y%m%d-%H%M%S)
mkdir -p "$OUT"
SIZES="8 64 512 4096 32768 65536"

# The peer: the loop of mpi_latency.py over several sizes.
cat >"$OUT/mpi_latency_sizes.py" <<EOF
import time, numpy as np
from mpi4py import MPI
c = MPI.COMM_WORLD
for size in [int(s) for s in "$SIZES".split()]:
    a = np.ones(size // 4, np.float32); b = np.empty_like(a)
    for _ in range($WARMUP): c.Allreduce(a, b)
    c.Barrier(); t = time.perf_counter()
    for _ in range($ITERS): c.Allreduce(a, b)
    dt = (time.perf_counter() - t) / $ITERS
    if c.Get_rank() == 0: print("mpi", size, dt * 1e6, flush=True)
EOF

{
  echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //'), nproc $(nproc)"
  echo "node: $(node --version); $(mpirun --version 2>&1 | head -1)"
  for code in "${CODES[@]}"; do
    echo "code: $code at $(git -C "$code" rev-parse --short HEAD 2>/dev/null || cat "$code/SNAPSHOT" 2>/dev/null || echo '?')"
  done
  echo "args: repeats $REPEATS, iters $ITERS, warmup $WARMUP, mics from $MIN B, env ${ENVS[*]:-(none)}"
} | tee "$OUT/machine.txt"

label() { [ "$1" = "$ROOT" ] && echo mics || echo "mics@$(basename "$1")"; }
for ((i = 1; i <= REPEATS; i++)); do
  for code in "${CODES[@]}"; do
    timing=()
    grep -q "'mean'" "$code/dist/cli/bench/options.js" && timing=(-T mean)
    env "${ENVS[@]}" node "$code/dist/cli/mics.js" bench collectives -b "$MIN" -e 64K -f 2 -n "$ITERS" -w "$WARMUP" -c 1 \
      -o all_reduce --nproc 4 "${timing[@]}" |
      awk -v who="$(label "$code")${timing[*]:+ mean}" -v sizes=" $SIZES " \
        '/^ +[0-9]/ && index(sizes, " " $1 " ") {print who, $1, $6, $10}' >>"$OUT/mics.txt"
  done
  mpirun --allow-run-as-root --oversubscribe -np 4 /usr/bin/python3 "$OUT/mpi_latency_sizes.py" >>"$OUT/mpi.txt"
  echo "repeat $i: load average $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$OUT/runs.txt"
done
cat "$OUT/mics.txt" "$OUT/mpi.txt" >"$OUT/raw.txt"
node - "$OUT" <<'EOF' | tee "$OUT/summary.txt"
const fs = require('fs');
const dir = process.argv[2];
const med = (a) => { const s = [...a].sort((x, y) => x - y); return s.length % 2 ? s[s.length >> 1] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2; };
const rows = fs.readFileSync(`${dir}/raw.txt`, 'utf8').trim().split('\n').map((l) => l.split(' '));
// "mics 8 <oop us> <inplace us>" or "mics@main 8 ..." (a label may carry " mean"), "mpi 8 <us>"
const by = new Map();
for (const r of rows) {
  const who = r[0] === 'mpi' ? 'mpi' : r.slice(0, r.length - 3).join(' ');
  const size = r[r.length - (r[0] === 'mpi' ? 2 : 3)];
  const v = r[0] === 'mpi' ? [Number(r[2])] : [Number(r[r.length - 2]), Number(r[r.length - 1])];
  const key = `${who}|${size}`;
  if (!by.has(key)) by.set(key, []);
  by.get(key).push(v);
}
const whos = [...new Set([...by.keys()].map((k) => k.split('|')[0]))].filter((w) => w !== 'mpi');
const sizes = [...new Set([...by.keys()].map((k) => Number(k.split('|')[1])))].sort((a, b) => a - b);
console.log('all_reduce float32 sum, 4 ranks, one node; medians over the repeats of the per-run figure (us);');
console.log("'mean': mean per call over back-to-back calls (both sides); otherwise the median per iteration of the slowest rank");
console.log(['size', 'mpi', ...whos.flatMap((w) => [`${w} oop`, `${w} inpl`, 'x mpi (oop)'])].join(' | '));
for (const size of sizes) {
  const mpi = med((by.get(`mpi|${size}`) ?? []).map((v) => v[0]));
  const cells = whos.flatMap((w) => {
    const v = by.get(`${w}|${size}`) ?? [];
    const oop = med(v.map((x) => x[0])), inpl = med(v.map((x) => x[1]));
    return [oop.toFixed(1), inpl.toFixed(1), `${(oop / mpi).toFixed(2)}x`];
  });
  console.log([size, mpi.toFixed(1), ...cells].join(' | '));
}
EOF
