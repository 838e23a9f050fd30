#!/usr/bin/env bash
# Regenerate scripts/link-order.txt: the functions a probe run executes, which
# scripts/build-static.sh asks the linker to place next to each other.
#   scripts/link-order.sh
#
# Why: the kernel maps 64 KiB of the binary around every page a process touches, so a run whose
# code is spread over the whole 3.5 MB text maps nearly all of it (peak RSS ~4 MiB). The ~1.2 MB
# of functions a run executes, placed together, is all it maps (peak RSS ~2.4 MiB, and ~0.2 ms
# less per run in page faults). The list names symbols, so it is exact for the code it was made
# from and degrades gracefully as the code changes (a symbol it does not find is skipped):
# regenerate it after dependency or toolchain updates, then rerun scripts/bench.sh.
#
# How: builds the same binary with symbols (scripts/build-static.sh --profiling), runs typical
# probes under valgrind's callgrind (healthy, unhealthy, refused, a script fault, the deadline,
# JSON output, HTTP, TCP, PostgreSQL (trust, and a password over TLS), MariaDB, Redis against
# local peers, and a script that keeps state), and lists every function any of them executed, in
# the order the profiling binary has them.
set -euo pipefail
cd "$(dirname "$0")/.."
log() { echo "link-order: $*" >&2; }

command -v valgrind >/dev/null || { apt-get update -qq && apt-get install -y -qq valgrind >/dev/null; }
scripts/test-services.sh
scripts/build-static.sh --profiling
bin=$(realpath target/link-order/x86_64-unknown-linux-musl/release/rhai-probe)

work=$(mktemp -d /tmp/rhai-probe-order.XXXXXX)
chmod 755 "$work"
source scripts/bench/private-pg.sh
cleanup() { [ -n "${peer:-}" ] && kill "$peer" 2>/dev/null; stop_private_pg "$work"; rm -rf "$work"; }
trap cleanup EXIT
port=$(free_port)
python3 -m http.server "$port" --bind 127.0.0.1 --directory "$work" >/dev/null 2>&1 &
peer=$!
for _ in $(seq 50); do curl -sf -o /dev/null "http://127.0.0.1:$port/" 2>/dev/null && break; sleep 0.1; done

cat > "$work/true.rhai" <<<'true'
# The article's check, with a threshold no load reaches: a busy machine must not skip its request.
cat > "$work/article.rhai" <<EOF
load_avg() / cpu_count() * 100.0 < 1.0e9 && http_get("http://127.0.0.1:$port/").status == 200
EOF
cat > "$work/checks.rhai" <<EOF
let url = var_or("url", "http://localhost:$port/");
check("load", load_avg(5) < 1000.0);
check("web", || http_get(url).ok);
check("port", tcp_open("127.0.0.1", $port, #{ timeout: "500ms" }));
check("memory", memory().used_pct < 100.0);
EOF
cat > "$work/down.rhai" <<<'check("web", || http_get("http://127.0.0.1:1/health").status == 200);'
cat > "$work/fault.rhai" <<<$'let resp = http_gett("http://127.0.0.1:1/");\nresp.ok'
cat > "$work/slow.rhai" <<<'sleep(5); true'
cat > "$work/pg.rhai" <<<'sql_ping("postgres://postgres@127.0.0.1:5432/test")'
# A password login over TLS, as the benchmark's (and Debian's) PostgreSQL asks for.
private_pg "$work" order-pg-pw
cat > "$work/pgtls.rhai" <<<"sql_ping(\"$pg_dsn\")"
cat > "$work/mysql.rhai" <<<'sql_ping("mysql://root@127.0.0.1:3306/test")'
cat > "$work/redis.rhai" <<<'redis_ping("redis://127.0.0.1:6379")'
# State kept across runs (the text run writes the file, the JSON run reads it back).
cat > "$work/state.rhai" <<'EOF'
check("up", cpu_count() > 0, #{ grace: "3m" });
check("flaky", true, #{ failures: 3, within: "5m" });
let r = rate("runs", recall("runs", 0) + 1);
remember("runs", recall("runs", 0) + 1);
history().len() >= 0
EOF

# Each run must end as it would outside valgrind, or the list misses the code it did not reach
# (valgrind runs a probe ~50 times slower: a short deadline would cut every HTTP call short).
declare -A want=([true]=0 [article]=0 [checks]=0 [down]=1 [fault]=3 [slow]=4 [pg]=0 [pgtls]=0 [mysql]=0
                 [redis]=0 [state]=0)
n=0
for script in true article checks down fault slow pg pgtls mysql redis state; do
  timeout=20s
  extra=()
  [ "$script" = state ] && extra=(--state-dir "$work/state")
  [ "$script" = slow ] && timeout=2s
  for format in text json; do
    n=$((n + 1))
    code=0
    valgrind --tool=callgrind --demangle=no --callgrind-out-file="$work/cg.$n" \
      "$bin" run --timeout "$timeout" "${extra[@]}" --format "$format" --log-file "$work/log" "$work/$script.rhai" \
      >"$work/out" 2>&1 || code=$?
    if [ "$code" != "${want[$script]}" ]; then
      log "$script.rhai ($format) exited $code under valgrind, expected ${want[$script]}:"
      cat "$work/out" >&2
      exit 1
    fi
  done
done

python3 - "$bin" "$work" > scripts/link-order.txt <<'PY'
import glob, re, subprocess, sys
binary, work = sys.argv[1], sys.argv[2]
ran = set()
for path in glob.glob(f"{work}/cg.*"):
    for line in open(path, errors="replace"):
        m = re.match(r"c?fn=\(\d+\) (.+)", line)
        if m:
            ran.add(m.group(1).strip())
# Defined functions, in the profiling binary's own address order.
nm = subprocess.run(["nm", "-n", "--defined-only", binary], capture_output=True, text=True, check=True)
seen = set()
for line in nm.stdout.splitlines():
    parts = line.split()
    if len(parts) == 3 and parts[1] in "tTwW" and parts[2] in ran and parts[2] not in seen:
        seen.add(parts[2])
        print(parts[2])
PY
log "wrote scripts/link-order.txt: $(wc -l < scripts/link-order.txt) functions from $n runs"
