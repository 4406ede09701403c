#!/usr/bin/env bash
# Emulated nodes with a real sshd in each, for trying `mics-launch --hostfile` as on a cluster.
#
#   scripts/ssh-cluster.sh [--prefix P] up N [--install]   # N nodes (scripts/emulated-cluster.sh), sshd on each
#   scripts/ssh-cluster.sh [--prefix P] down               # stops the sshds, removes the nodes
#   scripts/ssh-cluster.sh [--prefix P] env                # prints SSH_CONFIG=, HOSTFILE=, NODES=, NS_PREFIX=
#
# Prefix: --prefix, else $MICS_SSH_CLUSTER_PREFIX, else "mics-ssh" (namespaces P-node0 ..,
# addresses 10.77.0.1 .., see emulated-cluster.sh). Then, as root:
#
#   eval "$(scripts/ssh-cluster.sh env)"
#   ip netns exec "${NS_PREFIX}0" node dist/cli/mics-launch.js --hostfile "$HOSTFILE" \
#     --ssh "ssh -F $SSH_CONFIG" --master-port 29500 train.js
#
# What a real cluster needs and this sets up (the friction met trying it):
#   - sshd wants its privilege-separation directory /run/sshd, host keys, and keys it accepts:
#     one host key and one client key are made for the cluster under /run/mics-ssh-cluster/P,
#     with a known_hosts and an ssh_config (User root, that key, that known_hosts) next to them;
#   - ssh refuses unknown host keys in BatchMode (what mics-launch uses): known_hosts lists them;
#   - root's login shell runs ~/.bashrc for every ssh command (slow here: pyenv init): each sshd
#     runs in a mount namespace of its own where root's shell is /bin/sh;
#   - sshd drops a session whose client is silent for 6 s (ClientAliveInterval 2, count 3), so a
#     partitioned node's session ends on its side too.
# openssh-server (Debian) must be installed; `up --install` installs it with apt-get (no
# service is started: the sshds here are this script's own). Needs root.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
CLUSTER_SH=$ROOT/scripts/emulated-cluster.sh
SUBNET_PREFIX=10.77.0
SSHD=/usr/sbin/sshd

die() { echo "ssh-cluster: error: $*" >&2; exit 1; }
info() { echo "ssh-cluster: $*" >&2; }

set_prefix() {
  P=$1
  [[ $P =~ ^[a-z][a-z0-9-]{0,19}$ ]] || die "prefix '$P' is not valid: expected 1-20 of a-z, 0-9 and '-', starting with a letter"
  STATE=/run/mics-ssh-cluster/$P
  NS_PREFIX=$P-node
}

need_root() { [ "$(id -u)" -eq 0 ] || die "must run as root (network namespaces, sshd): try sudo $0 $*"; }

install_sshd() {
  command -v apt-get >/dev/null 2>&1 || die "$SSHD is missing and apt-get is not available: install an OpenSSH server"
  info "installing openssh-server (apt-get); no service is started"
  local policy=/usr/sbin/policy-rc.d made=0
  if [ ! -e $policy ]; then
    # Debian's convention to keep package scripts from starting services.
    printf '#!/bin/sh\nexit 101\n' >$policy && chmod +x $policy && made=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends openssh-server >/dev/null || {
    [ $made -eq 1 ] && rm -f $policy
    die "apt-get install openssh-server failed (try apt-get update first)"
  }
  [ $made -eq 1 ] && rm -f $policy
  return 0
}

cmd_up() {
  local n=${1:-} install=0
  [ -n "$n" ] || die "usage: $0 up N [--install]"
  [[ $n =~ ^[0-9]+$ ]] && [ "$n" -ge 1 ] && [ "$n" -le 250 ] || die "N '$n' is not valid: expected 1..250 nodes"
  shift
  while [ $# -gt 0 ]; do
    case $1 in
      --install) install=1; shift ;;
      *) die "unknown option '$1' for up: expected --install" ;;
    esac
  done
  need_root up
  if [ ! -x $SSHD ]; then
    [ $install -eq 1 ] || die "$SSHD not found: install openssh-server (apt-get install openssh-server), or run: $0 up $n --install"
    install_sshd
  fi
  command -v ssh >/dev/null 2>&1 || die "ssh (the client) not found: apt-get install openssh-client"
  [ -e "$STATE" ] && die "cluster '$P' is already up (state in $STATE): bring it down first ($0 --prefix $P down) or use another --prefix"

  "$CLUSTER_SH" --prefix "$P" up "$n" --rate none --delay 0
  trap 'echo "ssh-cluster: up failed, cleaning up" >&2; cmd_down >/dev/null 2>&1 || true' ERR
  mkdir -p "$STATE" /run/sshd
  chmod 700 "$STATE"
  ssh-keygen -q -t ed25519 -N '' -C "mics-ssh-cluster-$P-host" -f "$STATE/host_key"
  ssh-keygen -q -t ed25519 -N '' -C "mics-ssh-cluster-$P" -f "$STATE/id_ed25519"
  cp "$STATE/id_ed25519.pub" "$STATE/authorized_keys"
  # Root's shell is /bin/sh for these sshds only (see the header).
  sed -E 's#^(root:[^:]*:0:0:[^:]*:[^:]*):.*$#\1:/bin/sh#' /etc/passwd >"$STATE/passwd"
  : >"$STATE/known_hosts"
  local k addr
  for ((k = 0; k < n; k++)); do
    addr=$SUBNET_PREFIX.$((k + 1))
    echo "$addr $(cut -d' ' -f1,2 "$STATE/host_key.pub")" >>"$STATE/known_hosts"
    cat >"$STATE/sshd_config.$k" <<EOF
ListenAddress $addr
Port 22
HostKey $STATE/host_key
PidFile $STATE/sshd.$k.pid
AuthorizedKeysFile $STATE/authorized_keys
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
PrintMotd no
PrintLastLog no
UseDNS no
ClientAliveInterval 2
ClientAliveCountMax 3
MaxStartups 100:30:200
MaxSessions 100
EOF
    ip netns exec "$NS_PREFIX$k" unshare -m sh -c \
      "mount --bind '$STATE/passwd' /etc/passwd && exec $SSHD -f '$STATE/sshd_config.$k' -E '$STATE/sshd.$k.log'"
  done
  cat >"$STATE/ssh_config" <<EOF
Host $SUBNET_PREFIX.*
  User root
  IdentityFile $STATE/id_ed25519
  IdentitiesOnly yes
  UserKnownHostsFile $STATE/known_hosts
  GlobalKnownHostsFile /dev/null
  StrictHostKeyChecking yes
EOF
  : >"$STATE/hostfile"
  for ((k = 0; k < n; k++)); do echo "$SUBNET_PREFIX.$((k + 1)) slots=2" >>"$STATE/hostfile"; done
  echo "$n" >"$STATE/nodes"
  # Every sshd answers a real login from node 0 before `up` returns.
  local ok try
  for ((k = 0; k < n; k++)); do
    ok=0
    for try in $(seq 1 50); do
      if ip netns exec "${NS_PREFIX}0" ssh -F "$STATE/ssh_config" -o BatchMode=yes -o ConnectTimeout=2 "$SUBNET_PREFIX.$((k + 1))" true 2>/dev/null; then
        ok=1
        break
      fi
      sleep 0.1
    done
    [ $ok -eq 1 ] || die "sshd on node $k ($SUBNET_PREFIX.$((k + 1))) does not accept logins; see $STATE/sshd.$k.log"
  done
  trap - ERR
  info "up: cluster '$P', $n nodes with sshd ($SUBNET_PREFIX.1 .. $SUBNET_PREFIX.$n); hostfile $STATE/hostfile, ssh config $STATE/ssh_config"
}

cmd_down() {
  need_root down
  local f pid
  for f in "$STATE"/sshd.*.pid; do
    [ -f "$f" ] || continue
    pid=$(cat "$f")
    # Only the sshd this script started (a reused pid would not be sshd with our config).
    if tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -- "$STATE/sshd_config"; then kill "$pid" 2>/dev/null || true; fi
  done
  # emulated-cluster's down stops whatever still runs in the nodes (sessions, agents, ranks).
  "$CLUSTER_SH" --prefix "$P" down --force
  rm -rf "$STATE"
}

cmd_env() {
  [ -f "$STATE/nodes" ] || die "cluster '$P' is not up ($0 --prefix $P up N)"
  printf 'SSH_CONFIG=%s\nHOSTFILE=%s\nNODES=%s\nNS_PREFIX=%s\n' "$STATE/ssh_config" "$STATE/hostfile" "$(cat "$STATE/nodes")" "$NS_PREFIX"
}

main() {
  local prefix=${MICS_SSH_CLUSTER_PREFIX:-mics-ssh}
  while [ $# -gt 0 ]; do
    case $1 in
      --prefix) [ $# -ge 2 ] || die "--prefix needs a value"; prefix=$2; shift 2 ;;
      --prefix=*) prefix=${1#*=}; shift ;;
      *) break ;;
    esac
  done
  set_prefix "$prefix"
  local cmd=${1:-}
  [ -n "$cmd" ] || { sed -n '2,6p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
  shift
  case $cmd in
    up) cmd_up "$@" ;;
    down) cmd_down ;;
    env) cmd_env ;;
    -h|--help|help) sed -n '2,26p' "$0" | sed 's/^# \{0,1\}//' ;;
    *) die "unknown command '$cmd': expected up, down or env" ;;
  esac
}

main "$@"
