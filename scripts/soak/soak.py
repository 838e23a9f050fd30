"""`rhai-probe serve` under kubelet-like load while its peers die and come back.

    soak.py BIN WORK SECONDS WARMUP    (run by scripts/soak.sh, which starts the shared services)

Peers, all on 127.0.0.1: an HTTP server (Python), a private PostgreSQL with a scram-sha-256
password, a private Redis with a password, the machine's MariaDB, a gRPC health server
(tests/peers/grpc_server.py). Ten probes over them, one of them in a ConfigMap-style directory
(`swap.rhai -> ..data/swap.rhai`, `..data -> ..GEN`).

While it runs:
- load: three "kubelet" lanes per probe, each asking every 1-10 s on a new connection (JSON, to
  read the answer's age), the status page now and then, and every BURST_EVERY seconds a burst of
  200 concurrent requests (plain, as kubelet sends them);
- chaos: in turn, at random, kill the HTTP peer, PostgreSQL or Redis (SIGKILL; PostgreSQL with an
  immediate shutdown) and bring it back, or swap `..data` to a new good script or a broken one;
- sampling: the server's RSS, open file descriptors and threads every SAMPLE seconds.

Asserted at the end (any failure: exit 1, each one named):
- after warm-up, between bursts, RSS grows < 1 MiB and its trend (last third's peak against
  the first third's) < 128 KiB; threads not at all; and the floor of open fds (the least of
  the last third of the samples against the least of the first third, between bursts) < 5;
- every request answered, none slower than the deadline + 100 ms, none with a secret in it;
- no answer older than --cache (the JSON's age_ms);
- every outage seen as 503 within one evaluation (cache + deadline + 0.5 s of polling), and the
  recovery as 200 within the same once the peer accepts again; the steady probes always 200;
- a good script swapped in is what answers within 2 s; a broken one keeps the last good version
  answering and is named on the status page within 2 s;
- no panic in the log; SIGTERM: exit 0 within 2 s.
Writes WORK/summary.md (also printed) and WORK/samples.csv.
"""

import http.client
import json
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time

BIN, WORK = sys.argv[1], sys.argv[2]
SECONDS, WARMUP = float(sys.argv[3]), float(sys.argv[4])
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CACHE, DEADLINE = 1.0, 2.0
SLOW = DEADLINE + 0.1
OUTAGE_BOUND = CACHE + DEADLINE + 0.5
SAMPLE = 1.0
BURST, BURST_EVERY = 200, 25.0 if SECONDS <= 180 else 45.0
PG_PASSWORD, REDIS_PASSWORD = "soak-Pg-pw-7731", "soak-Redis-pw-9913"
SECRETS = [PG_PASSWORD, REDIS_PASSWORD]
STEADY = ["mysql", "grpc", "state", "local"]
# RSS after warm-up, two rules. Its trend, the highest of the last third of the samples against
# the highest of the first third: -4 to 56 KiB in this version's runs, 276-432 KiB when the
# start-up allocator still served the whole process (the creep this caught). And its growth
# overall (a burst that reaches a new height of concurrency lifts RSS once: 20-172 KiB here).
RSS_TREND_KIB = 128
RSS_BOUND_KIB = 1024
rng = random.Random(int(os.environ.get("SOAK_SEED", "0")) or None)
lock = threading.Lock()
stop = threading.Event()
failures = []


def fail(message):
    with lock:
        if len(failures) < 200:
            failures.append(message)
    print(f"soak: FAIL {message}", file=sys.stderr, flush=True)


def log(message):
    print(f"soak: [{time.monotonic() - T0:6.1f}s] {message}", file=sys.stderr, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def listening(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
            return s.getsockname() != s.getpeername()
    except OSError:
        return False


def wait_listening(port, what, limit=30):
    started = time.monotonic()
    while not listening(port):
        if time.monotonic() - started > limit:
            raise SystemExit(f"soak: {what} did not listen on {port}")
        time.sleep(0.05)


# --- peers ----------------------------------------------------------------------------------------

HTTP_PEER = """
import http.server, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = b"ok"
        self.send_response(200 if self.path == "/health" else 404)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
http.server.ThreadingHTTPServer.allow_reuse_address = True
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
"""


class Peer:
    """A peer the chaos loop can kill and bring back on the same port."""

    def __init__(self, name, port):
        self.name, self.port, self.proc = name, port, None

    def start(self):
        self.proc = subprocess.Popen(self.command(), stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
        wait_listening(self.port, self.name)

    def kill(self):
        self.proc.kill()
        self.proc.wait()

    def ready(self):
        return listening(self.port)


class HttpPeer(Peer):
    def command(self):
        return [sys.executable, "-c", HTTP_PEER, str(self.port)]


class RedisPeer(Peer):
    def command(self):
        return ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                "--appendonly", "no", "--requirepass", REDIS_PASSWORD, "--dir", WORK]


def as_postgres(args):
    return ["setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups"] + args


class PgPeer(Peer):
    def __init__(self, port):
        super().__init__("PostgreSQL", port)
        self.bin = sorted(os.listdir("/usr/lib/postgresql"), key=lambda v: int(v))[-1]
        self.bin = f"/usr/lib/postgresql/{self.bin}/bin"
        self.data = os.path.join(WORK, "pg")
        pwfile = os.path.join(WORK, "pgpw")
        with open(pwfile, "w") as f:
            f.write(PG_PASSWORD)
        subprocess.run(["chown", "postgres", WORK, pwfile], check=True)
        subprocess.run(as_postgres([f"{self.bin}/initdb", "-D", self.data, "-U", "soak",
                                    f"--pwfile={pwfile}", "-A", "scram-sha-256", "-E", "UTF8",
                                    "--locale=C", "--no-sync"]),
                       check=True, stdout=subprocess.DEVNULL)

    def start(self):
        subprocess.run(as_postgres([
            f"{self.bin}/pg_ctl", "-D", self.data, "-l", os.path.join(WORK, "pg.log"), "-w",
            "start", "-o", f"-c port={self.port} -c listen_addresses=127.0.0.1 "
            f"-c unix_socket_directories={WORK} -c fsync=off"]),
            check=True, stdout=subprocess.DEVNULL)

    def kill(self):
        subprocess.run(as_postgres([f"{self.bin}/pg_ctl", "-D", self.data, "-m", "immediate",
                                    "stop"]), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def ready(self):
        return subprocess.run(["pg_isready", "-q", "-h", "127.0.0.1", "-p", str(self.port)]).returncode == 0


# --- the server's scripts -------------------------------------------------------------------------

def write(path, text):
    with open(path, "w") as f:
        f.write(text)


class ConfigMap:
    """`swap.rhai -> ..data/swap.rhai`, `..data -> ..GEN`, updated as kubelet does."""

    def __init__(self, path):
        self.dir, self.gen = path, 0
        os.makedirs(path)

    def update(self, text):
        self.gen += 1
        gen = f"..2026_12_03_00_00_00.{self.gen}"
        os.mkdir(os.path.join(self.dir, gen))
        write(os.path.join(self.dir, gen, "swap.rhai"), text)
        tmp = os.path.join(self.dir, "..data_tmp")
        os.symlink(gen, tmp)
        os.rename(tmp, os.path.join(self.dir, "..data"))
        if not os.path.lexists(os.path.join(self.dir, "swap.rhai")):
            os.symlink("..data/swap.rhai", os.path.join(self.dir, "swap.rhai"))
        # The generation before the last: kubelet keeps only the current one.
        old = os.path.join(self.dir, f"..2026_12_03_00_00_00.{self.gen - 2}")
        if os.path.isdir(old):
            os.remove(os.path.join(old, "swap.rhai"))
            os.rmdir(old)


def good_script(gen):
    return f'check("gen-{gen}", cpu_count() >= 1);\n'


BROKEN_SCRIPT = "let broken = ;\n"


# --- requests -------------------------------------------------------------------------------------

latencies = {"lane": [], "burst": [], "chaos": [], "page": []}
counts = {"requests": 0, "200": 0, "503": 0, "other": 0}
ages = []
bursting = threading.Event()


def get(port, path, kind, json_=False):
    """One request on a new connection; (status, body or parsed JSON). Checks latency and secrets."""
    # As kubelet's prober sends them; JSON only where the test reads the answer's age.
    headers = {"User-Agent": "kube-probe/1.31", "Accept": "application/json" if json_ else "*/*"}
    started = time.monotonic()
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=DEADLINE + 10)
        conn.request("GET", path, headers=headers)
        reply = conn.getresponse()
        body = reply.read().decode("utf-8", "replace")
        conn.close()
    except OSError as e:
        fail(f"{kind} GET {path}: unanswered: {e}")
        return None, None
    took = time.monotonic() - started
    with lock:
        latencies[kind].append(took)
        counts["requests"] += 1
        key = str(reply.status) if reply.status in (200, 503) else "other"
        counts[key] += 1
    if took > SLOW:
        fail(f"{kind} GET {path}: {took * 1e3:.0f} ms, over the deadline + 100 ms")
    for secret in SECRETS:
        if secret in body:
            fail(f"{kind} GET {path}: a password in the answer")
    if json_:
        try:
            return reply.status, json.loads(body)
        except ValueError:
            fail(f"{kind} GET {path}: not JSON: {body[:200]}")
            return reply.status, None
    return reply.status, body


def lane(port, probe, steady):
    while not stop.wait(rng.uniform(1, 10)):
        status, doc = get(port, f"/probe/{probe}", "lane", json_=True)
        if doc is None:
            continue
        age = doc.get("age_ms", 0) / 1e3
        with lock:
            ages.append(age)
        # An answer is served while younger than --cache; the age is taken just after, in ms.
        if age > CACHE + 0.005:
            fail(f"/probe/{probe}: an answer {age:.3f} s old (--cache {CACHE} s)")
        if steady and status != 200:
            fail(f"steady probe {probe}: {status} {doc.get('reason')}")


def pages(port):
    while not stop.wait(rng.uniform(2, 6)):
        status, _ = get(port, "/", "page", json_=True)
        if status != 200:
            fail(f"GET / -> {status}")
        conn_status, body = get(port, "/explain/pg", "page")
        if conn_status != 200:
            fail(f"GET /explain/pg -> {conn_status}")


def bursts(port, probes):
    while not stop.wait(BURST_EVERY if time.monotonic() - T0 > 10 else 5):
        bursting.set()
        barrier = threading.Barrier(BURST)

        def one():
            try:
                barrier.wait(timeout=10)
            except threading.BrokenBarrierError:
                pass
            get(port, f"/probe/{rng.choice(probes)}", "burst")

        threads = [threading.Thread(target=one) for _ in range(BURST)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        log(f"burst of {BURST} answered")
        time.sleep(1)  # the connections' descriptors close on the server's side
        bursting.clear()


# --- chaos ----------------------------------------------------------------------------------------

outages = []   # (peer, seconds to 503, seconds to 200 after it accepted again)
first_round = [None]  # when every kind of chaos event had happened once
reloads = []   # (kind, seconds)


def until(limit, poll):
    """Poll every 100 ms for at most `limit` s; seconds taken, or None."""
    started = time.monotonic()
    while time.monotonic() - started <= limit:
        if poll():
            return time.monotonic() - started
        time.sleep(0.1)
    return None


def status_of(port, probe):
    status, _ = get(port, f"/probe/{probe}", "chaos")
    return status


def every_within(port, probes, want, what):
    """Each probe answers `want` within OUTAGE_BOUND (else a failure naming `what`); the longest
    it took."""
    longest = 0.0
    for probe in probes:
        took = until(OUTAGE_BOUND, lambda: status_of(port, probe) == want)
        if took is None:
            fail(f"{what}: /probe/{probe} not {want} within {OUTAGE_BOUND} s")
        longest = max(longest, took or 0.0)
    return longest


def outage(port, peer, probes):
    # Healthy first, or the 503 below would prove nothing.
    every_within(port, probes, 200, f"before {peer.name} is killed")
    peer.kill()
    log(f"killed {peer.name}")
    seen = every_within(port, probes, 503, f"{peer.name} killed")
    time.sleep(rng.uniform(1, 4))
    peer.start()
    until(30, peer.ready)
    log(f"restarted {peer.name}")
    back = every_within(port, probes, 200, f"{peer.name} back")
    outages.append((peer.name, seen, back))


def swap_good(port, cm):
    cm.update(good_script(cm.gen + 1))
    want = f"gen-{cm.gen}"
    took = until(2.0, lambda: served_check(port) == want)
    if took is None:
        fail(f"..data swapped to {want}: not answering with it within 2 s (answers {served_check(port)})")
    reloads.append(("good", took if took is not None else float("nan")))
    log(f"swapped in {want} ({took})")


def served_check(port):
    status, doc = get(port, "/probe/swap", "chaos", json_=True)
    if not doc or not doc.get("checks"):
        return None
    return doc["checks"][0]["name"]


def swap_broken(port, cm):
    before = served_check(port)
    cm.update(BROKEN_SCRIPT)

    def noted():
        status, doc = get(port, "/", "chaos", json_=True)
        swap = [p for p in (doc or {}).get("probes", []) if p["probe"] == "swap"]
        return bool(swap and swap[0]["reload_problem"])

    took = until(2.0, noted)
    if took is None:
        fail("..data swapped to a broken script: the status page does not say so within 2 s")
    time.sleep(0.5)
    after = served_check(port)
    if after != before:
        fail(f"a broken script swapped in: answers {after}, not the last good {before}")
    if status_of(port, "swap") != 200:
        fail("a broken script swapped in: the last good version no longer answers 200")
    reloads.append(("broken", took if took is not None else float("nan")))
    log("swapped in a broken script (the last good one kept)")


def chaos(port, http_peer, pg, redis, cm):
    # Every kind of event once first, in a random order: the warm-up then covers each code path
    # they reach (a new path's first allocations are not growth).
    kinds = ["http", "pg", "redis", "good", "broken"]
    first = rng.sample(kinds, len(kinds))
    while not stop.wait(rng.uniform(1, 5)):
        if time.monotonic() - T0 > SECONDS - 15:
            return  # leave the end for the peers to be up and the server to be measured
        event = first.pop(0) if first else rng.choice(kinds)
        if event == "http":
            outage(port, http_peer, ["http", "tcp", "liveness"])
        elif event == "pg":
            outage(port, pg, ["pg"])
        elif event == "redis":
            outage(port, redis, ["redis"])
        elif event == "good":
            swap_good(port, cm)
        else:
            swap_broken(port, cm)
        if not first and first_round[0] is None:
            first_round[0] = time.monotonic() - T0
            log("every kind of event has happened once: the warm-up may end")


# --- the server -----------------------------------------------------------------------------------

samples = []  # (t, rss_kib, fds, threads, bursting)


def proc_numbers(pid):
    fields = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            fields[key] = value.split()
    return int(fields["VmRSS"][0]), len(os.listdir(f"/proc/{pid}/fd")), int(fields["Threads"][0])


def sampler(pid):
    while not stop.wait(SAMPLE):
        rss, fds, threads = proc_numbers(pid)
        samples.append((time.monotonic() - T0, rss, fds, threads, bursting.is_set()))


def main():
    global T0
    T0 = time.monotonic()
    http_peer = HttpPeer("the HTTP peer", free_port())
    http_peer.start()
    redis = RedisPeer("Redis", free_port())
    redis.start()
    pg = PgPeer(free_port())
    pg.start()
    grpc = subprocess.Popen([os.path.join(REPO, "target/grpc-venv/bin/python"),
                             os.path.join(REPO, "tests/peers/grpc_server.py")],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    grpc_port = int(grpc.stdout.readline())

    scripts = os.path.join(WORK, "scripts")
    os.makedirs(scripts)
    health = f"http://127.0.0.1:{http_peer.port}/health"
    probes = {
        "http": f'http_get("{health}").status == 200\n',
        "tcp": f'tcp_open("127.0.0.1", {http_peer.port})\n',
        "pg": f'sql_ping("postgres://soak:{PG_PASSWORD}@127.0.0.1:{pg.port}/postgres")\n',
        "mysql": 'sql_ping("mysql://root@127.0.0.1:3306/test")\n',
        "redis": f'redis_ping("redis://:{REDIS_PASSWORD}@127.0.0.1:{redis.port}")\n',
        "grpc": f'grpc_health("127.0.0.1:{grpc_port}")\n',
        # In memory per probe: a counter across evaluations, a Redis check inside a long grace
        # (so Redis's outages never fail it), and the history it keeps.
        "state": (
            'let runs = recall("runs", 0) + 1;\nremember("runs", runs);\n'
            f'check("cache", || redis_ping("redis://:{REDIS_PASSWORD}@127.0.0.1:{redis.port}"), #{{ grace: "1h" }});\n'
            'check("history", history().len() <= 20 && runs >= 1);\n'
        ),
        "local": 'check("cpus", cpu_count() >= 1);\ncheck("proc", file_exists("/proc/self/status"));\n',
    }
    args = [BIN, "serve", "--listen", "127.0.0.1:0", "--cache", f"{CACHE}s",
            "--timeout", f"{DEADLINE}s", "--var", f"url={health}", "--var", "max_load_pct=1000000.0"]
    for name, text in probes.items():
        write(os.path.join(scripts, f"{name}.rhai"), text)
        args += ["--probe", f"{name}={os.path.join(scripts, name + '.rhai')}"]
    # The article's check, unchanged (its load limit lifted by --var: the soak loads the machine).
    args += ["--probe", f"liveness={os.path.join(REPO, 'scripts/liveness.rhai')}"]
    cm = ConfigMap(os.path.join(WORK, "configmap"))
    cm.update(good_script(1))
    args += ["--dir", cm.dir]

    log_path = os.path.join(WORK, "serve.log")
    server = subprocess.Popen(args, stderr=open(log_path, "w"), stdout=subprocess.DEVNULL)
    port = None
    started = time.monotonic()
    while port is None and time.monotonic() - started < 10:
        with open(log_path) as f:
            for line in f:
                if "listening on http://127.0.0.1:" in line:
                    port = int(line.split("listening on http://127.0.0.1:")[1].split()[0])
        time.sleep(0.05)
    if port is None:
        raise SystemExit("soak: serve did not start:\n" + open(log_path).read())
    names = list(probes) + ["liveness", "swap"]
    log(f"serve on {port} with {len(names)} probes; {SECONDS:.0f} s, warm-up {WARMUP:.0f} s")

    threads = [threading.Thread(target=sampler, args=(server.pid,), daemon=True)]
    for name in names:
        for _ in range(3):
            threads.append(threading.Thread(target=lane, args=(port, name, name in STEADY), daemon=True))
    threads.append(threading.Thread(target=pages, args=(port,), daemon=True))
    threads.append(threading.Thread(target=bursts, args=(port, names), daemon=True))
    threads.append(threading.Thread(target=chaos, args=(port, http_peer, pg, redis, cm), daemon=True))
    for t in threads:
        t.start()
    time.sleep(SECONDS)
    stop.set()
    for t in threads:
        t.join(timeout=DEADLINE + 15)

    # Every peer up: every probe healthy again.
    for name in names:
        if status_of(port, name) != 200:
            fail(f"at the end, with every peer up: /probe/{name} is not 200")

    server.send_signal(signal.SIGTERM)
    started = time.monotonic()
    try:
        rc = server.wait(timeout=10)
    except subprocess.TimeoutExpired:
        server.kill()
        rc = "killed"
    took = time.monotonic() - started
    if rc != 0 or took > 2.0:
        fail(f"SIGTERM: exit {rc} after {took:.2f} s (want 0 within 2 s)")

    grpc.stdin.close()
    grpc.wait(timeout=5)
    http_peer.kill()
    redis.kill()
    pg.kill()
    with open(log_path) as f:
        server_log = f.read()
    if "panicked" in server_log:
        fail("a panic in the server's log")
    for secret in SECRETS:
        if secret in server_log:
            fail("a password in the server's log")

    # Flat after warm-up (its time, and every kind of chaos event once): RSS and threads over
    # every sample, fds over those between bursts.
    if first_round[0] is None:
        fail("the chaos loop did not get through every kind of event once")
    warm = max(WARMUP, first_round[0] or WARMUP)
    after = [s for s in samples if s[0] >= warm]
    if len(after) < 5:
        fail(f"only {len(after)} samples after warm-up")
        after = samples
    # RSS and descriptors between bursts: during one, musl's heap holds 200 connections' buffers
    # for a moment (a sample caught +1.2 MiB once, gone the next second).
    calm = [s for s in after if not s[4]] or after
    rss_growth = max(s[1] for s in calm) - calm[0][1]
    third_of = max(1, len(calm) // 3)
    rss_trend = max(s[1] for s in calm[-third_of:]) - max(s[1] for s in calm[:third_of])
    # Descriptors: the requests and evaluations in flight come and go (a sample can catch a few),
    # so what must stay flat is the floor: a leaked descriptor is never closed and lifts it.
    third = max(1, len(calm) // 3)
    fd_growth = min(s[2] for s in calm[-third:]) - min(s[2] for s in calm[:third]) if calm else 0
    thread_growth = max(s[3] for s in after) - after[0][3]
    if rss_growth >= RSS_BOUND_KIB:
        fail(f"RSS grew {rss_growth} KiB after warm-up (the bound: {RSS_BOUND_KIB} KiB)")
    if rss_trend >= RSS_TREND_KIB:
        fail(f"RSS is still growing: its last third's peak is {rss_trend} KiB above its first"
             f" third's (the bound: {RSS_TREND_KIB} KiB)")
    if fd_growth >= 5:
        fail(f"open fds grew by {fd_growth} after warm-up")
    if thread_growth > 0:
        fail(f"threads grew by {thread_growth} after warm-up")

    with open(os.path.join(WORK, "samples.csv"), "w") as f:
        f.write("t_s,rss_kib,fds,threads,burst\n")
        for s in samples:
            f.write(f"{s[0]:.1f},{s[1]},{s[2]},{s[3]},{int(s[4])}\n")

    def pct(xs, p):
        xs = sorted(xs)
        return xs[min(len(xs) - 1, int(len(xs) * p))] * 1e3 if xs else 0.0

    out = [f"Soak: {SECONDS:.0f} s ({warm:.0f} s warm-up), {len(names)} probes, cache {CACHE:.0f} s, "
           f"deadline {DEADLINE:.0f} s, bursts of {BURST} every {BURST_EVERY:.0f} s", ""]
    out.append("| | value |")
    out.append("|---|---:|")
    out.append(f"| requests | {counts['requests']} ({counts['200']} × 200, {counts['503']} × 503, {counts['other']} other) |")
    for kind in ["lane", "burst", "chaos", "page"]:
        xs = latencies[kind]
        out.append(f"| {kind} requests: p50 / p99 / max | {pct(xs, .5):.1f} / {pct(xs, .99):.1f} / "
                   f"{(max(xs) * 1e3 if xs else 0):.1f} ms ({len(xs)}) |")
    out.append(f"| oldest answer served (--cache {CACHE:.0f} s) | {max(ages, default=0) * 1e3:.0f} ms |")
    for peer in sorted({o[0] for o in outages}):
        mine = [o for o in outages if o[0] == peer]
        out.append(f"| {peer} killed {len(mine)}×: 503 seen after (max) / 200 after it accepted (max) | "
                   f"{max(o[1] for o in mine):.2f} / {max(o[2] for o in mine):.2f} s |")
    for kind in ["good", "broken"]:
        mine = [r[1] for r in reloads if r[0] == kind]
        if mine:
            what = "answering with it" if kind == "good" else "named on the status page"
            out.append(f"| {kind} script swapped in {len(mine)}×: {what} after (max) | {max(mine):.2f} s |")
    first, last = after[0], after[-1]
    out.append(f"| RSS between bursts after warm-up: first / max / last | {calm[0][1]} / {max(s[1] for s in calm)} / {calm[-1][1]} KiB (growth {rss_growth} KiB, trend {rss_trend} KiB; max during a burst {max(s[1] for s in after)}) |")
    out.append(f"| open fds between bursts: first / max / last (floor growth {fd_growth}) | {calm[0][2] if calm else '-'} / {max((s[2] for s in calm), default='-')} / {calm[-1][2] if calm else '-'} (max during a burst {max(s[2] for s in samples)}) |")
    out.append(f"| threads: first / max | {first[3]} / {max(s[3] for s in after)} |")
    out.append(f"| SIGTERM to exit | {took:.2f} s, exit {rc} |")
    out.append("")
    out.append("Result: " + ("passed" if not failures else f"FAILED ({len(failures)})"))
    for f_ in failures:
        out.append(f"- {f_}")
    summary = "\n".join(out) + "\n"
    with open(os.path.join(WORK, "summary.md"), "w") as f:
        f.write(summary)
    print(summary)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
