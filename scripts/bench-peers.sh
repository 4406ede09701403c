#!/usr/bin/env bash
# Issue 3's benchmark: mics bench collectives against Open MPI and torch Gloo on this
# machine, in one session, alternating them, REPEATS times; prints each run's busbw
# (GB/s, SIZE, 4 local ranks) and the medians and ratios. mics runs twice per repeat
# and dtype: ordinary TypedArrays (-R 0) and allocHost buffers (-R 1, read in place).
#
#   scripts/bench-peers.sh [REPEATS] [SIZE] [--ab DIR] [--dtypes float,bfloat16] [--no-gloo]
#   e.g. scripts/bench-peers.sh 3 64M
#
# --ab DIR also runs the mics of another built checkout (dist/ and build/Release, e.g. a
# frozen `git archive` snapshot of main) in every repeat, right after this one, and
# prints this build against it (an interleaved A/B run). --dtypes: the mics dtypes
# (nccl-tests names; the peers run float only); the summary compares each dtype's busbw
# with float's. --no-gloo skips torch.
#
# Peers: apt-get install -y python3-torch openmpi-bin python3-mpi4py python3-numpy
# (shared/peers/*.py in the project's shared folder, or PEERS_DIR).
set -euo pipefail
cd "$(dirname "$0")/.."
repeats=3
size=64M
ab=
dtypes=float
gloo=1
positional=0
while [ $# -gt 0 ]; do
  case $1 in
    --ab) ab=$(cd "$2" && pwd); shift 2 ;;
    --dtypes) dtypes=$2; shift 2 ;;
    --no-gloo) gloo=0; shift ;;
    -*) echo "bench-peers: unknown option '$1'" >&2; exit 2 ;;
    *) if [ $positional = 0 ]; then repeats=$1; else size=$1; fi; positional=$((positional + 1)); shift ;;
  esac
done
peers="${PEERS_DIR:-../shared/peers}"
out="bench-results/peers-$(date -u +%Y%m%d-%H%M%S)"
mkdir -p "$out"
{
  echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ); cpu: $(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //'), nproc $(nproc)"
  if git rev-parse --short HEAD >/dev/null 2>&1; then
    echo "code: $PWD at $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- lib csrc || echo ' + uncommitted changes')"
  else
    echo "code: $PWD (snapshot of $(cat SNAPSHOT 2>/dev/null || echo '?'))"
  fi
  [ -n "$ab" ] && echo "ab: $ab at $(git -C "$ab" rev-parse --short HEAD 2>/dev/null || cat "$ab/SNAPSHOT" 2>/dev/null || echo '?')"
  echo "args: repeats $repeats, size $size, dtypes $dtypes"
} | tee "$out/machine.txt"
codes=("$PWD")
[ -n "$ab" ] && codes+=("$ab")
for i in $(seq 1 "$repeats"); do
  for code in "${codes[@]}"; do
    tag=mics
    [ "$code" != "$PWD" ] && tag=ab
    for dtype in ${dtypes//,/ }; do
      for register in 0 1; do
        node "$code/dist/cli/mics.js" bench collectives -b "$size" -e "$size" -n 20 -w 5 -c 1 -o all_gather,reduce_scatter,all_reduce --nproc 4 -R "$register" -d "$dtype" \
          | awk -v dt="$dtype" '/^# (all_gather|reduce_scatter|all_reduce):/ {op=$2; sub(":", "", op)} /^ +[0-9]/ {print "mics", op, $8, $12, dt}' >> "$out/$tag-R$register.txt"
      done
    done
  done
  mpirun --allow-run-as-root --oversubscribe -np 4 /usr/bin/python3 "$peers/mpi_bench.py" --sizes "$size" --iters 20 \
    | awk '/^ +[0-9]/ {print "mpi", $2, $5}' >> "$out/mpi.txt"
  if [ $gloo = 1 ]; then
    /usr/bin/python3 "$peers/gloo_bench.py" --nproc 4 --sizes "$size" --iters 10 --port $((29600 + i)) \
      | awk '/^ +[0-9]/ {op=$2; sub("\\*", "", op); print "gloo", op, $5}' >> "$out/gloo.txt"
  fi
  echo "repeat $i: load average $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$out/runs.txt"
done
for f in "$out"/*-R*.txt "$out"/mpi.txt "$out"/gloo.txt; do [ -f "$f" ] && sed "s|^|$(basename "$f" .txt) |" "$f"; done
node -e '
const fs = require("fs"); const dir = process.argv[1];
const med = (a) => { if (!a || !a.length) return NaN; const s = [...a].sort((x, y) => x - y); return s[Math.floor(s.length / 2)]; };
const read = (f) => fs.existsSync(`${dir}/${f}`) ? fs.readFileSync(`${dir}/${f}`, "utf8").trim().split("\n").filter(Boolean).map((l) => l.split(" ")) : [];
// rows: [who, op, oop, inplace, dtype]; key op/dtype
const by = (rows, col) => { const m = {}; for (const r of rows) (m[`${r[1]}/${r[4] ?? "float"}`] ??= []).push(Number(r[col])); return m; };
const mpi = by(read("mpi.txt"), 2), gloo = by(read("gloo.txt"), 2);
const f2 = (x) => (Number.isFinite(x) ? x.toFixed(2) : "-");
const ops = ["all_gather", "reduce_scatter", "all_reduce"];
for (const register of [0, 1]) {
  const rows = read(`mics-R${register}.txt`), mics = by(rows, 2), micsIn = by(rows, 3);
  const ab = by(read(`ab-R${register}.txt`), 2);
  const dts = [...new Set(rows.map((r) => r[4] ?? "float"))];
  console.log(`mics -R ${register} (${register ? "allocHost buffers, read in place" : "ordinary TypedArrays"}), medians of busbw GB/s:`);
  console.log("op              dtype      mics(oop) mics(inpl)   mpi    gloo   x mpi  x gloo" + (Object.keys(ab).length ? "   A/B(oop) x A/B" : "") + (dts.length > 1 ? "  x float" : ""));
  for (const dt of dts) for (const op of ops) {
    const k = `${op}/${dt}`, m = med(mics[k]), mi = med(micsIn[k]), p = med(mpi[`${op}/float`]), g = med(gloo[`${op}/float`]);
    let line = `${op.padEnd(15)} ${dt.padEnd(9)} ${f2(m).padStart(9)} ${f2(mi).padStart(10)} ${f2(p).padStart(6)} ${f2(g).padStart(6)} ${f2(m / p).padStart(7)} ${f2(m / g).padStart(7)}`;
    if (Object.keys(ab).length) line += ` ${f2(med(ab[k])).padStart(10)} ${f2(m / med(ab[k])).padStart(5)}`;
    if (dts.length > 1) line += ` ${f2(m / med(mics[`${op}/float`])).padStart(8)}`;
    console.log(line);
  }
}' "$out" | tee "$out/summary.txt"
