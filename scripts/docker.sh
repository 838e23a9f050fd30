#!/usr/bin/env bash
# A Docker engine for the tests (tests/docker.rs), on this machine, with no bridge network and no
# iptables rules: every container the tests run uses --network host, so all traffic stays on
# 127.0.0.1, and no image is pulled (the tests build FROM scratch).
#   scripts/docker.sh        install docker.io and docker-compose when missing; start dockerd when
#                            no daemon answers (then it is ours: its pid in target/dockerd.pid)
#   scripts/docker.sh stop   stop the dockerd this script started, if any
# Idempotent; run as root.
set -euo pipefail
cd "$(dirname "$0")/.."
# Debian's client (docker.io) builds with the daemon's own BuildKit; another client on PATH (a
# newer one in /usr/local/bin, say) may want a buildx plugin this machine does not have.
docker() { if [ -x /usr/bin/docker ]; then /usr/bin/docker "$@"; else command docker "$@"; fi; }
log() { echo "docker: $*" >&2; }
pidfile=target/dockerd.pid

if [ "${1:-}" = stop ]; then
  if [ -f "$pidfile" ] && kill "$(cat "$pidfile")" 2>/dev/null; then
    for _ in $(seq 50); do kill -0 "$(cat "$pidfile")" 2>/dev/null || break; sleep 0.1; done
    log "stopped dockerd"
  fi
  rm -f "$pidfile"
  exit 0
fi

need=()
[ -x /usr/sbin/dockerd ] || need+=(docker.io)
command -v docker-compose >/dev/null 2>&1 || need+=(docker-compose)
if ((${#need[@]})); then
  log "installing ${need[*]}"
  # Debian's package would start the daemon with its defaults (a bridge, NAT rules): not here.
  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
  rm -f /usr/sbin/policy-rc.d
fi

if ! docker info >/dev/null 2>&1; then
  log "starting dockerd (--bridge=none --iptables=false --ip6tables=false)"
  mkdir -p target
  dockerd --bridge=none --iptables=false --ip6tables=false >target/dockerd.log 2>&1 &
  echo $! > "$pidfile"
  for _ in $(seq 100); do docker info >/dev/null 2>&1 && break; sleep 0.2; done
  docker info >/dev/null 2>&1 || { log "dockerd did not start:"; tail -20 target/dockerd.log >&2; exit 1; }
fi
log "Docker $(docker version --format '{{.Server.Version}}') is up"
