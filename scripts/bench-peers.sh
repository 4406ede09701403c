#!/usr/bin/env bash
# Issue 3's benchmark: mics bench collectives against Open MPI and torch Gloo on this
# machine, in one session, alternating them, REPEATS times; prints each run's busbw
# (GB/s, 64 MiB float32, 4 local ranks) and the medians and ratios. mics runs twice
# per repeat: ordinary TypedArrays (-R 0) and allocHost buffers (-R 1, read in place).
#
#   scripts/bench-peers.sh [REPEATS] [SIZE]      e.g. scripts/bench-peers.sh 3 64M
#
# Peers: apt-get install -y python3-torch openmpi-bin python3-mpi4py python3-numpy
# (shared/peers/*.py in the project's shared folder).
set -euo pipefail
cd "$(dirname "$0")/.."
repeats="${1:-3}"
size="${2:-64M}"
peers="${PEERS_DIR:-../shared/peers}"
out="bench-results/peers-$(date -u +%Y%m%d-%H%M%S)"
mkdir -p "$out"
for i in $(seq 1 "$repeats"); do
  for register in 0 1; do
    node dist/cli/mics.js bench collectives -b "$size" -e "$size" -n 20 -w 5 -c 1 -o all_gather,reduce_scatter,all_reduce --nproc 4 -R "$register" \
      | awk '/^# (all_gather|reduce_scatter|all_reduce):/ {op=$2; sub(":", "", op)} /^ +[0-9]/ {print "mics", op, $8, $12}' >> "$out/mics-R$register.txt"
  done
  mpirun --allow-run-as-root --oversubscribe -np 4 /usr/bin/python3 "$peers/mpi_bench.py" --sizes "$size" --iters 20 \
    | awk '/^ +[0-9]/ {print "mpi", $2, $5}' >> "$out/mpi.txt"
  /usr/bin/python3 "$peers/gloo_bench.py" --nproc 4 --sizes "$size" --iters 10 --port $((29600 + i)) \
    | awk '/^ +[0-9]/ {op=$2; sub("\\*", "", op); print "gloo", op, $5}' >> "$out/gloo.txt"
done
for f in "$out"/*.txt; do sed "s|^|$(basename "$f" .txt) |" "$f"; done
node -e '
const fs = require("fs"); const dir = process.argv[1];
const med = (a) => { const s = [...a].sort((x, y) => x - y); return s[Math.floor(s.length / 2)]; };
const read = (f) => fs.readFileSync(`${dir}/${f}`, "utf8").trim().split("\n").map((l) => l.split(" "));
const by = (rows, col) => { const m = {}; for (const r of rows) (m[r[1]] ??= []).push(Number(r[col])); return m; };
const mpi = by(read("mpi.txt"), 2), gloo = by(read("gloo.txt"), 2);
for (const register of [0, 1]) {
  const rows = read(`mics-R${register}.txt`), mics = by(rows, 2), micsIn = by(rows, 3);
  console.log(`mics -R ${register} (${register ? "allocHost buffers, read in place" : "ordinary TypedArrays"}), medians of busbw GB/s:`);
  console.log("op              mics(oop) mics(inpl)   mpi    gloo   x mpi  x gloo");
  for (const op of ["all_gather", "reduce_scatter", "all_reduce"]) {
    const m = med(mics[op]), mi = med(micsIn[op]), p = med(mpi[op]), g = med(gloo[op]);
    console.log(`${op.padEnd(15)} ${m.toFixed(2).padStart(9)} ${mi.toFixed(2).padStart(10)} ${p.toFixed(2).padStart(6)} ${g.toFixed(2).padStart(6)} ${(m / p).toFixed(2).padStart(7)} ${(m / g).toFixed(2).padStart(7)}`);
  }
}' "$out" | tee "$out/summary.txt"
