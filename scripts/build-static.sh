#!/usr/bin/env bash
# Build the fully static release binary that ships (the Dockerfile runs this same script):
#   scripts/build-static.sh            -> target/x86_64-unknown-linux-musl/release/rhai-probe
#   scripts/build-static.sh --profiling -> the same code, with symbols and in the default function
#                                          order, under target/link-order/ (for scripts/link-order.sh)
# Installs what it needs when missing (the musl target, Debian's musl-tools for ring's C code,
# file), then checks that the result is static, within the size budget, and runs a probe.
#
# The binary is a static non-PIE executable: a static-pie relocates itself at every start (16,000
# relocations here, a quarter of a `true` probe's instructions, and 0.4 MB of tables). The price
# is no address randomization of the executable's own image (heap, stack and mappings still
# are randomized). PIE=1 builds a static-pie instead.
set -euo pipefail
cd "$(dirname "$0")/.."

target=x86_64-unknown-linux-musl
max_bytes=6000000
log() { echo "build-static: $*" >&2; }

if ! rustup target list --installed | grep -qx "$target"; then
  log "adding the $target target"
  rustup target add "$target"
fi
missing=()
command -v musl-gcc >/dev/null 2>&1 || missing+=(musl-tools)
command -v file >/dev/null 2>&1 || missing+=(file)
if ((${#missing[@]})); then
  log "installing ${missing[*]}"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if [ "${PIE:-0}" = 1 ]; then
  rustflags=""
else
  rustflags="-C relocation-model=static"
fi

# Function order. The functions a probe run executes (scripts/link-order.txt, written by
# scripts/link-order.sh) are placed next to each other: the kernel maps 64 KiB of the file around
# every page a process touches, so with a run's code spread over the whole text a run maps nearly
# all of it. Measured on the article check: peak RSS 4.0 -> 2.3 MiB, wall 1.8 -> 1.6 ms. The
# linker is the lld that ships with the Rust toolchain (its gcc-ld/ld.lld); where that is
# missing, the default linker without the ordering (the same program, only a larger footprint).
out_dir=target
if [ "${1:-}" = --profiling ]; then
  # Symbols kept by a flag rather than the profile: cargo hashes the profile into every symbol
  # name, so a different `strip` setting would give the functions other names than the ordering
  # is later applied to.
  rustflags="$rustflags -C strip=none"
  out_dir=target/link-order
else
  gcc_ld="$(rustc --print sysroot)/lib/rustlib/$(rustc -vV | sed -n 's/^host: //p')/bin/gcc-ld"
  if [ -x "$gcc_ld/ld.lld" ] && [ -s scripts/link-order.txt ]; then
    rustflags="$rustflags -C link-arg=-fuse-ld=lld -C link-arg=-B$gcc_ld \
      -C link-arg=-Wl,--symbol-ordering-file=$PWD/scripts/link-order.txt \
      -C link-arg=-Wl,--no-warn-symbol-ordering"
  else
    log "no $gcc_ld/ld.lld or scripts/link-order.txt: linking without the function order"
  fi
fi
CC_x86_64_unknown_linux_musl=musl-gcc CARGO_TARGET_X86_64_UNKNOWN_LINUX_MUSL_RUSTFLAGS="$rustflags" \
  cargo build --release --locked --target "$target" --target-dir "$out_dir"
bin=$out_dir/$target/release/rhai-probe

# Static: no interpreter, no shared libraries.
if ! file "$bin" | grep -Eq 'statically linked|static-pie linked'; then
  log "not static: $(file "$bin")"; exit 1
fi
if ldd "$bin" >/dev/null 2>&1 && ! ldd "$bin" 2>&1 | grep -q 'statically linked'; then
  log "ldd finds dynamic dependencies:"; ldd "$bin" >&2; exit 1
fi
size=$(stat -c %s "$bin")
if [ "$out_dir" = target ] && ((size > max_bytes)); then
  log "$bin is $size bytes, over the budget of $max_bytes"; exit 1
fi
"$bin" --version
"$bin" run scripts/node.rhai
log "ok: $bin, $size bytes, static"
