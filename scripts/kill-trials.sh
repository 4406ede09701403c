#!/usr/bin/env bash
# Randomised failure trials for mics-launch's root-cause attribution.
#
# Each trial starts 4 ranks that all-reduce in a loop (test/fixtures/launch/collectives.js),
# on one node (shared memory) or on 2 emulated nodes (TCP ring), picks a random rank and
# makes it fail a random 0-500 ms after every rank is up: kill -9, kill -TERM, or an uncaught
# application error thrown inside the rank. The other ranks then fail too (they lost a peer).
# The launcher's summary must name the rank that failed first as the root cause, and exit
# with its code. Prints one line per trial and the count of right answers.
#
# Usage: scripts/kill-trials.sh [TRIALS (default 50)] [SEED]
# Needs the built package (npm install, or npm run build:ts after changes).
set -u
TRIALS=${1:-50}
RANDOM=${2:-$$}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
LAUNCHER="$ROOT/dist/cli/mics-launch.js"
FIXTURE="$ROOT/test/fixtures/launch/collectives.js"
NPROC=4
[ -f "$LAUNCHER" ] || { echo "kill-trials: $LAUNCHER is missing: run npm run build:ts" >&2; exit 2; }

right=0
declare -A wrong_by_kind=()
for trial in $(seq 1 "$TRIALS"); do
  if (( RANDOM % 2 )); then transport=tcp; emulate=2; else transport=shm; emulate=1; fi
  victim=$(( RANDOM % NPROC ))
  case $(( RANDOM % 3 )) in
    0) kind=SIGKILL; expect_code=137 ;;
    1) kind=SIGTERM; expect_code=143 ;;
    2) kind=throw; expect_code=1 ;;
  esac
  delay_ms=$(( RANDOM % 500 ))
  dir=$(mktemp -d)
  env_extra=(FIX_PID_DIR="$dir")
  [ "$kind" = throw ] && env_extra+=(FIX_THROW_RANK="$victim" FIX_THROW_AFTER_MS="$delay_ms")
  env "${env_extra[@]}" node "$LAUNCHER" --standalone --nproc-per-node "$NPROC" --emulate-nodes "$emulate" \
    --grace-period 1 --monitor-interval 0.05 "$FIXTURE" >"$dir/out" 2>"$dir/err" &
  launcher_pid=$!
  if [ "$kind" != throw ]; then
    for _ in $(seq 1 600); do
      [ "$(ls "$dir" | grep -c '^rank[0-9]*\.json$')" -ge "$NPROC" ] && break
      sleep 0.05
    done
    sleep "$(printf '0.%03d' "$delay_ms")"
    pid=$(sed -n 's/.*"pid":\([0-9]*\).*/\1/p' "$dir/rank$victim.json" 2>/dev/null)
    [ -n "$pid" ] && kill -s "$kind" "$pid" 2>/dev/null
  fi
  wait "$launcher_pid"
  code=$?
  named=$(awk '/Root Cause/{f=1} f && /rank +:/{print $3; exit}' "$dir/err")
  if [ "$named" = "$victim" ] && [ "$code" = "$expect_code" ]; then
    verdict=right
    right=$(( right + 1 ))
  else
    verdict=WRONG
    wrong_by_kind[$transport/$kind]=$(( ${wrong_by_kind[$transport/$kind]:-0} + 1 ))
    cp "$dir/err" "/tmp/kill-trial-$trial.err"
  fi
  printf 'trial %2d: %s %-7s rank %d after %3d ms -> root cause rank %s, exit %s: %s\n' \
    "$trial" "$transport" "$kind" "$victim" "$delay_ms" "${named:-none}" "$code" "$verdict"
  rm -rf "$dir"
done
echo "root cause right in $right of $TRIALS trials"
for k in "${!wrong_by_kind[@]}"; do echo "  wrong: $k x ${wrong_by_kind[$k]} (summaries in /tmp/kill-trial-*.err)"; done
[ "$right" = "$TRIALS" ]
