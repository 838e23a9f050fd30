#!/usr/bin/env bash
# `rhai-probe serve` for a long while under kubelet-like load while its peers die and come back
# (scripts/soak/soak.py says what it does and asserts):
#   scripts/soak.sh            10 minutes (at least 1 minute of warm-up): by hand, results in
#                              docs/serve.md. The warm-up also lasts until every kind of chaos
#                              event has happened once.
#   scripts/soak.sh --short    2 minutes (at least 30 s of warm-up): what CI runs
# RHAI_PROBE_BIN=PATH soaks another build; SOAK_SEED=N seeds the random choices (the threads
# still interleave as they will).
# Uses the static binary (built if missing), the services test-services.sh starts (MariaDB, and
# the gRPC peer's venv), and starts its own HTTP peer, PostgreSQL and Redis on free loopback
# ports; everything it starts is stopped on exit. Writes target/soak/summary.md and samples.csv.
# Run as root (PostgreSQL runs as postgres).
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=600 warmup=60
if [ "${1:-}" = --short ]; then seconds=120 warmup=30; fi

scripts/test-services.sh
# RHAI_PROBE_BIN: another build to soak (a debug build with a fault put in on purpose, say).
bin=${RHAI_PROBE_BIN:-target/x86_64-unknown-linux-musl/release/rhai-probe}
[ -x "$bin" ] || scripts/build-static.sh
command -v redis-server >/dev/null && command -v pg_isready >/dev/null && command -v setpriv >/dev/null

work=$(mktemp -d /tmp/rhai-probe-soak.XXXXXX)
chmod 755 "$work"
cleanup() {
  # Whatever is left if the driver itself failed: its peers and PostgreSQL.
  pkill -f -- "$work" 2>/dev/null || true
  [ -d "$work/pg" ] && setpriv --reuid=postgres --regid=postgres --init-groups \
    "$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)/pg_ctl" -D "$work/pg" -m immediate stop >/dev/null 2>&1 || true
  mkdir -p target/soak
  cp "$work"/summary.md "$work"/samples.csv "$work"/serve.log target/soak/ 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
python3 scripts/soak/soak.py "$(realpath "$bin")" "$work" "$seconds" "$warmup"
