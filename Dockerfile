# syntax=docker/dockerfile:1
# meshwork: multi-stage build -> minimal, non-root runtime image with only the binaries
# (meshwork, meshwork-control) and CA roots (distroless "cc" carries glibc, ca-certificates and a nonroot user).

FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin meshwork --bin meshwork-control \
 && strip target/release/meshwork target/release/meshwork-control

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/target/release/meshwork /usr/local/bin/meshwork
# The control plane, from the same image: `docker run --entrypoint meshwork-control ...`.
COPY --from=build /src/target/release/meshwork-control /usr/local/bin/meshwork-control
USER nonroot:nonroot
# Admin (metrics, readiness) and the default example listener.
EXPOSE 9901 8080
ENTRYPOINT ["meshwork"]
CMD ["run", "-c", "/etc/meshwork/config.yaml"]
