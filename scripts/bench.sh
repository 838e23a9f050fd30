#!/usr/bin/env bash
# What one probe costs, against what people run today, on this machine, in one interleaved session:
#   scripts/bench.sh           -> docs/benchmarks.md (200 runs per command; a few minutes)
#   scripts/bench.sh --quick   -> target/benchmarks-quick.md (5 runs; what CI runs so this cannot rot)
# Installs what it needs from Debian when missing (hyperfine, valgrind, nginx, curl, netcat, time,
# wrk, the PostgreSQL and MariaDB clients, python3-requests) and, into target/bench-venv, the
# Python clients pika and nats-py from PyPI; builds the static binary if needed, and starts its
# own peers on loopback (besides the machine's RabbitMQ, which test-services.sh starts): a private
# nats-server, nginx answering /health on 127.0.0.1:80 and [::1]:80 (the
# Python script's URL is http://localhost/health, and it runs unchanged), a private PostgreSQL with
# scram-sha-256 passwords and TLS (as Debian configures one), and a password account on the local
# MariaDB. Everything it starts is stopped on exit. Run as root.
set -euo pipefail
cd "$(dirname "$0")/.."

quick=0
[ "${1:-}" = --quick ] && quick=1
if ((quick)); then runs=5 warmup=1 out=target/benchmarks-quick.md; else runs=200 warmup=10 out=docs/benchmarks.md; fi
log() { echo "bench: $*" >&2; }

# --- tools ----------------------------------------------------------------------------------------
declare -A pkg=([hyperfine]=hyperfine [valgrind]=valgrind [nginx]=nginx [curl]=curl [nc]=netcat-openbsd
                [mysqladmin]=mariadb-client [psql]=postgresql-client [openssl]=openssl [wrk]=wrk)
need=()
for cmd in "${!pkg[@]}"; do command -v "$cmd" >/dev/null 2>&1 || [ -x "/usr/sbin/$cmd" ] || need+=("${pkg[$cmd]}"); done
[ -x /usr/bin/time ] || need+=(time)
python=$(command -v python3)
if ! "$python" -c 'import requests' 2>/dev/null; then python=/usr/bin/python3; need+=(python3-requests); fi
if ((${#need[@]})); then
  log "installing ${need[*]}"
  # Debian starts services from their packages; keep nginx from taking port 80 with its default site.
  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
  rm -f /usr/sbin/policy-rc.d
fi
nginx=$(command -v nginx || echo /usr/sbin/nginx)
# The brokers' Python clients, in a venv of their own (Debian's python3 takes no pip installs).
venv=target/bench-venv
if ! "$venv/bin/python" -c 'import pika, nats' 2>/dev/null; then
  log "installing pika and nats-py into $venv"
  "$python" -m venv "$venv" 2>/dev/null || { apt-get install -y -qq python3-venv >/dev/null && /usr/bin/python3 -m venv "$venv"; }
  "$venv/bin/pip" install -q pika nats-py
fi
# Not realpath: the venv's python is a symlink to the base interpreter, which lacks the clients.
venv_python="$PWD/$venv/bin/python"

scripts/test-services.sh
bin=target/x86_64-unknown-linux-musl/release/rhai-probe
[ -x "$bin" ] || scripts/build-static.sh
bin=$(realpath "$bin")
source scripts/bench/private-pg.sh

work=$(mktemp -d /tmp/rhai-probe-bench.XXXXXX)
chmod 755 "$work"
cleanup() {
  [ -f "$work/nginx.pid" ] && kill "$(cat "$work/nginx.pid")" 2>/dev/null
  [ -n "${nats_pid:-}" ] && kill "$nats_pid" 2>/dev/null
  [ -n "${grpc_pid:-}" ] && kill "$grpc_pid" 2>/dev/null
  stop_private_pg "$work"
  rm -rf "$work"
}
trap cleanup EXIT

# --- peers ----------------------------------------------------------------------------------------
if curl -s -o /dev/null --max-time 1 http://127.0.0.1:80/ 2>/dev/null; then
  log "port 80 on 127.0.0.1 is taken; the Python script's URL needs it"; exit 1
fi
cat > "$work/nginx.conf" <<EOF
worker_processes 1;
pid $work/nginx.pid;
error_log $work/nginx.err;
events { worker_connections 64; }
http {
  access_log off;
  server {
    listen 127.0.0.1:80;
    listen [::1]:80;
    location = /health { default_type text/plain; return 200 "ok\n"; }
  }
}
EOF
# Its start-up errors go to nginx.err only (-e): show them, or a failure here is silent.
"$nginx" -c "$work/nginx.conf" -p "$work" -e "$work/nginx.err" \
  || { log "nginx did not start: $(cat "$work/nginx.err" 2>/dev/null)"; exit 1; }
for _ in $(seq 50); do curl -sf -o /dev/null http://localhost/health && break; sleep 0.1; done
curl -sf -o /dev/null http://localhost/health || { log "nginx did not answer"; exit 1; }

private_pg "$work" bench-pg-pw

nats_port=$("$python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
nats-server -a 127.0.0.1 -p "$nats_port" >/dev/null 2>&1 & nats_pid=$!
for _ in $(seq 50); do (exec 3<>"/dev/tcp/127.0.0.1/$nats_port") 2>/dev/null && break; sleep 0.1; done
amqp_url=amqp://guest:guest@127.0.0.1:5672/
nats_url=nats://127.0.0.1:$nats_port
# The same checks in Python: a login that opens the vhost and closes; CONNECT, PING/PONG (flush).
cat > "$work/amqp_check.py" <<EOF
import pika
pika.BlockingConnection(pika.URLParameters("$amqp_url")).close()
EOF
cat > "$work/nats_check.py" <<EOF
import asyncio, nats
async def main():
    nc = await nats.connect("$nats_url", allow_reconnect=False)
    await nc.flush()
    await nc.close()
asyncio.run(main())
EOF

# A gRPC health server (grpcio, the tests' own peer) and the same Check from Python's grpcio.
grpc_python="$PWD/target/grpc-venv/bin/python"
# It stops when its stdin closes: a fifo this shell holds open until it exits.
grpc_out="$work/grpc.port"
mkfifo "$work/grpc.in"
"$grpc_python" tests/peers/grpc_server.py < "$work/grpc.in" > "$grpc_out" 2>/dev/null & grpc_pid=$!
exec {grpc_in}> "$work/grpc.in"
for _ in $(seq 100); do [ -s "$grpc_out" ] && break; sleep 0.1; done
grpc_port=$(head -1 "$grpc_out")
[ -n "$grpc_port" ] || { log "the gRPC server did not start"; exit 1; }
cat > "$work/grpc_check.py" <<EOF
import sys, grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
with grpc.insecure_channel("127.0.0.1:$grpc_port") as channel:
    r = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=""), timeout=5)
sys.exit(0 if r.status == health_pb2.HealthCheckResponse.SERVING else 1)
EOF

my_password=bench-my-pw
mariadb -uroot -e "CREATE USER IF NOT EXISTS 'rhai_probe_bench'@'%' IDENTIFIED BY '$my_password';
  ALTER USER 'rhai_probe_bench'@'%' IDENTIFIED BY '$my_password'; GRANT USAGE ON *.* TO 'rhai_probe_bench'@'%'"
my_dsn="mysql://rhai_probe_bench:$my_password@127.0.0.1:3306/"

# --- probes ---------------------------------------------------------------------------------------
echo 'true' > "$work/true.rhai"
echo 'load_avg() / cpu_count() * 100.0 < 90.0 && http_get("http://localhost/health").status == 200' \
  > "$work/article.rhai"
echo 'tcp_open("127.0.0.1", 80)' > "$work/tcp.rhai"
echo "sql_ping(\"$pg_dsn\")" > "$work/pg.rhai"
echo "sql_ping(\"$my_dsn\")" > "$work/mysql.rhai"
echo "amqp_ping(\"$amqp_url\")" > "$work/amqp.rhai"
echo "nats_ping(\"$nats_url\")" > "$work/nats.rhai"
echo "grpc_health(\"127.0.0.1:$grpc_port\")" > "$work/grpc.rhai"
echo "tcp_open(\"127.0.0.1\", $grpc_port)" > "$work/grpctcp.rhai"
# The same named check without and with state (a grace period): what keeping state costs a run.
echo 'check("up", cpu_count() > 0)' > "$work/plain.rhai"
echo 'check("up", cpu_count() > 0, #{ grace: "3m" })' > "$work/state.rhai"
# On tmpfs when there is one, as an emptyDir with medium: Memory (docs/state.md).
state_dir="$work/state-dir"
[ -d /dev/shm ] && [ -w /dev/shm ] && state_dir=/dev/shm/rhai-probe-bench-state
rm -rf "$state_dir"
# 200 lines, 20 named checks, each with its host calls and a little logic.
{
  echo "// 200 lines, 20 checks"
  for i in $(seq 1 20); do
    case $((i % 4)) in
      0) call='http_get("http://localhost/health").status' want='== 200' ;;
      1) call='tcp_open("127.0.0.1", 80)' want='== true' ;;
      2) call='load_avg(5)' want='< 1000.0' ;;
      3) call='cpu_count()' want='>= 1' ;;
    esac
    echo "// check $i"
    echo "let limit_$i = var_or(\"limit_$i\", $i * 10);"
    echo "let seen_$i = [];"
    echo "for n in 0..$i { seen_$i.push(n * 2); }"
    echo "let total_$i = 0;"
    echo "for v in seen_$i { total_$i += v; }"
    echo "let v_$i = $call;"
    echo "debug(\`check $i: \${v_$i}\`);"
    echo "check(\"c$i\", v_$i $want && total_$i <= limit_$i * $i);"
  done
  for i in $(seq 1 19); do echo "// padding $i"; done
} > "$work/big.rhai"
[ "$(wc -l < "$work/big.rhai")" -eq 200 ] || { log "big.rhai is not 200 lines"; exit 1; }
sed "s|'/proc/1/fd/1'|'$work/python-probe.log'|" scripts/bench/liveness_probe.py > "$work/liveness_probe.py"
for s in true article tcp pg mysql amqp nats grpc grpctcp big plain; do
  "$bin" run --timeout 5s "$work/$s.rhai" >/dev/null || [ "$s" = article ] || { log "$s.rhai fails"; "$bin" run "$work/$s.rhai"; exit 1; }
done

# --- callgrind ------------------------------------------------------------------------------------
instructions() {
  valgrind --tool=callgrind --callgrind-out-file=/dev/null "$bin" run --timeout 10s "$work/$1.rhai" 2>&1 \
    | sed -n 's/.*Collected : \([0-9]*\).*/\1/p'
}
cg_true=$(instructions true) cg_article=$(instructions article) cg_big=$(instructions big)
cg_pg=$(instructions pg) cg_mysql=$(instructions mysql) cg_tcp=$(instructions tcp)
cg_amqp=$(instructions amqp) cg_nats=$(instructions nats) cg_plain=$(instructions plain)
cg_grpc=$(instructions grpc)
"$bin" run --state-dir "$state_dir" "$work/state.rhai" >/dev/null || { log "state.rhai fails"; exit 1; }
cg_state=$(valgrind --tool=callgrind --callgrind-out-file=/dev/null "$bin" run --timeout 10s --state-dir "$state_dir" "$work/state.rhai" 2>&1 \
  | sed -n 's/.*Collected : \([0-9]*\).*/\1/p')
# The same check as a URL target: it must cost no more than the script.
cg_tcp_target=$(valgrind --tool=callgrind --callgrind-out-file=/dev/null "$bin" run --timeout 10s tcp://127.0.0.1:80 2>&1 \
  | sed -n 's/.*Collected : \([0-9]*\).*/\1/p')

# --- cold start (cachegrind) -----------------------------------------------------------------------
# The distinct 64-byte lines of code and data a run touches: cachegrind's simulated caches start
# empty and its last level (32 MiB here, whatever the machine has) is larger than any of these
# runs, so its misses there are first touches. A probe in a pod runs every few seconds after the
# application has had the CPU, so this is memory it fetches from RAM on every run.
footprint() {
  valgrind --tool=cachegrind --cache-sim=yes --I1=32768,8,64 --D1=32768,8,64 --LL=33554432,16,64 \
    --cachegrind-out-file=/dev/null "$@" 2>&1 >/dev/null \
    | sed -n 's/.*LL misses: *\([0-9,]*\).*/\1/p' | tr -d ,
}
fp_true=$(footprint "$bin" run --timeout 10s "$work/true.rhai")
fp_bintrue=$(footprint /bin/true)
fp_article=$(footprint "$bin" run --timeout 10s "$work/article.rhai")
fp_curl=$(footprint "$(command -v curl)" -sf -o /dev/null http://localhost/health)
fp_pg=$(footprint "$bin" run --timeout 10s "$work/pg.rhai")

# --- spec for the runner ----------------------------------------------------------------------------
export work bin state_dir python venv_python grpc_python pgbin pg_port pg_dsn my_dsn my_password runs warmup quick
export cg_true cg_article cg_big cg_pg cg_mysql cg_tcp cg_tcp_target cg_amqp cg_nats cg_plain cg_state cg_grpc fp_true fp_bintrue fp_article fp_curl fp_pg
"$python" - > "$work/spec.json" <<'PY'
import json, os, platform, shutil, subprocess, sys
e = os.environ
which = lambda name: shutil.which(name) or sys.exit(f"bench: {name} not found")
w, b = e["work"], e["bin"]
def ver(cmd):
    try:
        out = subprocess.run(cmd, shell=True, capture_output=True, text=True, timeout=10)
        return (out.stdout + out.stderr).strip().splitlines()[0]
    except Exception as ex:
        return f"unknown ({ex})"
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
ours = lambda script: {"key": "ours", "label": f"rhai-probe run {script}.rhai", "argv": [b, "run", "--timeout", "5s", f"{w}/{script}.rhai"]}
pg_isready = f"{e['pgbin']}/pg_isready"
rows = [
    {"id": "true", "name": "`true` script", "commands": [ours("true"),
        {"key": "true", "label": "/bin/true", "argv": ["/bin/true"]}]},
    {"id": "article", "name": "the article's check", "commands": [
        dict(ours("article"), ok_codes=[0, 1]),
        {"key": "python", "label": "python3 liveness_probe.py", "argv": [e["python"], f"{w}/liveness_probe.py"], "ok_codes": [0, 1]},
        {"key": "curl", "label": "curl -sf http://localhost/health", "argv": [which("curl"), "-sf", "http://localhost/health"]}]},
    {"id": "tcp", "name": "TCP port open", "commands": [ours("tcp"),
        {"key": "nc", "label": "nc -z 127.0.0.1 80", "argv": [which("nc"), "-z", "127.0.0.1", "80"]}]},
    {"id": "pg", "name": "PostgreSQL, password (scram) + TLS", "commands": [ours("pg"),
        {"key": "pg_isready", "label": f"pg_isready -h 127.0.0.1 -p {e['pg_port']}", "argv": [pg_isready, "-h", "127.0.0.1", "-p", e["pg_port"]]},
        {"key": "psql", "label": "psql URL -c 'select 1'", "argv": [which("psql"), e["pg_dsn"], "-qAt", "-c", "select 1"]}]},
    {"id": "mysql", "name": "MariaDB, password", "commands": [ours("mysql"),
        {"key": "mysqladmin", "label": "mysqladmin -h 127.0.0.1 -u … -p… ping", "argv": [which("mysqladmin"), "--protocol=tcp", "-h", "127.0.0.1", "-u", "rhai_probe_bench", f"-p{e['my_password']}", "ping"]}]},
    {"id": "amqp", "name": "RabbitMQ login + vhost (AMQP 0-9-1)", "commands": [ours("amqp"),
        {"key": "pika", "label": "python3 amqp_check.py (pika)", "argv": [e["venv_python"], f"{w}/amqp_check.py"]}]},
    {"id": "nats", "name": "NATS CONNECT + PING", "commands": [ours("nats"),
        {"key": "nats_py", "label": "python3 nats_check.py (nats-py)", "argv": [e["venv_python"], f"{w}/nats_check.py"]}]},
    {"id": "grpc", "name": "gRPC health Check (grpcio server)", "commands": [ours("grpc"),
        {"key": "grpcio", "label": "python3 grpc_check.py (grpcio)", "argv": [e["grpc_python"], f"{w}/grpc_check.py"]},
        dict(ours("grpctcp"), key="tcp")]},
    {"id": "state", "name": "a check with a grace period (state file) vs without", "commands": [
        {"key": "ours", "label": "rhai-probe run --state-dir DIR state.rhai", "argv": [b, "run", "--timeout", "5s", "--state-dir", e["state_dir"], f"{w}/state.rhai"]},
        dict(ours("plain"), key="plain")]},
    {"id": "big", "name": "200 lines, 20 checks", "commands": [ours("big"),
        dict(ours("article"), key="article", ok_codes=[0, 1])]},
]
targets = [
    {"name": "article check: wall vs curl", "expr": "m['article']['ours']['wall'] / m['article']['curl']['wall']", "limit": 0.25, "limit_text": "0.25×", "fmt": "{:.2f}×"},
    {"name": "article check: the Python script's CPU over ours", "expr": "m['article']['python']['cpu'] / m['article']['ours']['cpu']", "limit": 80, "at_least": True, "limit_text": "80×", "fmt": "{:.0f}×"},
    {"name": "article check: peak RSS", "expr": "m['article']['ours']['rss']", "limit": 4.0, "limit_text": "4 MiB", "fmt": "{:.1f} MiB"},
    {"name": "article check: instructions", "expr": "cg['article check']", "limit": 600_000, "limit_text": "0.6 M", "fmt": "{:,}"},
    {"name": "`true` script: wall vs /bin/true", "expr": "m['true']['ours']['wall'] / m['true']['true']['wall']", "limit": 1.25, "limit_text": "1.25×", "fmt": "{:.2f}×"},
    {"name": "`true` script: instructions", "expr": "cg['`true` script']", "limit": 500_000, "limit_text": "0.5 M", "fmt": "{:,}"},
    {"name": "sql_ping PostgreSQL: wall vs pg_isready", "expr": "m['pg']['ours']['wall'] / m['pg']['pg_isready']['wall']", "limit": 0.5, "limit_text": "0.5×", "fmt": "{:.2f}×"},
    {"name": "sql_ping MariaDB: wall vs mysqladmin ping", "expr": "m['mysql']['ours']['wall'] / m['mysql']['mysqladmin']['wall']", "limit": 1.0, "limit_text": "1.0×", "fmt": "{:.2f}×"},
    {"name": "grpc_health: the Python client's CPU over ours", "expr": "m['grpc']['grpcio']['cpu'] / m['grpc']['ours']['cpu']", "limit": 100, "at_least": True, "limit_text": "100×", "fmt": "{:.0f}×"},
    {"name": "grpc_health: wall vs tcp_open to the same port", "expr": "m['grpc']['ours']['wall'] / m['grpc']['tcp']['wall']", "limit": 2.0, "limit_text": "2×", "fmt": "{:.2f}×"},
    {"name": "state: wall per run over the same check without", "expr": "m['state']['ours']['wall'] - m['state']['plain']['wall']", "limit": 0.1, "limit_text": "0.1 ms", "fmt": "{:.3f} ms"},
    {"name": "static binary", "expr": "size", "limit": 6_000_000, "limit_text": "6 MB", "fmt": "{:,} bytes"},
]
spec = {
    "runs": int(e["runs"]), "warmup": int(e["warmup"]),
    "intro": ("Written by `scripts/bench.sh`" + (" --quick (few runs: not for conclusions)" if e["quick"] == "1" else "")
              + ". The peers are local: nginx answering `/health` on loopback, a private PostgreSQL "
              "with scram-sha-256 passwords and TLS on (as Debian configures one), the local MariaDB "
              "with a password account. The Python script is the article's, unchanged but for its log "
              "file; it runs with `requests` and logs to a file. rhai-probe is the static release binary."),
    "versions": {
        "CPU": f"{cpu}, {os.cpu_count()} CPUs", "kernel": platform.release(),
        "rhai-probe": ver(f"{b} --version"), "python": ver(f"{e['python']} --version") + ", requests " + ver(f"{e['python']} -c 'import requests; print(requests.__version__)'"),
        "curl": ver("curl --version"), "nginx": ver("nginx -v 2>&1 || /usr/sbin/nginx -v"),
        "pg_isready": ver(f"{pg_isready} --version"), "psql": ver("psql --version"),
        "mysqladmin": ver("mysqladmin --version"), "valgrind": ver("valgrind --version"),
        "pika, nats-py": ver(f"{e['venv_python']} -c 'from importlib.metadata import version as v; print(v(\"pika\"), v(\"nats-py\"))'"),
        "RabbitMQ": ver("rabbitmqctl -q version"), "nats-server": ver("nats-server --version"),
        "grpcio": ver(f"{e['grpc_python']} -c 'import grpc; print(grpc.__version__)'"),
    },
    "rows": rows,
    "callgrind": {"`true` script": int(e["cg_true"]), "article check": int(e["cg_article"]),
                  "200 lines, 20 checks": int(e["cg_big"]), "sql_ping PostgreSQL (scram, TLS)": int(e["cg_pg"]),
                  "sql_ping MariaDB": int(e["cg_mysql"]), "TCP port open (tcp.rhai)": int(e["cg_tcp"]),
                  "TCP port open (URL target tcp://127.0.0.1:80)": int(e["cg_tcp_target"]),
                  "amqp_ping RabbitMQ": int(e["cg_amqp"]), "nats_ping": int(e["cg_nats"]),
                  "grpc_health (grpcio server)": int(e["cg_grpc"]),
                  "a named check (plain.rhai)": int(e["cg_plain"]),
                  "the same check with a grace period (state file)": int(e["cg_state"])},
    "footprint": [["`true` script", "`rhai-probe run true.rhai`", int(e["fp_true"])],
                  ["", "`/bin/true`", int(e["fp_bintrue"])],
                  ["the article's check", "`rhai-probe run article.rhai`", int(e["fp_article"])],
                  ["", "`curl -sf http://localhost/health`", int(e["fp_curl"])],
                  ["sql_ping PostgreSQL (scram, TLS)", "`rhai-probe run pg.rhai`", int(e["fp_pg"])]],
    "binary_size": os.path.getsize(b),
    "targets": targets,
    "notes": open("scripts/bench/notes.md").read() if os.path.exists("scripts/bench/notes.md") else "",
}
print(json.dumps(spec, indent=1))
PY
"$python" scripts/bench/run.py "$work/spec.json" "$out" >/dev/null

# A cross-check with hyperfine, which runs each command's runs in a block rather than interleaved.
# -i: the article's check exits 1 whenever the machine's load is over 90% of its CPUs (right after
# a build, say), and that must not abort the measurement. Its errors are kept for a failure.
hyperfine -N -i --warmup 3 --runs $((runs > 50 ? 50 : runs)) --export-markdown "$work/hyperfine.md" \
  -n "rhai-probe run article.rhai" "$bin run $work/article.rhai" \
  -n "curl -sf http://localhost/health" "curl -sf http://localhost/health" >"$work/hyperfine.log" 2>&1 \
  || { log "hyperfine failed:"; cat "$work/hyperfine.log" >&2; exit 1; }
{
  echo "## Cross-check with hyperfine"
  echo
  echo "hyperfine runs one command's runs, then the next's (means, not medians):"
  echo
  cat "$work/hyperfine.md"
} >> "$out"
# Serve mode: wrk against a cached probe, CPU per answer against exec mode, memory over 100,000
# requests (scripts/bench/serve.py).
"$python" scripts/bench/serve.py "$bin" "$work" "$quick" > "$work/serve.md"
{ echo; cat "$work/serve.md"; } >> "$out"
# `wait`: the CPU a waiting process uses, against a port nothing listens on (every attempt fails),
# one attempt a second. Two waits of different lengths, each child's own CPU from wait4 (not
# /usr/bin/time's 10 ms ticks); the difference over the difference in attempts is the cost of an
# attempt without the process start.
closed=$("$python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$python" - "$bin" "$closed" "$quick" >> "$out" <<'PY'
import os, re, sys
bin, port, quick = sys.argv[1], sys.argv[2], sys.argv[3] == "1"
def wait(secs):
    r, w = os.pipe()
    null = os.open(os.devnull, os.O_WRONLY)
    argv = [bin, "wait", f"tcp://127.0.0.1:{port}", "--for", f"{secs}s", "--interval", "1s", "--max-interval", "1s"]
    pid = os.posix_spawn(bin, argv, os.environ, file_actions=[(os.POSIX_SPAWN_DUP2, w, 1), (os.POSIX_SPAWN_DUP2, null, 2)])
    os.close(w)
    out = os.read(r, 65536).decode()
    _, status, usage = os.wait4(pid, 0)
    if os.waitstatus_to_exitcode(status) != 124:
        sys.exit(f"bench: wait did not time out: {out}")
    attempts = int(re.search(r", (\d+) attempts?\)", out).group(1))
    return attempts, (usage.ru_utime + usage.ru_stime) * 1e3
short, long = (2, 5) if quick else (3, 33)
(a1, c1), (a2, c2) = wait(short), wait(long)
per = (c2 - c1) / max(a2 - a1, 1)
print(f"""
## Waiting (`rhai-probe wait`)

`rhai-probe wait tcp://127.0.0.1:PORT --for Ns --interval 1s --max-interval 1s` against a port
nothing listens on, so every attempt fails and the wait runs to its end (exit 124). {short} s: {a1}
attempts, {c1:.2f} ms of CPU (user and system of that process, wait4); {long} s: {a2} attempts,
{c2:.2f} ms. An attempt costs about {per:.2f} ms of CPU, so a minute of waiting at one attempt a
second about {per * 60:.0f} ms (the default interval doubles to 10 s: a sixth of that); between
attempts the process sleeps.
""")
PY
log "wrote $out"
cat "$out"
