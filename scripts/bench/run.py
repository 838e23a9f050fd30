#!/usr/bin/env python3
"""Interleaved benchmark runner for scripts/bench.sh; writes the Markdown report.

Each row compares commands. A round runs every command of the row once, in an order that rotates
from round to round, so that drift on a shared machine (another job, CPU frequency) hits every
command alike; hyperfine runs one command's runs and then the next's, which biases ratios when
the machine drifts. For every run: wall time from spawn to exit, the child's user+sys CPU and
peak RSS (from wait4's rusage). Medians are reported.

Input: a JSON file written by bench.sh (rows, callgrind counts, sizes, versions, targets).
"""

import json
import os
import statistics
import sys
import time


def run_once(argv, env):
    devnull = os.open(os.devnull, os.O_RDWR)
    start = time.perf_counter_ns()
    pid = os.posix_spawn(
        argv[0], argv, env, file_actions=[(os.POSIX_SPAWN_DUP2, devnull, 0),
                                          (os.POSIX_SPAWN_DUP2, devnull, 1),
                                          (os.POSIX_SPAWN_DUP2, devnull, 2)]
    )
    _, status, usage = os.wait4(pid, 0)
    wall = (time.perf_counter_ns() - start) / 1e6
    os.close(devnull)
    code = os.waitstatus_to_exitcode(status)
    return wall, (usage.ru_utime + usage.ru_stime) * 1e3, usage.ru_maxrss, code


def peak_rss_kib(argv, env, tries):
    """Peak RSS through /usr/bin/time: a child of this Python process would report at least
    Python's own RSS (Linux carries the parent's high-water mark across exec), a child of `time`
    only time's."""
    import tempfile
    peak = 0
    with tempfile.NamedTemporaryFile("r") as f:
        for _ in range(tries):
            run_once(["/usr/bin/time", "-f", "%M", "-o", f.name] + argv, env)
            f.seek(0)
            peak = max(peak, int(f.read().strip().splitlines()[-1]))
    return peak


def measure(row, runs, warmup):
    cmds = row["commands"]
    results = {c["key"]: {"wall": [], "cpu": [], "rss": [], "codes": set()} for c in cmds}
    for i in range(warmup + runs):
        order = cmds[i % len(cmds):] + cmds[:i % len(cmds)]
        for c in order:
            env = dict(os.environ, **c.get("env", {}))
            wall, cpu, rss, code = run_once(c["argv"], env)
            r = results[c["key"]]
            r["codes"].add(code)
            if i >= warmup:
                r["wall"].append(wall)
                r["cpu"].append(cpu)
    for c in cmds:
        bad = results[c["key"]]["codes"] - set(c.get("ok_codes", [0]))
        if bad:
            sys.exit(f"bench: {c['label']!r} exited {sorted(bad)}; it must not be measured failing")
        env = dict(os.environ, **c.get("env", {}))
        results[c["key"]]["rss"] = [peak_rss_kib(c["argv"], env, min(runs, 20))]
    return {
        key: {
            "wall": statistics.median(r["wall"]),
            "cpu": statistics.median(r["cpu"]),
            "rss": max(r["rss"]) / 1024,
        }
        for key, r in results.items()
    }


def fmt_ms(v):
    return f"{v:.2f}" if v < 10 else f"{v:.1f}"


def main():
    spec = json.load(open(sys.argv[1]))
    out_path = sys.argv[2]
    runs, warmup = spec["runs"], spec["warmup"]
    lines = []
    w = lines.append
    w("# Benchmarks\n")
    w(spec["intro"] + "\n")
    w("## Machine and versions\n")
    for k, v in spec["versions"].items():
        w(f"- {k}: {v}")
    w("")
    w(f"## Wall time, CPU and memory\n")
    w(f"Medians of {runs} interleaved runs per command (after {warmup} warm-up rounds); CPU is "
      "user+sys of the process (from wait4), peak RSS the largest of up to 20 further runs under "
      "`/usr/bin/time`. Ratios are against the row's other commands, measured in the same rounds.\n")
    w("| probe | command | wall ms | CPU ms | peak RSS MiB | wall ratio | CPU ratio |")
    w("|---|---|---:|---:|---:|---:|---:|")
    measured = {}
    for row in spec["rows"]:
        res = measure(row, runs, warmup)
        measured[row["id"]] = res
        ours = res[row["commands"][0]["key"]]
        for i, c in enumerate(row["commands"]):
            r = res[c["key"]]
            if i == 0:
                ratio_w = ratio_c = ""
            else:
                ratio_w = f"{ours['wall'] / r['wall']:.2f}"
                ratio_c = f"{ours['cpu'] / r['cpu']:.3f}" if r["cpu"] > 0 else "-"
            w(f"| {row['name'] if i == 0 else ''} | `{c['label']}` | {fmt_ms(r['wall'])} | "
              f"{fmt_ms(r['cpu'])} | {r['rss']:.1f} | {ratio_w} | {ratio_c} |")
    w("")
    w("The first command of each probe is rhai-probe's; each ratio is its figure divided by that "
      "command's (0.25: a quarter of its time).\n")
    w("## Instructions (callgrind)\n")
    w("Counted by `valgrind --tool=callgrind` for the whole process: the same on every run of the "
      "same binary and inputs, whatever else the machine does, so these catch regressions that "
      "wall time hides.\n")
    w("| script | instructions |")
    w("|---|---:|")
    for name, count in spec["callgrind"].items():
        w(f"| {name} | {count:,} |")
    w("")
    w(f"Static binary: {spec['binary_size']:,} bytes.\n")
    w("## Cold start (cachegrind)\n")
    w("The distinct 64-byte lines of code and data a run touches, counted as the misses of "
      "`valgrind --tool=cachegrind --cache-sim=yes` in a simulated 32 MiB last-level cache (which "
      "starts empty and is larger than any of these runs). In a pod a probe runs after the application has had the "
      "CPU, so these are fetched from memory on every run; the wall times above, measured back to "
      "back, hide most of that cost.\n")
    w("| probe | command | lines | KiB |")
    w("|---|---|---:|---:|")
    for name, label, lines_ in spec["footprint"]:
        w(f"| {name} | {label} | {lines_:,} | {lines_ * 64 // 1024:,} |")
    w("")
    w("## Targets\n")
    w("| target | measured | |")
    w("|---|---|---|")
    for t in spec["targets"]:
        value = eval(t["expr"], {}, {"m": measured, "cg": spec["callgrind"],
                                     "size": spec["binary_size"]})
        ok = value >= t["limit"] if t.get("at_least") else value <= t["limit"]
        w(f"| {t['name']} {'≥' if t.get('at_least') else '≤'} {t['limit_text']} | "
          f"{t['fmt'].format(value)} | "
          f"{'met' if ok else '**missed**'} |")
    w("")
    if spec.get("notes"):
        w("## Notes\n")
        w(spec["notes"])
    text = "\n".join(lines) + "\n"
    open(out_path, "w").write(text)
    print(text)


if __name__ == "__main__":
    main()
