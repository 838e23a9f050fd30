#!/usr/bin/env bash
# Fuzz the parsers the project owns (fuzz/fuzz_targets: durations, --var, DSNs and their masking,
# the cases file), each for SECONDS (default 30). A finding stops the script with the input saved
# under fuzz/artifacts/TARGET/ and the command that replays it.
#   scripts/fuzz.sh [SECONDS] [--dev]
# --dev builds the targets without optimisation (cargo-fuzz --dev): half the build time of the
# default optimised build, for fewer executions per second; CI uses it for its short run.
#
# cargo-fuzz builds with -Zsanitizer=address, a nightly flag; RUSTC_BOOTSTRAP=1 lets the one
# stable toolchain here accept it. cargo-fuzz itself is installed once per machine, under
# ~/.cache/rhai-probe/tools (outside the checkout, so a fresh clone does not build it again).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-30}
mode=()
[ "${2:-}" = --dev ] && mode=(--dev)
version=0.13.2
tools=${XDG_CACHE_HOME:-$HOME/.cache}/rhai-probe/tools
if ! "$tools/bin/cargo-fuzz" --version 2>/dev/null | grep -q "$version"; then
    cargo install --quiet --locked --root "$tools" cargo-fuzz --version "$version"
fi
export RUSTC_BOOTSTRAP=1
cd fuzz
# Seeds: the shipped cases files, and a few values of each kind.
mkdir -p corpus/cases corpus/duration corpus/var corpus/dsn
cp ../scripts/*.cases.toml corpus/cases/
for d in 500ms 2s 1m 0.5 " 1.5s " 3600; do printf '%s' "$d" >"corpus/duration/seed-${d// /_}"; done
for v in url=http://127.0.0.1:8080/health max_load_pct=90 debug=true name=; do
    printf '%s' "$v" >"corpus/var/seed-${v%%=*}"
done
for target in $("$tools/bin/cargo-fuzz" list); do
    echo "fuzz: $target for ${seconds}s"
    "$tools/bin/cargo-fuzz" run "${mode[@]}" "$target" -- -max_total_time="$seconds" -print_final_stats=1 2>&1 |
        grep -E '^(stat::number_of_executed_units|stat::new_units_added)|panicked|SUMMARY|Test unit written|^thread' || true
    if [ -n "$(ls "artifacts/$target" 2>/dev/null)" ]; then
        echo "fuzz: $target found an input that fails; replay it with:" >&2
        echo "  cd fuzz && RUSTC_BOOTSTRAP=1 $tools/bin/cargo-fuzz run ${mode[*]} $target artifacts/$target/$(ls "artifacts/$target" | head -1)" >&2
        exit 1
    fi
done
echo "fuzz: ok, nothing found in ${seconds}s per target"
