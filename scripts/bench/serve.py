"""Serve mode's costs, appended to the benchmark report by scripts/bench.sh:

    serve.py BIN WORK QUICK   (WORK holds article.rhai and true.rhai; QUICK is 1 for the CI mode)

- a cached probe under wrk on loopback: requests per second, p50/p99 latency;
- CPU per answer, from the server's own utime+stime: answers from the cache, and answers that each
  run an evaluation (--cache 0), one new connection per request as kubelet's prober makes them,
  against the CPU of one exec-mode `rhai-probe run` of the same script, measured in this session;
- memory: RSS when idle, and after 10,000 and 100,000 requests (growth would be a leak).
Prints a markdown section on stdout.
"""

import http.client
import os
import re
import resource
import socket
import subprocess
import sys
import time

BIN, WORK, QUICK = sys.argv[1], sys.argv[2], sys.argv[3] == "1"
TICK = os.sysconf("SC_CLK_TCK")
SCRIPT = os.path.join(WORK, "article.rhai")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, *args, script=SCRIPT):
        self.port = free_port()
        self.log = open(os.path.join(WORK, f"serve-{self.port}.log"), "w+")
        self.proc = subprocess.Popen(
            [BIN, "serve", "--listen", f"127.0.0.1:{self.port}", "--probe", f"article={script}", *args],
            stdout=subprocess.DEVNULL, stderr=self.log)
        for _ in range(100):
            if "listening on" in open(self.log.name).read():
                return
            time.sleep(0.05)
        sys.exit(f"bench: serve did not start: {open(self.log.name).read()}")

    def rss_mib(self):
        for line in open(f"/proc/{self.proc.pid}/status"):
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def cpu_s(self):
        fields = open(f"/proc/{self.proc.pid}/stat").read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICK

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=10)


# What kubelet's HTTP prober sends (kubernetes pkg/probe/http): a new connection for every probe
# (its transport has DisableKeepAlives, so Go's client asks for `Connection: close`), its
# User-Agent and `Accept: */*`.
KUBELET = {"Connection": "close", "User-Agent": "kube-probe/1.34", "Accept": "*/*"}


def get(port):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", "/probe/article", headers=KUBELET)
    status = conn.getresponse()
    status.read()
    conn.close()
    return status.status


def wrk(port, seconds):
    out = subprocess.run(
        ["wrk", "-t1", "-c10", f"-d{seconds}s", "--latency", f"http://127.0.0.1:{port}/probe/article"],
        capture_output=True, text=True, check=True).stdout

    def find(pattern, cast=float, default=0):
        m = re.search(pattern, out)
        return cast(m.group(1)) if m else default

    def ms(text):
        value, unit = re.match(r"([\d.]+)(us|ms|s)", text).groups()
        return float(value) * {"us": 1e-3, "ms": 1, "s": 1e3}[unit]

    return {
        "requests": find(r"(\d+) requests in", int),
        "rps": find(r"Requests/sec:\s+([\d.]+)"),
        "p50": ms(find(r"\s50%\s+(\S+)", str, "0us")),
        "p99": ms(find(r"\s99%\s+(\S+)", str, "0us")),
        "non2xx": find(r"Non-2xx or 3xx responses: (\d+)", int),
    }


def exec_cpu_ms(script, runs):
    """CPU of one exec-mode `rhai-probe run SCRIPT` process, over sequential runs."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    for _ in range(runs):
        subprocess.run([BIN, "run", "--timeout", "5s", script], stdout=subprocess.DEVNULL)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ((after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)) / runs * 1e3


def per_answer(script, cache, n):
    """The server's CPU (ms) per answer over n requests, each on a new connection (as kubelet's
    prober makes them), and how many were 200."""
    server = Server("--cache", cache, script=script)
    get(server.port)
    cpu0 = server.cpu_s()
    statuses = [get(server.port) for _ in range(n)]
    cpu = (server.cpu_s() - cpu0) / n * 1e3
    server.stop()
    return cpu, statuses.count(200)


def main():
    w = print
    true_script = os.path.join(WORK, "true.rhai")
    runs = 20 if QUICK else 300
    n = 200 if QUICK else 3000
    exec_article, exec_true = exec_cpu_ms(SCRIPT, runs), exec_cpu_ms(true_script, runs)
    eval_article, ok_article = per_answer(SCRIPT, "0", n)
    eval_true, _ = per_answer(true_script, "0", n)
    # Tens of microseconds each, counted in 10 ms ticks: more requests for the same precision.
    cached_new, _ = per_answer(SCRIPT, "60m", n * 4)

    # A cached probe under wrk (keep-alive connections), then memory over 100,000 requests.
    server = Server()
    idle = server.rss_mib()
    get(server.port)
    idle_warm = server.rss_mib()
    cpu0 = server.cpu_s()
    load = wrk(server.port, 2 if QUICK else 10)
    cached_keepalive_us = (server.cpu_s() - cpu0) / max(load["requests"], 1) * 1e6
    total = load["requests"]
    goal = 10_000 if QUICK else 100_000
    rss_10k = server.rss_mib() if total >= 10_000 else None
    while total < goal:
        total += wrk(server.port, 2)["requests"]
        if rss_10k is None and total >= 10_000:
            rss_10k = server.rss_mib()
    rss_end = server.rss_mib()
    server.stop()

    ratio = lambda ours, base: f"1/{base / ours:.0f}" if ours > 0 else "-"
    w("## Serve mode\n")
    w("`rhai-probe serve` on loopback, answering `/probe/article` (the article check above, nginx "
      "as its peer) or a `true` script. CPU is the server's own user+sys time from /proc, divided by "
      "the answers it gave, each on a new connection with the headers kubelet's prober sends "
      "(`Connection: close`, `User-Agent: kube-probe/…`, `Accept: */*`); the exec-mode "
      f"figures are the CPU of one `rhai-probe run` process of the same script, over {runs} "
      "sequential runs in this session. An exec probe in a pod also costs the container runtime's "
      "exec (not counted here), so these ratios understate the difference.\n")
    w("| measure | CPU per answer | vs one exec run |")
    w("|---|---:|---:|")
    w(f"| exec mode: `rhai-probe run article.rhai` | {exec_article:.3f} ms | |")
    w(f"| exec mode: `rhai-probe run true.rhai` | {exec_true:.3f} ms | |")
    w(f"| serve, article check evaluated per request (`--cache 0`; {ok_article} of {n} were 200) | {eval_article:.3f} ms | {ratio(eval_article, exec_article)} |")
    w(f"| serve, `true` evaluated per request (`--cache 0`) | {eval_true:.3f} ms | {ratio(eval_true, exec_true)} |")
    w(f"| serve, article check from the cache, new connection each | {cached_new:.3f} ms | {ratio(cached_new, exec_article)} |")
    w(f"| serve, article check from the cache, keep-alive (wrk) | {cached_keepalive_us / 1e3:.4f} ms | {ratio(cached_keepalive_us / 1e3, exec_article)} |")
    w("")
    w("| measure | value |")
    w("|---|---:|")
    w(f"| cached probe under `wrk -t1 -c10` (keep-alive) | {load['rps']:,.0f} requests/s |")
    w(f"| latency p50 / p99 under that load | {load['p50']:.2f} ms / {load['p99']:.2f} ms |")
    w(f"| non-2xx answers under wrk (the article check fails when load > 90% of the CPUs) | {load['non2xx']:,} of {load['requests']:,} |")
    w(f"| RSS idle (no request yet) / after the first | {idle:.1f} MiB / {idle_warm:.1f} MiB |")
    w(f"| RSS after 10,000 / {total:,} requests | {rss_10k or float('nan'):.1f} MiB / {rss_end:.1f} MiB |")
    w("")
    growth = rss_end - (rss_10k or rss_end)
    targets = [
        ("serve: CPU per answer from the cache vs an exec run ≤ 1/20", ratio(cached_new, exec_article), cached_new <= exec_article / 20),
        ("serve: CPU per answer that evaluates vs an exec run ≤ 1/20", ratio(eval_article, exec_article), eval_article <= exec_article / 20),
        ("serve: idle RSS ≤ 8 MiB", f"{idle_warm:.1f} MiB", idle_warm <= 8),
        (f"serve: RSS growth from 10,000 to {total:,} requests ≤ 0.5 MiB", f"{growth:+.2f} MiB", growth <= 0.5),
    ]
    w("| target | measured | |")
    w("|---|---|---|")
    for name, value, ok in targets:
        w(f"| {name} | {value} | {'met' if ok else '**missed**'} |")
    w("")


if __name__ == "__main__":
    main()
