# The rhai-probe image: one static binary at /usr/local/bin/rhai-probe and the example scripts
# under /usr/share/rhai-probe/scripts, on scratch, running as 65532. No shell, no libc: use it
#   - as an init container (`rhai-probe install /opt/rhai-probe` fills an emptyDir), or
#   - as a build stage of an app image: COPY --from=<this image> /usr/local/bin/rhai-probe /usr/local/bin/
# Two ways to the same layout (the last stage, written once):
#   docker build --build-arg RHAI_PROBE_COMMIT=$(git rev-parse --short=12 HEAD) -t rhai-probe .
#     compiles in a Rust image with scripts/build-static.sh, the same script CI runs;
#   scripts/image.sh (BuildKit, --build-arg SOURCE=prebuilt) takes the static binary that
#     scripts/build-static.sh made here, for a machine that can pull no image (docs/docker.md).
ARG SOURCE=build

FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
ARG RHAI_PROBE_COMMIT=unknown
ENV RHAI_PROBE_COMMIT=${RHAI_PROBE_COMMIT}
RUN scripts/build-static.sh \
 && mkdir -p /out/scripts \
 && cp target/x86_64-unknown-linux-musl/release/rhai-probe /out/ \
 && cp scripts/*.rhai /out/scripts/

FROM scratch AS prebuilt
COPY target/x86_64-unknown-linux-musl/release/rhai-probe /out/rhai-probe
COPY scripts/*.rhai /out/scripts/

FROM ${SOURCE} AS binary

FROM scratch
COPY --from=binary /out/rhai-probe /usr/local/bin/rhai-probe
COPY --from=binary /out/scripts/ /usr/share/rhai-probe/scripts/
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/rhai-probe"]
CMD ["--help"]
