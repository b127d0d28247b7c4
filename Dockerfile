# syntax=docker/dockerfile:1
# meshwork: one image for the proxy, the control plane and the pod's init container.
#
#   docker build -t meshwork:0.1.0 .
#   proxy:          meshwork run -c /etc/meshwork/config.yaml     (the default command)
#   control plane:  meshwork-control --config-dir ... (command: [meshwork-control])
#   init container: meshwork init ...                 (as root, with NET_ADMIN only)
#
# Why one image on debian:bookworm-slim rather than distroless: `meshwork init` programs
# the pod's interception by shelling out to `nft` (and, for `--mode tproxy`, to `ip`),
# and those need their shared libraries (libnftables, libmnl, libnftnl, libjansson, ...),
# which distroless does not carry and which are fragile to copy in by hand. Debian's
# packages bring exactly them; nothing else is installed. One image means one thing to
# build, scan, sign and pin, and the proxy and its init container can never be of
# different versions.

FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin meshwork --bin meshwork-control \
 && strip target/release/meshwork target/release/meshwork-control

FROM debian:bookworm-slim
# nftables: `nft`, which `meshwork init` loads its one table with (docs/sidecar.md).
# iproute2: `ip rule` / `ip route`, for `meshwork init --mode tproxy` only.
# ca-certificates: the system roots, for TLS to servers verified by public CAs.
RUN apt-get update \
 && apt-get install -y --no-install-recommends nftables iproute2 ca-certificates \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/target/release/meshwork /usr/local/bin/meshwork
COPY --from=build /src/target/release/meshwork-control /usr/local/bin/meshwork-control
# Non-root by default, as the proxy: UID/GID 1337 is the identity `meshwork init`
# exempts from capture (the proxy's own connections must not be redirected to itself).
# Numeric, so Kubernetes can verify `runAsNonRoot`. `meshwork init` alone runs as root
# (`runAsUser: 0` in its init container) with the NET_ADMIN capability and no other.
USER 1337:1337
# The sidecar's admin port (probes, metrics), and its inbound and outbound ports.
EXPOSE 4191 15006 15001
ENTRYPOINT ["meshwork"]
CMD ["run", "-c", "/etc/meshwork/config.yaml"]
