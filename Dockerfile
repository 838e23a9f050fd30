# The rhai-probe image: one static binary at /usr/local/bin/rhai-probe and the example scripts
# under /usr/share/rhai-probe/scripts, on scratch, running as 65532. No shell, no libc: use it
#   - as an init container (`rhai-probe install /opt/rhai-probe` fills an emptyDir), or
#   - as a build stage of an app image: COPY --from=<this image> /usr/local/bin/rhai-probe /usr/local/bin/
# The build runs scripts/build-static.sh, the same script CI runs, so what CI checks is what ships.
#   docker build --build-arg RHAI_PROBE_COMMIT=$(git rev-parse --short=12 HEAD) -t rhai-probe .

FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
ARG RHAI_PROBE_COMMIT=unknown
ENV RHAI_PROBE_COMMIT=${RHAI_PROBE_COMMIT}
RUN scripts/build-static.sh

FROM scratch
COPY --from=build /src/target/x86_64-unknown-linux-musl/release/rhai-probe /usr/local/bin/rhai-probe
COPY --from=build /src/scripts/*.rhai /usr/share/rhai-probe/scripts/
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/rhai-probe"]
CMD ["--help"]
