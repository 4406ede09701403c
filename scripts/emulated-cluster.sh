#!/usr/bin/env bash
# Emulated multi-node cluster on one machine: one network namespace per node.
#
#   scripts/emulated-cluster.sh [--prefix P] up N [--rate 1gbit] [--delay 100us] [--tcp-cc NAME]
#   scripts/emulated-cluster.sh [--prefix P] down [--force]
#   scripts/emulated-cluster.sh [--prefix P] run K <command> [args...]
#   scripts/emulated-cluster.sh [--prefix P] status
#   scripts/emulated-cluster.sh [--prefix P] measure [--from A] [--to B] [--mb 100]
#
# Several clusters can coexist (two benchmarks, a test and a benchmark): each has a prefix
# (--prefix, else $MICS_CLUSTER_PREFIX, else "mics"), and its own namespaces, state and lock.
#   - `up` refuses to replace a cluster of the same prefix that is up: bring it down first, or
#     pick another prefix. up and down hold a lock per prefix, so two of them never interleave.
#   - `up` records its caller (the parent process: the script or shell that ran it) as the
#     cluster's owner. `down` removes the cluster when its caller is the owner, or the owner is
#     no longer running; otherwise it refuses (another run is still using it) unless --force.
#
# Layout (see docs/benchmarks.md):
#   - namespaces P-node0 .. P-node{N-1}, one per emulated node, plus P-switch (P = prefix;
#     mics-node0 .. and mics-switch by default);
#   - in mics-node K: lo (up) and eth0 = 10.77.0.{K+1}/24, one end of a veth pair whose
#     other end (port nK) is enslaved to bridge br0 inside mics-switch (no address);
#   - only addresses in 10.77.0.0/24 are ever assigned (IPv6 is disabled in the namespaces,
#     so no link-local addresses either; lo keeps 127.0.0.1); every cluster uses the same
#     addresses, each in its own namespaces; the root namespace is untouched except while a
#     veth pair is created and moved away at once (names unique to the prefix);
#   - link shaping (iproute2 tc): on every node's eth0 egress (its uplink) an htb class of
#     rate = ceil = --rate, with a netem child adding --delay when the kernel has sch_netem;
#     on every switch port egress (the node's downlink) the same htb rate, so a node's
#     NIC is --rate in each direction (full duplex, non-blocking switch). If sch_netem
#     is missing (CONFIG_NET_SCH_NETEM not set) the delay cannot be emulated: `up` says
#     so on stderr and records it (see `status`).
#   - TCP inside the namespaces: the kernel's default congestion control, or --tcp-cc NAME
#     (one of net.ipv4.tcp_allowed_congestion_control, e.g. reno or bbr);
#   - ranks of one node run in the same namespace on the same machine, so intra-node
#     traffic (shared memory, and loopback TCP) is never shaped.
#
# Needs root (CAP_NET_ADMIN and CAP_SYS_ADMIN for `ip netns`). `down` succeeds when nothing
# is there.
set -euo pipefail

SUBNET_PREFIX=10.77.0
STATE_ROOT=/run/mics-emulated-cluster

# set_prefix P: every name this script uses for cluster P.
set_prefix() {
  CLUSTER=$1
  [[ $CLUSTER =~ ^[a-z][a-z0-9-]{0,19}$ ]] || die "prefix '$CLUSTER' is not valid: expected 1-20 of a-z, 0-9 and '-', starting with a letter"
  PREFIX=$CLUSTER-node
  SWITCH=$CLUSTER-switch
  STATE_DIR=$STATE_ROOT/$CLUSTER
  STATE_FILE=$STATE_DIR/state
  OWNER_FILE=$STATE_DIR/owner
  LOCK_FILE=$STATE_ROOT/$CLUSTER.lock
  # Temporary veth names in the root namespace (15 characters at most), unique per prefix.
  VETH_TAG=m$(printf '%s' "$CLUSTER" | cksum | cut -c1-6)
}

die() { echo "emulated-cluster: error: $*" >&2; exit 1; }
warn() { echo "emulated-cluster: warning: $*" >&2; }
info() { echo "emulated-cluster: $*" >&2; }

usage() {
  sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'
}

need_root() {
  [ "$(id -u)" -eq 0 ] || die "must run as root (ip netns / ip link / tc need CAP_SYS_ADMIN and CAP_NET_ADMIN): try sudo $0 $*"
}

need_tools() {
  command -v ip >/dev/null 2>&1 || die "'ip' not found: install iproute2 (apt-get install -y iproute2)"
  command -v tc >/dev/null 2>&1 || die "'tc' not found: install iproute2 (apt-get install -y iproute2)"
}

ns_exists() { ip netns list 2>/dev/null | awk '{print $1}' | grep -qx "$1"; }

# Serialises up and down of one cluster (fd 9 stays open until the script exits). `down`
# removes the lock file: a waiter that then holds a lock on the removed file tries again.
take_lock() {
  mkdir -p "$STATE_ROOT"
  local try
  for try in 1 2 3 4 5; do
    exec 9>>"$LOCK_FILE"
    flock -w 60 9 || die "another up/down of cluster '$CLUSTER' holds $LOCK_FILE for over 60 s"
    [ "$(stat -L -c %i /proc/self/fd/9)" = "$(stat -c %i "$LOCK_FILE" 2>/dev/null)" ] && return 0
    exec 9>&-
  done
  die "could not lock $LOCK_FILE"
}

# "PID STARTTIME" of a process (start time in clock ticks since boot: tells a reused pid apart).
proc_id() { [ -r "/proc/$1/stat" ] && awk '{ sub(/^.*\) /, ""); print $20 }' "/proc/$1/stat" | sed "s/^/$1 /"; }

# The recorded owner, when it is still the same running process: prints its pid.
live_owner() {
  [ -f "$OWNER_FILE" ] || return 1
  local pid start now
  read -r pid start <"$OWNER_FILE" || return 1
  now=$(proc_id "$pid" 2>/dev/null) || return 1
  [ "$now" = "$pid $start" ] && echo "$pid"
}

owner_text() {
  local pid=$1
  printf 'pid %s (%s)' "$pid" "$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | cut -c1-80 | sed 's/ *$//')"
}

# Our namespaces, whatever N was (so `down` works without the state file).
our_namespaces() {
  ip netns list 2>/dev/null | awk '{print $1}' | grep -E "^(${PREFIX}[0-9]+|${SWITCH})$" || true
}

# "1gbit" / "500mbit" / "100kbit" / "1gbps" -> bits per second (tc's units), for checks.
rate_to_bps() {
  local r=${1,,}
  local num unit
  [[ $r =~ ^([0-9]+(\.[0-9]+)?)([a-z]*)$ ]] || return 1
  num=${BASH_REMATCH[1]}; unit=${BASH_REMATCH[3]}
  local mult
  case $unit in
    ''|bit) mult=1 ;;
    kbit) mult=1000 ;; mbit) mult=1000000 ;; gbit) mult=1000000000 ;;
    bps) mult=8 ;; kbps) mult=8000 ;; mbps) mult=8000000 ;; gbps) mult=8000000000 ;;
    *) return 1 ;;
  esac
  awk -v n="$num" -v m="$mult" 'BEGIN { printf "%.0f\n", n * m }'
}

valid_delay() { [[ ${1,,} =~ ^[0-9]+(\.[0-9]+)?(us|usec|ms|msec|s|sec)?$ ]]; }
delay_is_zero() { [[ ${1,,} =~ ^0+(\.0+)?(us|usec|ms|msec|s|sec)?$ ]]; }

# shape DEV_NS DEV RATE DELAY: htb rate/ceil RATE on DEV's egress, netem DELAY below it.
# Prints "ok", "no-netem" (delay asked but the kernel lacks sch_netem) or "unshaped".
shape() {
  local ns=$1 dev=$2 rate=$3 delay=$4
  ip netns exec "$ns" tc qdisc del dev "$dev" root >/dev/null 2>&1 || true
  if [ "$rate" = none ]; then
    if delay_is_zero "$delay"; then echo unshaped; return; fi
    if ip netns exec "$ns" tc qdisc add dev "$dev" root handle 10: netem delay "$delay" limit 100000 2>/dev/null; then
      echo ok
    else
      echo no-netem
    fi
    return
  fi
  local bps burst
  bps=$(rate_to_bps "$rate")
  # Burst: at least a 64 KiB GSO super-packet plus headers, else ~1 ms of line rate.
  burst=$(( bps / 8 / 1000 )); [ "$burst" -lt 70000 ] && burst=70000
  ip netns exec "$ns" tc qdisc add dev "$dev" root handle 1: htb default 1 r2q 10
  ip netns exec "$ns" tc class add dev "$dev" parent 1: classid 1:1 htb \
    rate "$rate" ceil "$rate" burst "$burst" cburst "$burst" quantum 60000
  if delay_is_zero "$delay"; then echo ok; return; fi
  # netem's default limit (1000 packets) would drop at high rates x delays: raise it.
  if ip netns exec "$ns" tc qdisc add dev "$dev" parent 1:1 handle 10: netem delay "$delay" limit 100000 2>/dev/null; then
    echo ok
  else
    echo no-netem
  fi
}

# No IPv6 in our namespaces: no link-local (fe80::) or ::1 addresses, only 10.77.0.0/24
# and 127.0.0.1 on loopback.
no_ipv6() {
  ip netns exec "$1" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1 >/dev/null 2>&1 ||
    warn "could not disable IPv6 in $1 (link-local addresses may appear)"
}

cmd_down() {
  local force=0
  while [ $# -gt 0 ]; do
    case $1 in
      --force) force=1; shift ;;
      *) die "unknown option '$1' for down: expected --force" ;;
    esac
  done
  need_root down; need_tools
  take_lock
  local owner
  if [ $force -eq 0 ] && [ -n "$(our_namespaces)" ] && owner=$(live_owner) && [ "$owner" != "$PPID" ]; then
    die "cluster '$CLUSTER' belongs to $(owner_text "$owner"), which is still running: not removing it (down --force removes it anyway)"
  fi
  down_unlocked
}

# Removes cluster $CLUSTER (the lock is held).
down_unlocked() {
  local any=0 ns
  for ns in $(our_namespaces); do
    any=1
    # Ranks left behind in a namespace would keep it alive as a mount: stop them first.
    local pids
    pids=$(ip netns pids "$ns" 2>/dev/null || true)
    if [ -n "$pids" ]; then
      warn "stopping processes still running in $ns: $(echo $pids)"
      kill -TERM $pids 2>/dev/null || true
      sleep 1
      pids=$(ip netns pids "$ns" 2>/dev/null || true)
      [ -n "$pids" ] && kill -KILL $pids 2>/dev/null || true
    fi
    ip netns del "$ns" || die "could not delete namespace $ns"
  done
  # A veth end left in the root namespace by an interrupted `up`.
  local l
  for l in $(ip -o link show 2>/dev/null | awk -F': ' '{print $2}' | sed 's/@.*//' | grep -E "^${VETH_TAG}[ns][0-9]+\$" || true); do
    ip link del "$l" 2>/dev/null || true
  done
  rm -rf "$STATE_DIR"
  rm -f "$LOCK_FILE"
  if [ $any -eq 1 ]; then info "cluster '$CLUSTER' removed"; else info "no cluster '$CLUSTER' to remove"; fi
}

cmd_up() {
  local n=${1:-}
  [ -n "$n" ] || die "usage: $0 up N [--rate 1gbit] [--delay 100us]"
  [[ $n =~ ^[0-9]+$ ]] && [ "$n" -ge 1 ] && [ "$n" -le 254 ] || die "N '$n' is not valid: expected 1..254 nodes (addresses $SUBNET_PREFIX.1..$SUBNET_PREFIX.N)"
  shift
  local rate=1gbit delay=100us cc=
  while [ $# -gt 0 ]; do
    case $1 in
      --rate) [ $# -ge 2 ] || die "--rate needs a value (e.g. 1gbit, 500mbit, none)"; rate=$2; shift 2 ;;
      --rate=*) rate=${1#*=}; shift ;;
      --delay) [ $# -ge 2 ] || die "--delay needs a value (e.g. 100us, 1ms, 0)"; delay=$2; shift 2 ;;
      --delay=*) delay=${1#*=}; shift ;;
      --tcp-cc) [ $# -ge 2 ] || die "--tcp-cc needs a value (e.g. reno, bbr)"; cc=$2; shift 2 ;;
      --tcp-cc=*) cc=${1#*=}; shift ;;
      *) die "unknown option '$1' for up: expected --rate R, --delay D or --tcp-cc NAME" ;;
    esac
  done
  if [ "$rate" != none ]; then
    rate_to_bps "$rate" >/dev/null || die "--rate '$rate' is not valid: use tc units like 1gbit, 500mbit, 100mbit (or none)"
  fi
  valid_delay "$delay" || die "--delay '$delay' is not valid: use tc units like 100us, 1ms (or 0)"
  need_root up; need_tools
  if [ -n "$cc" ] && ! tr ' ' '\n' </proc/sys/net/ipv4/tcp_allowed_congestion_control | grep -qx "$cc"; then
    die "--tcp-cc '$cc' is not allowed here: use one of $(cat /proc/sys/net/ipv4/tcp_allowed_congestion_control)"
  fi

  take_lock
  if [ -n "$(our_namespaces)" ]; then
    local owner how="its owner is no longer running"
    owner=$(live_owner) && how="it belongs to $(owner_text "$owner"), still running"
    local nodes=?; [ -f "$STATE_FILE" ] && nodes=$(sed -n 's/^nodes=//p' "$STATE_FILE")
    die "cluster '$CLUSTER' is already up ($nodes nodes; $how): not replacing it. Bring it down first ($0 --prefix $CLUSTER down) or use another --prefix"
  fi
  trap 'echo "emulated-cluster: up failed, cleaning up" >&2; down_unlocked >/dev/null 2>&1 || true' ERR

  ip netns add "$SWITCH"
  no_ipv6 "$SWITCH"
  ip -n "$SWITCH" link set lo up
  ip -n "$SWITCH" link add br0 type bridge
  ip -n "$SWITCH" link set br0 up

  local k netem_missing=0 r
  for ((k = 0; k < n; k++)); do
    local ns=$PREFIX$k addr=$SUBNET_PREFIX.$((k + 1))
    ip netns add "$ns"
    no_ipv6 "$ns"
    [ -n "$cc" ] && ip netns exec "$ns" sysctl -qw net.ipv4.tcp_congestion_control="$cc"
    ip -n "$ns" link set lo up
    # Created in the root namespace and moved away at once (names unique to the prefix).
    ip link add "${VETH_TAG}n$k" type veth peer name "${VETH_TAG}s$k"
    ip link set "${VETH_TAG}n$k" netns "$ns"
    ip link set "${VETH_TAG}s$k" netns "$SWITCH"
    ip -n "$ns" link set "${VETH_TAG}n$k" name eth0
    ip -n "$SWITCH" link set "${VETH_TAG}s$k" name "n$k"
    ip -n "$SWITCH" link set "n$k" master br0
    ip -n "$ns" addr add "$addr/24" dev eth0
    ip -n "$ns" link set eth0 up
    ip -n "$SWITCH" link set "n$k" up
    r=$(shape "$ns" eth0 "$rate" "$delay")            # uplink: rate + delay
    [ "$r" = no-netem ] && netem_missing=1
    shape "$SWITCH" "n$k" "$rate" 0 >/dev/null         # downlink: rate only
  done
  trap - ERR

  local applied_delay=$delay
  if [ $netem_missing -eq 1 ]; then
    applied_delay=0
    warn "the kernel has no sch_netem (CONFIG_NET_SCH_NETEM not set): --delay $delay is NOT emulated (no delay is added to any link)"
  fi
  mkdir -p "$STATE_DIR"
  cc=$(ip netns exec "${PREFIX}0" sysctl -n net.ipv4.tcp_congestion_control)
  printf 'prefix=%s\nnodes=%s\nrate=%s\ndelay_requested=%s\ndelay_applied=%s\ntcp_cc=%s\n' "$CLUSTER" "$n" "$rate" "$delay" "$applied_delay" "$cc" >"$STATE_FILE"
  proc_id "$PPID" >"$OWNER_FILE" 2>/dev/null || true
  info "up: cluster '$CLUSTER', $n nodes ($SUBNET_PREFIX.1 .. $SUBNET_PREFIX.$n), rate $rate per direction, delay $applied_delay, tcp $cc"

  # Wait until every node answers on TCP from node 0 (bridge ports go through learning).
  local ok=0 try
  for try in $(seq 1 50); do
    if ip netns exec "${PREFIX}0" true && reach_all "$n"; then ok=1; break; fi
    sleep 0.1
  done
  [ $ok -eq 1 ] || warn "not every node is reachable yet from node 0"
}

# Checks that node 0 reaches every node's address: a TCP connect to a closed port that is
# refused (or accepted) proves the path; no ping needed.
reach_all() {
  local n=$1 k out
  for ((k = 0; k < n; k++)); do
    if out=$(ip netns exec "${PREFIX}0" timeout 2 bash -c "exec 3<>/dev/tcp/$SUBNET_PREFIX.$((k + 1))/9" 2>&1); then continue; fi
    [[ $out == *refused* ]] || return 1
  done
}

cmd_run() {
  local k=${1:-}
  [ -n "$k" ] && [ $# -ge 2 ] || die "usage: $0 run K <command> [args...]"
  [[ $k =~ ^[0-9]+$ ]] || die "node '$k' is not valid: expected a node index 0..N-1"
  shift
  need_root run; need_tools
  ns_exists "$PREFIX$k" || die "no namespace $PREFIX$k: is cluster '$CLUSTER' up with more than $k nodes? ($0 --prefix $CLUSTER up N)"
  exec ip netns exec "$PREFIX$k" "$@"
}

cmd_status() {
  need_root status; need_tools
  local nss; nss=$(our_namespaces)
  if [ -z "$nss" ]; then echo "no emulated cluster '$CLUSTER'"; return 0; fi
  [ -f "$STATE_FILE" ] && cat "$STATE_FILE"
  local ns
  for ns in $nss; do
    [ "$ns" = "$SWITCH" ] && continue
    echo "== $ns"
    ip -n "$ns" -br addr show
    ip netns exec "$ns" tc qdisc show dev eth0
    ip netns exec "$ns" tc class show dev eth0
  done
  echo "== $SWITCH"
  ip -n "$SWITCH" -br link show
}

# Pushes --mb megabytes over one TCP connection from node A to node B (plain node, no
# iperf) and prints the goodput; also a TCP ping-pong round-trip time.
cmd_measure() {
  local from=0 to=1 mb=100
  while [ $# -gt 0 ]; do
    case $1 in
      --from) from=$2; shift 2 ;;
      --to) to=$2; shift 2 ;;
      --mb) mb=$2; shift 2 ;;
      *) die "unknown option '$1' for measure: expected --from A --to B --mb M" ;;
    esac
  done
  need_root measure; need_tools
  command -v node >/dev/null 2>&1 || die "node not found"
  ns_exists "$PREFIX$from" || die "no namespace $PREFIX$from"
  ns_exists "$PREFIX$to" || die "no namespace $PREFIX$to"
  local dst=$SUBNET_PREFIX.$((to + 1)) port=29777
  ip netns exec "$PREFIX$to" node -e '
    const net = require("net");
    const [host, port] = [process.argv[1], +process.argv[2]];
    let conns = 0;
    const srv = net.createServer((s) => {
      s.on("data", (d) => { if (d.length <= 8 && d[0] === 0x70) s.write(d); });  // ping: echo
      s.on("error", () => {});
      s.on("close", () => { if (++conns === 2) process.exit(0); });           // ping + push done
    });
    srv.listen(port, host);
    setTimeout(() => process.exit(1), 120000).unref();
  ' "$dst" "$port" &
  local srv=$!
  sleep 0.5
  ip netns exec "$PREFIX$from" node -e '
    const net = require("net");
    const [host, port, mb] = [process.argv[1], +process.argv[2], +process.argv[3]];
    const rtt = () => new Promise((res) => {
      const s = net.connect(port, host, () => {
        s.setNoDelay(true); const t = []; let i = 0, t0;
        const ping = () => { t0 = process.hrtime.bigint(); s.write(Buffer.from([0x70])); };
        s.on("data", () => { t.push(Number(process.hrtime.bigint() - t0) / 1e3); if (++i < 200) ping(); else { s.destroy(); t.sort((a, b) => a - b); res(t[100]); } });
        ping();
      });
    });
    const push = () => new Promise((res) => {
      const s = net.connect(port, host, () => {
        const chunk = Buffer.alloc(1 << 20, 1); let left = mb; const t0 = process.hrtime.bigint();
        const more = () => { while (left > 0) { left--; if (!s.write(chunk)) { s.once("drain", more); return; } } s.end(); };
        s.on("close", () => res(Number(process.hrtime.bigint() - t0) / 1e9)); more();
      });
    });
    (async () => {
      const r = await rtt();
      const secs = await push();
      const mbit = (mb * 1048576 * 8) / secs / 1e6;
      console.log(`node${process.argv[4]} -> node${process.argv[5]}: ${mb} MiB in ${secs.toFixed(3)} s = ${mbit.toFixed(1)} Mbit/s goodput; TCP ping-pong RTT median ${r.toFixed(1)} us`);
    })();
  ' "$dst" "$port" "$mb" "$from" "$to"
  kill "$srv" 2>/dev/null || true
  wait "$srv" 2>/dev/null || true
}

main() {
  local prefix=${MICS_CLUSTER_PREFIX:-mics}
  while [ $# -gt 0 ]; do
    case $1 in
      --prefix) [ $# -ge 2 ] || die "--prefix needs a value (e.g. bench1)"; prefix=$2; shift 2 ;;
      --prefix=*) prefix=${1#*=}; shift ;;
      *) break ;;
    esac
  done
  set_prefix "$prefix"
  local cmd=${1:-}
  [ -n "$cmd" ] || { usage; exit 2; }
  shift
  case $cmd in
    up) cmd_up "$@" ;;
    down) cmd_down "$@" ;;
    run) cmd_run "$@" ;;
    status) cmd_status ;;
    measure) cmd_measure "$@" ;;
    -h|--help|help) usage ;;
    *) usage >&2; die "unknown command '$cmd': expected up, down, run, status or measure" ;;
  esac
}

main "$@"
