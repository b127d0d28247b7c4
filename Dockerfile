# syntax=docker/dockerfile:1
# meshwork: multi-stage build -> minimal, non-root runtime image with only the binaries
# (meshwork, meshwork-control) and CA roots (distroless "cc" carries glibc, ca-certificates and a nonroot user).

FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin meshwork --bin meshwork-control \
 && strip target/release/meshwork target/release/meshwork-control

# The init container's image (`docker build --target init`): `meshwork init` programs
# the pod's interception with `nft`, and with `ip` in TPROXY mode, which the distroless
# runtime image does not carry. It runs as root with NET_ADMIN, once, before the pod's
# other containers.
FROM debian:bookworm-slim AS init
RUN apt-get update \
 && apt-get install -y --no-install-recommends nftables iproute2 \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/target/release/meshwork /usr/local/bin/meshwork
ENTRYPOINT ["meshwork", "init"]

# The default target: the proxy itself.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/target/release/meshwork /usr/local/bin/meshwork
# The control plane, from the same image: `docker run --entrypoint meshwork-control ...`.
COPY --from=build /src/target/release/meshwork-control /usr/local/bin/meshwork-control
USER nonroot:nonroot
# Admin (metrics, readiness) and the default example listener.
EXPOSE 9901 8080
ENTRYPOINT ["meshwork"]
CMD ["run", "-c", "/etc/meshwork/config.yaml"]
