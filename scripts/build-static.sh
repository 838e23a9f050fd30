#!/usr/bin/env bash
# Build the fully static release binary that ships (the Dockerfile runs this same script):
#   scripts/build-static.sh            -> target/x86_64-unknown-linux-musl/release/rhai-probe
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
CC_x86_64_unknown_linux_musl=musl-gcc CARGO_TARGET_X86_64_UNKNOWN_LINUX_MUSL_RUSTFLAGS="$rustflags" \
  cargo build --release --locked --target "$target"
bin=target/$target/release/rhai-probe

# Static: no interpreter, no shared libraries.
if ! file "$bin" | grep -Eq 'statically linked|static-pie linked'; then
  log "not static: $(file "$bin")"; exit 1
fi
if ldd "$bin" >/dev/null 2>&1 && ! ldd "$bin" 2>&1 | grep -q 'statically linked'; then
  log "ldd finds dynamic dependencies:"; ldd "$bin" >&2; exit 1
fi
size=$(stat -c %s "$bin")
if ((size > max_bytes)); then
  log "$bin is $size bytes, over the budget of $max_bytes"; exit 1
fi
"$bin" --version
"$bin" run scripts/node.rhai
log "ok: $bin, $size bytes, static"
