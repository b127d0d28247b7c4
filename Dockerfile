# syntax=docker/dockerfile:1
# meshwork: multi-stage build -> minimal, non-root runtime image with only the binary
# and CA roots (distroless "cc" carries glibc, ca-certificates and a nonroot user).

FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin meshwork \
 && strip target/release/meshwork

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/target/release/meshwork /usr/local/bin/meshwork
USER nonroot:nonroot
# Admin (metrics, readiness) and the default example listener.
EXPOSE 9901 8080
ENTRYPOINT ["meshwork"]
CMD ["run", "-c", "/etc/meshwork/config.yaml"]
