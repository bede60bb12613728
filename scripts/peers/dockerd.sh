#!/usr/bin/env bash
# Start/stop a private Docker Engine used as a benchmark peer.
#
#   scripts/peers/dockerd.sh start   # prints: DOCKER_HOST=unix:///run/strata-bench-docker.sock
#   scripts/peers/dockerd.sh stop    # stops it and removes its data root
#   scripts/peers/dockerd.sh status
#
# It runs on its own data root, exec root, pidfile and socket so it never
# touches a system dockerd. Networking is off (no bridge, no iptables): the
# benchmarks only load images. Needs root. Installs docker.io with apt-get
# when dockerd is missing.
#
# Env: STRATA_BENCH_DOCKER_ROOT (default /var/lib/strata-bench-docker),
#      STRATA_BENCH_DOCKER_KEEP=1 keeps the data root on stop.
set -euo pipefail

# STRATA_DOCKERD_NAME gives a second engine its own socket, roots and log (tests use their own).
NAME=${STRATA_DOCKERD_NAME:-strata-bench-docker}
DATA_ROOT=${STRATA_BENCH_DOCKER_ROOT:-/var/lib/$NAME}
EXEC_ROOT=/run/$NAME
SOCK=/run/$NAME.sock
PIDFILE=/run/$NAME.pid
LOG=/var/log/$NAME.log
DOCKER_HOST_URL=unix://$SOCK

die() { echo "dockerd.sh: $*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "must run as root (dockerd needs it)"

ensure_installed() {
  if ! command -v dockerd >/dev/null 2>&1 || ! command -v containerd >/dev/null 2>&1; then
    echo "dockerd.sh: installing docker.io" >&2
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io >&2
  fi
  command -v docker >/dev/null 2>&1 || die "docker CLI missing after install"
}

running_pid() {
  [ -f "$PIDFILE" ] || return 1
  local pid; pid=$(cat "$PIDFILE" 2>/dev/null) || return 1
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && echo "$pid"
}

answers() { DOCKER_HOST=$DOCKER_HOST_URL docker version --format '{{.Server.Version}}' >/dev/null 2>&1; }

start() {
  ensure_installed
  if running_pid >/dev/null && answers; then
    echo "DOCKER_HOST=$DOCKER_HOST_URL"; return 0
  fi
  mkdir -p "$DATA_ROOT" "$EXEC_ROOT"
  : >"$LOG"
  # setsid: the daemon must outlive this script and not get our job-control signals.
  setsid dockerd \
    --data-root "$DATA_ROOT" \
    --exec-root "$EXEC_ROOT" \
    --pidfile "$PIDFILE" \
    -H "$DOCKER_HOST_URL" \
    --storage-driver=overlay2 \
    --iptables=false --ip-masq=false --bridge=none \
    --userland-proxy=false \
    --log-level=warn \
    </dev/null >>"$LOG" 2>&1 &
  local launcher=$!
  for _ in $(seq 1 120); do
    if answers; then
      local drv; drv=$(DOCKER_HOST=$DOCKER_HOST_URL docker info --format '{{.Driver}}' 2>/dev/null || true)
      [ "$drv" = overlay2 ] || { echo "dockerd.sh: storage driver is '$drv', not overlay2" >&2; }
      echo "DOCKER_HOST=$DOCKER_HOST_URL"
      return 0
    fi
    if ! kill -0 "$launcher" 2>/dev/null; then
      echo "dockerd.sh: dockerd exited during start-up; last lines of $LOG:" >&2
      tail -n 40 "$LOG" >&2
      exit 1
    fi
    sleep 0.5
  done
  echo "dockerd.sh: dockerd did not answer on $SOCK within 60 s; last lines of $LOG:" >&2
  tail -n 40 "$LOG" >&2
  stop_daemon
  exit 1
}

stop_daemon() {
  local pid
  if pid=$(running_pid); then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null || true
  fi
  # dockerd's managed containerd lives under the exec root; it exits with
  # dockerd, but kill a straggler by its own pidfile if one is left.
  local cpid="$EXEC_ROOT/containerd/containerd.pid"
  if [ -f "$cpid" ] && kill -0 "$(cat "$cpid")" 2>/dev/null; then
    kill -TERM "$(cat "$cpid")" 2>/dev/null || true
  fi
  rm -f "$PIDFILE" "$SOCK"
}

stop() {
  stop_daemon
  # overlay2 may leave mounts behind if the daemon was killed
  if [ -d "$DATA_ROOT" ]; then
    { grep -F " $DATA_ROOT/" /proc/self/mounts || true; } | awk '{print $2}' | sort -r | while read -r m; do umount -l "$m" 2>/dev/null || true; done
  fi
  { grep -F " $EXEC_ROOT" /proc/self/mounts || true; } | awk '{print $2}' | sort -r | while read -r m; do umount -l "$m" 2>/dev/null || true; done
  rm -rf "$EXEC_ROOT"
  if [ "${STRATA_BENCH_DOCKER_KEEP:-0}" != 1 ]; then rm -rf "$DATA_ROOT"; fi
  echo "dockerd.sh: stopped"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status)
    if running_pid >/dev/null && answers; then echo "running: DOCKER_HOST=$DOCKER_HOST_URL"; else echo "not running"; exit 1; fi ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
