#!/usr/bin/env bash
# The engine's optimizer step, MiCS against ZeRO-3 and DDP, on an emulated 2-node cluster.
#
#   sudo scripts/bench-step.sh [--repeats 5] [--rate 1gbit] [--delay 100us] [--ranks 4]
#        [--units 8] [--unit-params 2097152] [--iters 3] [--warmup 1]
#        [--sweep 0,25,50,100,200] [--sweep-repeats 3] [--only acc4,acc1,sweep] [--out DIR]
#        [--calibrate]
#
# Brings up scripts/emulated-cluster.sh (one network namespace per node, links shaped
# with tc), then runs one mics-launch per node inside its namespace with
# `mics bench step --json` (bf16 gathered parameters, fp32 reduce-scatter):
#   acc4   every strategy (ddp, zero3, mics-span = S spans both nodes, hierarchical;
#          mics-node = S is one node), accumulation 4, no compute
#   acc1   zero3 and mics-node, accumulation 1, no compute
#   sweep  zero3, mics-span, mics-node, accumulation 4, --compute-ms per unit from the
#          --sweep list (backward twice that), for where each strategy hides its traffic
# Configurations run interleaved, --repeats times (the sweep --sweep-repeats times), so a
# slow phase of the machine hits all of them; the summary (summary.md, sweep.svg) quotes
# medians over repeats. Raw outputs go to bench-results/step-<time>/ (ignored by git);
# the cluster is torn down at the end, also on failure or Ctrl-C. Needs root.
# --code DIR runs dist/ and build/Release of another built checkout (a frozen snapshot);
# --prefix P uses emulated cluster P (default $MICS_CLUSTER_PREFIX, else mics).
# --calibrate also measures the cluster's links first (mics bench collectives: one node,
# while every other node runs the same, so the cores are as shared as in a step; then
# all nodes over the shaped link) and at the end predicts every measured step with
# `mics simulate --calibrate --step-bench` (predicted.txt: the error of each, target 25%).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
CLUSTER=$ROOT/scripts/emulated-cluster.sh
CODE=$ROOT
REPEATS=5 SWEEP_REPEATS=3 RATE=1gbit DELAY=100us RANKS=4 UNITS=8 UNIT_PARAMS=2097152 ITERS=3 WARMUP=1
SWEEP=0,25,50,100,200 ONLY=acc4,acc1,sweep OUT= CALIBRATE=0
NODES=2

die() { echo "bench-step: error: $*" >&2; exit 1; }
log() { echo "bench-step: $*" >&2; }

while [ $# -gt 0 ]; do
  case $1 in
    --repeats) REPEATS=$2; shift 2 ;;
    --sweep-repeats) SWEEP_REPEATS=$2; shift 2 ;;
    --rate) RATE=$2; shift 2 ;;
    --delay) DELAY=$2; shift 2 ;;
    --ranks) RANKS=$2; shift 2 ;;
    --units) UNITS=$2; shift 2 ;;
    --unit-params) UNIT_PARAMS=$2; shift 2 ;;
    --iters) ITERS=$2; shift 2 ;;
    --warmup) WARMUP=$2; shift 2 ;;
    --sweep) SWEEP=$2; shift 2 ;;
    --only) ONLY=$2; shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    --code) CODE=$(cd "$2" && pwd) || die "--code '$2' is not a directory"; shift 2 ;;
    --prefix) export MICS_CLUSTER_PREFIX=$2; shift 2 ;;
    --calibrate) CALIBRATE=1; shift ;;
    -h|--help) sed -n '2,26p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown option '$1' (see --help)" ;;
  esac
done
[[ $REPEATS =~ ^[1-9][0-9]*$ ]] || die "--repeats '$REPEATS' is not a positive integer"
[ "$(id -u)" -eq 0 ] || die "must run as root (network namespaces): try sudo $0"
[ -f "$CODE/dist/cli/mics.js" ] || die "dist is not built: run 'npm run build:ts' first"
[ -f "$CODE/build/Release/mics.node" ] || die "the addon is not built: run 'npm install'"

OUT=${OUT:-$ROOT/bench-results/step-$(date +%Y%m%d-%H%M%S)}
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

{
  echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "code: $CODE at $(git -C "$CODE" rev-parse --short HEAD 2>/dev/null || cat "$CODE/SNAPSHOT" 2>/dev/null || echo '?')$(git -C "$CODE" diff --quiet HEAD -- lib csrc 2>/dev/null || echo ' + uncommitted changes')"
  echo "nproc: $(nproc); cpu: $(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //'); kernel: $(uname -r); node: $(node --version)"
  echo "args: repeats=$REPEATS sweep-repeats=$SWEEP_REPEATS rate=$RATE delay=$DELAY ranks/node=$RANKS units=$UNITS x $UNIT_PARAMS -n $ITERS -w $WARMUP sweep=$SWEEP"
} >"$OUT/machine.txt"
cat "$OUT/machine.txt" >&2

"$CLUSTER" up "$NODES" --rate "$RATE" --delay "$DELAY" 2>&1 | tee "$OUT/cluster-up.txt" >&2
"$CLUSTER" measure --from 0 --to 1 --mb 100 2>&1 | tee "$OUT/link-check.txt" >&2

PORT=29750
launch_all() { # TIMEOUT LOG_PREFIX MICS_ARGS...: mics on every node (mics-launch), LOG_PREFIX.node<k>.log each
  local limit=$1 prefix=$2; shift 2
  local token k rc=0
  token=$(node -e "process.stdout.write(require('crypto').randomBytes(32).toString('hex'))")
  PORT=$((PORT + 1))
  PIDS=()
  for ((k = 0; k < NODES; k++)); do
    MICS_STORE_TOKEN=$token timeout "$limit" "$CLUSTER" run "$k" \
      node "$CODE/dist/cli/mics-launch.js" --nnodes "$NODES" --node-rank "$k" --nproc-per-node "$RANKS" \
      --master-addr 10.77.0.1 --master-port "$PORT" --rdzv-timeout 120 "$CODE/dist/cli/mics.js" "$@" \
      >"$prefix.node$k.log" 2>&1 &
    PIDS+=($!)
  done
  for k in "${!PIDS[@]}"; do wait "${PIDS[$k]}" || rc=$?; done
  PIDS=()
  return $rc
}
run_config() { # NAME REPEAT ARGS...
  local name=$1 rep=$2; shift 2
  launch_all 3600 "$OUT/$name.r$rep" bench step --json --units "$UNITS" --unit-params "$UNIT_PARAMS" -n "$ITERS" -w "$WARMUP" "$@"
}
want() { [[ ,$ONLY, == *,$1,* ]]; }

if [ $CALIBRATE -eq 1 ]; then
  log "calibrating: one node (every node at once), then all $NODES nodes"
  BENCH=(bench collectives -b 4K -e 16M -f 16 -o all_gather,reduce_scatter --json)
  PIDS=()
  for ((k = 0; k < NODES; k++)); do
    timeout 1800 "$CLUSTER" run "$k" node "$CODE/dist/cli/mics.js" "${BENCH[@]}" --nproc "$RANKS" >"$OUT/calibrate-one-node.node$k.json" 2>"$OUT/calibrate-one-node.node$k.err" &
    PIDS+=($!)
  done
  for p in "${PIDS[@]}"; do wait "$p" || die "the one-node calibration failed: see $OUT/calibrate-one-node.node*.err"; done
  PIDS=()
  launch_all 1800 "$OUT/calibrate-nodes" "${BENCH[@]}" || die "the $NODES-node calibration failed: see $OUT/calibrate-nodes.node*.log"
  # rank 0's line, without the launcher's "[rank 0] " prefix
  sed -n 's/^\[rank 0\] \({"header".*\)$/\1/p' "$OUT/calibrate-nodes.node0.log" >"$OUT/calibrate-nodes.json"
  [ -s "$OUT/calibrate-nodes.json" ] || die "no result from rank 0 in $OUT/calibrate-nodes.node0.log"
fi

declare -a CONFIGS=()
want acc4 && CONFIGS+=("acc4 -a 4 --strategy all")
want acc1 && CONFIGS+=("acc1 -a 1 --strategy zero3,mics-node")
declare -a SWEEPS=()
if want sweep; then
  IFS=, read -ra POINTS <<<"$SWEEP"
  for ms in "${POINTS[@]}"; do SWEEPS+=("sweep$ms -a 4 --strategy zero3,mics-span,mics-node --compute-ms $ms"); done
fi

FAILED=0
run_all() { # REPEATS CONFIG...
  local repeats=$1; shift
  local -a configs=("$@")
  local r cfg name start load
  local -a args
  for ((r = 1; r <= repeats; r++)); do
    for cfg in "${configs[@]}"; do
      read -ra args <<<"$cfg"
      name=${args[0]}
      log "repeat $r/$repeats: $name (${args[*]:1})"
      start=$(date +%s)
      load=$(cut -d' ' -f1-3 /proc/loadavg)
      if run_config "$name" "$r" "${args[@]:1}"; then
        echo "$name repeat $r: $(( $(date +%s) - start )) s, load before: $load, after: $(cut -d' ' -f1-3 /proc/loadavg)" >>"$OUT/runs.txt"
      else
        echo "$name repeat $r: FAILED" >>"$OUT/runs.txt"; log "  FAILED: see $OUT/$name.r$r.node*.log"; FAILED=1
      fi
    done
  done
}
[ ${#CONFIGS[@]} -gt 0 ] && run_all "$REPEATS" "${CONFIGS[@]}"
[ ${#SWEEPS[@]} -gt 0 ] && run_all "$SWEEP_REPEATS" "${SWEEPS[@]}"

node "$ROOT/scripts/bench-step-summary.js" "$OUT" >"$OUT/summary.md"
if [ $CALIBRATE -eq 1 ]; then
  node "$ROOT/dist/cli/mics.js" simulate --calibrate \
    --from-bench "$(printf '%s,' "$OUT"/calibrate-one-node.node*.json)$OUT/calibrate-nodes.json" --out "$OUT/emulated.json" \
    --step-bench "$OUT/results.json" >"$OUT/predicted.txt" || FAILED=1
fi
echo
cat "$OUT/machine.txt" "$OUT/link-check.txt" "$OUT/runs.txt" 2>/dev/null || true
echo
cat "$OUT/summary.md"
[ $CALIBRATE -eq 1 ] && cat "$OUT/predicted.txt"
[ $FAILED -eq 0 ] || die "some runs failed: see the logs in $OUT"
