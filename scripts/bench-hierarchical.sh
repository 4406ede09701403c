#!/usr/bin/env bash
# Hierarchical vs flat MiCS partition all-gather on an emulated 2-node cluster (issue 4).
#
#   sudo scripts/bench-hierarchical.sh [--repeats 3] [--rate 1gbit] [--delay 100us]
#        [--min 1M] [--max 64M] [--factor 4] [--iters 10] [--warmup 3]
#        [--only a,b,c] [--out DIR] [--code DIR] [--tcp-cc NAME]
#
# Brings up scripts/emulated-cluster.sh (one network namespace per node, links shaped
# with tc), then runs one mics-launch per node inside its namespace (store on node 0 at
# 10.77.0.1) with `mics bench partition`:
#   a   2 nodes x 2 ranks, -S 4 --mode both      hierarchical vs flat, predicted 1.5x
#   b   2 nodes x 4 ranks, -S 8 --mode both      hierarchical vs flat, predicted 1.75x
#   c4  2 nodes x 4 ranks, -S 4 --mode flat      partition = one node (MiCS)
#   c8  2 nodes x 4 ranks, -S 8 --mode flat      partition = world (ZeRO-3)
#   ra  2 nodes x 2 ranks, -S 4 --mode both -o reduce_scatter   gradients, predicted 1.5x
#   rb  2 nodes x 4 ranks, -S 8 --mode both -o reduce_scatter   gradients, predicted 1.75x
# (default: a,b,c; --only a,b,ra,rb for the hierarchical ones). The summary also gives
# each hierarchical time against its link bound: (S-G)/S of the size over the link's
# goodput (the mean of the two directions that `measure` reports before the runs).
# c4 and c8 use the same -b/-e: the same gathered parameter bytes per rank (the unit a
# rank materialises), so c4's shards are twice c8's; see docs/benchmarks.md.
# Every configuration runs --repeats times, interleaved (a b c4 c8 a b c4 c8 ...) so a
# slow phase of the machine hits all of them; the summary quotes medians over repeats.
# Raw outputs go to bench-results/hierarchical-<time>/ (ignored by git); the cluster is
# torn down at the end, also on failure or Ctrl-C. Needs root (network namespaces).
# --code DIR runs dist/ and build/Release/mics.node of another checkout (e.g. a frozen
# `git archive` snapshot, built, while the working tree keeps changing); default: this one.
# --prefix P uses emulated cluster P (scripts/emulated-cluster.sh --prefix; default
# $MICS_CLUSTER_PREFIX, else mics), so two benchmarks never share a cluster.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
CLUSTER=$ROOT/scripts/emulated-cluster.sh
CODE=$ROOT
TCP_CC=
REPEATS=3 RATE=1gbit DELAY=100us MIN=1M MAX=64M FACTOR=4 ITERS=10 WARMUP=3 ONLY=a,b,c OUT=
NODES=2

die() { echo "bench-hierarchical: error: $*" >&2; exit 1; }
log() { echo "bench-hierarchical: $*" >&2; }

while [ $# -gt 0 ]; do
  case $1 in
    --repeats) REPEATS=$2; shift 2 ;;
    --rate) RATE=$2; shift 2 ;;
    --delay) DELAY=$2; shift 2 ;;
    --min) MIN=$2; shift 2 ;;
    --max) MAX=$2; shift 2 ;;
    --factor) FACTOR=$2; shift 2 ;;
    --iters) ITERS=$2; shift 2 ;;
    --warmup) WARMUP=$2; shift 2 ;;
    --only) ONLY=$2; shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    --tcp-cc) TCP_CC=$2; shift 2 ;;
    --code) CODE=$(cd "$2" && pwd) || die "--code '$2' is not a directory"; shift 2 ;;
    --prefix) export MICS_CLUSTER_PREFIX=$2; shift 2 ;;
    -h|--help) sed -n '2,32p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown option '$1' (see --help)" ;;
  esac
done
[[ $REPEATS =~ ^[1-9][0-9]*$ ]] || die "--repeats '$REPEATS' is not a positive integer"
[ "$(id -u)" -eq 0 ] || die "must run as root (network namespaces): try sudo $0"
command -v node >/dev/null || die "node not found"
[ -f "$CODE/dist/cli/mics.js" ] && [ -f "$CODE/dist/cli/mics-launch.js" ] ||
  die "$CODE/dist is not built: run 'npx tsc -p tsconfig.build.json' first"
[ -f "$CODE/build/Release/mics.node" ] || die "the addon is not built (build/Release/mics.node): run 'npm install' or 'npx node-gyp rebuild'"

OUT=${OUT:-$ROOT/bench-results/hierarchical-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$OUT"

PIDS=()
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  local p
  for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done
  "$CLUSTER" down >/dev/null 2>&1 || true
  log "cluster down; raw outputs in $OUT"
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---- machine and links ---------------------------------------------------------------
{
  echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  if git -C "$CODE" rev-parse --short HEAD >/dev/null 2>&1; then
    echo "code: $CODE at $(git -C "$CODE" rev-parse --short HEAD)$(git -C "$CODE" diff --quiet HEAD -- lib csrc 2>/dev/null || echo ' + uncommitted changes in lib/ or csrc/')"
  else
    echo "code: $CODE (not a git checkout$([ -f "$CODE/SNAPSHOT" ] && echo ": snapshot of $(cat "$CODE/SNAPSHOT")"))"
  fi
  echo "addon: $(sha256sum "$CODE/build/Release/mics.node" | cut -c1-16), built $(date -u -r "$CODE/build/Release/mics.node" +%Y-%m-%dT%H:%M:%SZ)"
  echo "nproc: $(nproc)"
  echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //')"
  echo "kernel: $(uname -r)"
  echo "node: $(node --version)"
  echo "memory: $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo)"
  echo "args: repeats=$REPEATS rate=$RATE delay=$DELAY -b $MIN -e $MAX -f $FACTOR -n $ITERS -w $WARMUP"
} >"$OUT/machine.txt"
cat "$OUT/machine.txt" >&2

"$CLUSTER" up "$NODES" --rate "$RATE" --delay "$DELAY" ${TCP_CC:+--tcp-cc "$TCP_CC"} 2>&1 | tee "$OUT/cluster-up.txt" >&2
"$CLUSTER" status >"$OUT/cluster-status.txt" 2>&1
echo "tcp (node 0): congestion control $("$CLUSTER" run 0 sysctl -n net.ipv4.tcp_congestion_control)," \
  "slow start after idle $("$CLUSTER" run 0 sysctl -n net.ipv4.tcp_slow_start_after_idle)" >>"$OUT/machine.txt"
{
  "$CLUSTER" measure --from 0 --to 1 --mb 100
  "$CLUSTER" measure --from 1 --to 0 --mb 100
} 2>&1 | tee "$OUT/link-check.txt" >&2

# ---- runs ---------------------------------------------------------------------------
PORT=29650
# run_config NAME G REPEAT ARGS...: one launcher per node; node 0's output holds rank 0's table.
run_config() {
  local name=$1 g=$2 rep=$3; shift 3
  local token k rc=0
  token=$(node -e "process.stdout.write(require('crypto').randomBytes(32).toString('hex'))")
  PORT=$((PORT + 1))
  PIDS=()
  for ((k = 0; k < NODES; k++)); do
    MICS_STORE_TOKEN=$token timeout 900 "$CLUSTER" run "$k" \
      node "$CODE/dist/cli/mics-launch.js" --nnodes "$NODES" --node-rank "$k" --nproc-per-node "$g" \
      --master-addr 10.77.0.1 --master-port "$PORT" --rdzv-timeout 120 \
      "$CODE/dist/cli/mics.js" bench partition "$@" -b "$MIN" -e "$MAX" -f "$FACTOR" -n "$ITERS" -w "$WARMUP" \
      >"$OUT/$name.r$rep.node$k.log" 2>&1 &
    PIDS+=($!)
  done
  for k in "${!PIDS[@]}"; do wait "${PIDS[$k]}" || rc=$?; done
  PIDS=()
  return $rc
}

want() { [[ ,$ONLY, == *,$1,* ]]; }

declare -a CONFIGS=()
want a && CONFIGS+=("a 2 -S 4 --mode both")
want b && CONFIGS+=("b 4 -S 8 --mode both")
want c && CONFIGS+=("c4 4 -S 4 --mode flat" "c8 4 -S 8 --mode flat")
want ra && CONFIGS+=("ra 2 -S 4 --mode both -o reduce_scatter")
want rb && CONFIGS+=("rb 4 -S 8 --mode both -o reduce_scatter")
[ ${#CONFIGS[@]} -gt 0 ] || die "--only '$ONLY' selects nothing: use a list of a, b, c, ra, rb"

FAILED=0
for ((r = 1; r <= REPEATS; r++)); do
  for cfg in "${CONFIGS[@]}"; do
    # shellcheck disable=SC2086
    set -- $cfg
    name=$1 g=$2; shift 2
    log "repeat $r/$REPEATS: $name (2 nodes x $g ranks, $*)"
    start=$(date +%s)
    load=$(cut -d' ' -f1-3 /proc/loadavg)
    if run_config "$name" "$g" "$r" "$@"; then
      log "  done in $(( $(date +%s) - start )) s"
      # Other work on the machine is noise for these numbers: keep the load next to each run.
      echo "$name repeat $r: $(( $(date +%s) - start )) s, load average before: $load, after: $(cut -d' ' -f1-3 /proc/loadavg)" >>"$OUT/runs.txt"
    else
      echo "$name repeat $r: FAILED" >>"$OUT/runs.txt"
      log "  FAILED (exit $?): see $OUT/$name.r$r.node*.log"
      FAILED=1
    fi
  done
done

# Queue statistics of every shaped link over the whole benchmark (drops would distort it).
for ((k = 0; k < NODES; k++)); do
  echo "== node $k uplink (eth0 egress)"; "$CLUSTER" run "$k" tc -s qdisc show dev eth0
  echo "== node $k downlink (switch port n$k egress)"; ip netns exec "${MICS_CLUSTER_PREFIX:-mics}-switch" tc -s qdisc show dev "n$k"
done >"$OUT/link-stats.txt" 2>&1 || true

# ---- summary ------------------------------------------------------------------------
node - "$OUT" >"$OUT/summary.md" <<'EOF'
const fs = require('fs');
const path = require('path');
const dir = process.argv[2];
const median = (xs) => { const s = [...xs].sort((a, b) => a - b); const m = s.length >> 1; return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2; };
const fmtSize = (b) => (b >= 1 << 20 ? `${b / (1 << 20)} MiB` : `${b / 1024} KiB`);
// runs[name][rep] = Map("mode size" -> time us)
const runs = {};
// The link's goodput (MB/s): the mean of the directions measured before the runs.
const goodputs = [...fs.readFileSync(path.join(dir, 'link-check.txt'), 'utf8').matchAll(/= ([\d.]+) Mbit\/s goodput/g)].map((m) => Number(m[1]) / 8);
const goodput = goodputs.length ? goodputs.reduce((a, b) => a + b, 0) / goodputs.length : undefined;
for (const f of fs.readdirSync(dir)) {
  const m = /^(\w+)\.r(\d+)\.node0\.log$/.exec(f);
  if (!m) continue;
  const rows = new Map();
  for (const line of fs.readFileSync(path.join(dir, f), 'utf8').split('\n')) {
    const r = /^(?:\[rank \d+\] )?\s+(hierarchical|flat)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s+([\d.]+)\s+[\d.]+\s+[\d.]+\s+(\d+)/.exec(line);
    if (r) rows.set(`${r[1]} ${r[4]}`, { time: Number(r[6]), wrong: Number(r[7]) });
  }
  if (rows.size) ((runs[m[1]] ??= {})[m[2]] = rows);
}
const reps = (name) => Object.values(runs[name] ?? {});
const sizes = (name) => [...new Set(reps(name).flatMap((rows) => [...rows.keys()].map((k) => Number(k.split(' ')[1]))))].sort((a, b) => a - b);
const out = [];
const wrong = Object.values(runs).flatMap((rr) => Object.values(rr).flatMap((rows) => [...rows.values()])).reduce((s, c) => s + c.wrong, 0);
const ops = { a: 'all-gather', b: 'all-gather', ra: 'reduce-scatter', rb: 'reduce-scatter' };
for (const [name, S, G, pred] of [['a', 4, 2, 1.5], ['b', 8, 4, 1.75], ['ra', 4, 2, 1.5], ['rb', 8, 4, 1.75]]) {
  if (!runs[name]) continue;
  out.push(`### ${name}: ${ops[name]}, 2 nodes x ${G} ranks, S = ${S}: hierarchical vs flat (${reps(name).length} runs)`, '');
  out.push(`predicted speed-up (S-1)/(S-G) = ${S - 1}/${S - G} = ${pred.toFixed(2)}x; link bound of hierarchical: (S-G)/S x size / ${goodput ? goodput.toFixed(1) : '?'} MB/s`, '');
  out.push('| size | hierarchical (ms, median) | link bound (ms) | flat (ms, median) | speed-up per run | median speed-up | / predicted |', '|---:|---:|---:|---:|:---|---:|---:|');
  for (const size of sizes(name)) {
    const h = [], f = [], sp = [];
    for (const rows of reps(name)) {
      const hh = rows.get(`hierarchical ${size}`), ff = rows.get(`flat ${size}`);
      if (hh) h.push(hh.time); if (ff) f.push(ff.time);
      if (hh && ff) sp.push(ff.time / hh.time);
    }
    if (!sp.length) continue;
    const ms = median(sp);
    const bound = goodput ? ((S - G) / S) * size / (goodput * 1e6) * 1e3 : NaN;
    out.push(`| ${fmtSize(size)} | ${(median(h) / 1e3).toFixed(1)} | ${bound.toFixed(1)} | ${(median(f) / 1e3).toFixed(1)} | ${sp.map((x) => x.toFixed(2)).join(' ')} | **${ms.toFixed(2)}x** | ${((ms / pred) * 100).toFixed(0)}% |`);
  }
  out.push('');
}
if (runs.c4 && runs.c8) {
  out.push(`### c: 2 nodes x 4 ranks, flat partition all-gather, S = 4 (one node) vs S = 8 (ZeRO-3), same gathered bytes per rank (${reps('c4').length} / ${reps('c8').length} runs)`, '');
  out.push('| gathered size per rank | S=4 (ms, median) | S=8 (ms, median) | S=8 / S=4 per run | median | S=8 hierarchical (ms, from b) |', '|---:|---:|---:|:---|---:|---:|');
  for (const size of sizes('c8')) {
    const t4 = [], t8 = [], ratio = [], th = [];
    for (const rep of Object.keys(runs.c8)) {
      const a = runs.c4?.[rep]?.get(`flat ${size}`), b = runs.c8[rep].get(`flat ${size}`);
      if (a) t4.push(a.time); if (b) t8.push(b.time);
      if (a && b) ratio.push(b.time / a.time);
      const hb = runs.b?.[rep]?.get(`hierarchical ${size}`); if (hb) th.push(hb.time);
    }
    if (!ratio.length) continue;
    out.push(`| ${fmtSize(size)} | ${(median(t4) / 1e3).toFixed(1)} | ${(median(t8) / 1e3).toFixed(1)} | ${ratio.map((x) => x.toFixed(1)).join(' ')} | **${median(ratio).toFixed(1)}x** | ${th.length ? (median(th) / 1e3).toFixed(1) : '-'} |`);
  }
  out.push('');
}
out.push(`wrong elements over all runs: ${wrong}`);
process.stdout.write(out.join('\n') + '\n');
EOF

echo
cat "$OUT/machine.txt"
cat "$OUT/link-check.txt"
cat "$OUT/runs.txt" 2>/dev/null || true
echo
cat "$OUT/summary.md"
[ $FAILED -eq 0 ] || die "some runs failed: see the logs in $OUT"
