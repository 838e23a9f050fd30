#!/usr/bin/env bash
# Build the shipping image here, from the static binary scripts/build-static.sh makes (built
# first; cargo skips it when nothing changed), with the Dockerfile's `prebuilt` source: the same
# last stage, so the same layout, as a build that compiles in the Rust image. No image is pulled.
#   scripts/image.sh [TAG]     (default rhai-probe:local; needs a Docker engine: scripts/docker.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
# Debian's client (docker.io) builds with the daemon's own BuildKit; another client on PATH (a
# newer one in /usr/local/bin, say) may want a buildx plugin this machine does not have.
docker() { if [ -x /usr/bin/docker ]; then /usr/bin/docker "$@"; else command docker "$@"; fi; }
tag=${1:-rhai-probe:local}
scripts/build-static.sh >/dev/null
DOCKER_BUILDKIT=1 docker build -q --build-arg SOURCE=prebuilt \
  --build-arg RHAI_PROBE_COMMIT="$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)" \
  -t "$tag" . >/dev/null
echo "image: $tag, $(docker image inspect --format '{{.Size}}' "$tag") bytes" >&2
