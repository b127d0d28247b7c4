#!/usr/bin/env bash
# Regenerates proxy/link-order.txt: the functions `meshwork` runs at startup, then those
# its common request paths run, in that order, for proxy/build.rs to have lld place
# first (an idle sidecar's resident memory is mostly the windows of its binary that
# startup touched; bench/RESULTS.md, "Idle RSS: the binary's layout").
#
# Symbol names carry a hash of the build's configuration (features, dependencies), so
# the list is made from the build that ships, the Dockerfile's:
#   cargo build --release --bin meshwork --bin meshwork-control
# A function a later build no longer has is skipped by the linker; rerun this after
# dependency or feature changes (it prints how many of the listed functions the binary
# has). Needs valgrind (callgrind), curl and nm; runs everything on 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/.."
for tool in valgrind callgrind_control curl nm; do
    command -v "$tool" >/dev/null || { echo "link-order.sh needs $tool" >&2; exit 1; }
done
cargo build --release --bin meshwork --bin meshwork-control
cargo build --release -p meshwork-bench --bin bench-upstream
bin=target/release/meshwork
work=$(mktemp -d)
pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

# Ports the kernel picks, released for the proxy to bind.
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
admin=$(free_port); plain=$(free_port); tls=$(free_port)

target/release/bench-upstream > "$work/upstream.out" &
pids+=($!)
for _ in $(seq 100); do grep -q listening "$work/upstream.out" && break; sleep 0.1; done
upstream=$(awk '/listening/ {print $2}' "$work/upstream.out")
[ -n "$upstream" ] || { echo "bench-upstream did not start" >&2; exit 1; }

"$bin" certs ca --out "$work/ca" >/dev/null
"$bin" certs workload --ca "$work/ca" --spiffe-id spiffe://link-order/server --dns localhost --out "$work/server" >/dev/null
"$bin" certs workload --ca "$work/ca" --spiffe-id spiffe://link-order/client --out "$work/client" >/dev/null
cat > "$work/config.yaml" <<YAML
version: 1
runtime:
  worker_threads: 1
admin:
  address: 127.0.0.1:$admin
listeners:
  - name: plain
    address: 127.0.0.1:$plain
    protocol: http
    route_table: main
    limits: { header_read_timeout: 1s }
  - name: mtls
    address: 127.0.0.1:$tls
    protocol: http
    route_table: main
    tls:
      certificates:
        - { cert: $work/server/cert.pem, key: $work/server/key.pem }
      client_auth: required
      client_ca: $work/ca/ca.pem
route_tables:
  main:
    - name: all
      match: { path: { prefix: / } }
      backends: [{ cluster: upstream }]
clusters:
  - name: upstream
    endpoints: [$upstream]
    protocol: http1
YAML
"$bin" check "$work/config.yaml" >/dev/null

# Started as the injected sidecar and the image start it (`run -c FILE --drain-timeout`):
# the command line's own parsing is part of what startup runs.
valgrind --tool=callgrind --demangle=no --compress-strings=no \
    --callgrind-out-file="$work/cg.out" "$bin" run -c "$work/config.yaml" --drain-timeout 5s \
    > "$work/proxy.log" 2>&1 &
proxy=$!
pids+=($proxy)
ready=""
for _ in $(seq 1200); do
    curl -sf "http://127.0.0.1:$admin/ready" >/dev/null && { ready=1; break; }
    sleep 0.1
done
[ -n "$ready" ] || { echo "meshwork under callgrind not ready in 120 s" >&2; cat "$work/proxy.log" >&2; exit 1; }
# Idle for a moment (timers, the config watcher), then the first dump: startup.
sleep 1
callgrind_control -d startup "$proxy" >/dev/null

get() { curl -sf -o /dev/null "$@"; }
for _ in 1 2 3; do
    get "http://127.0.0.1:$plain/"
    get "http://127.0.0.1:$plain/bytes/100000"
    get --http2-prior-knowledge "http://127.0.0.1:$plain/"
    get --cacert "$work/ca/ca.pem" --cert "$work/client/cert.pem" --key "$work/client/key.pem" \
        "https://localhost:$tls/"
    get "http://127.0.0.1:$admin/metrics"
done
# Slow clients: a head that never ends, answered 408 at the header timeout.
for _ in 1 2 3; do
    exec 3<>"/dev/tcp/127.0.0.1/$plain"
    printf 'GET / HTTP/1.1\r\nHost: slow\r\nX-Slow: ' >&3
    timeout 60 cat <&3 > "$work/slow.out" || true
    exec 3>&-
    grep -q ' 408 ' "$work/slow.out" || { echo "no 408 for a slow client" >&2; exit 1; }
done
kill -INT "$proxy"
wait "$proxy" || true

# Startup's functions, then those only the requests ran; each set sorted by name, so
# that a rerun changes the file only where the code changed. Only the binary's own.
nm --defined-only "$bin" | awk 'NF == 3 && $2 ~ /^[tTwW]$/ {print $3}' | sort -u > "$work/defined"
sed -n 's/^fn=//p' "$work"/cg.out.[0-9]* | LC_ALL=C sort -u > "$work/startup"
sed -n 's/^fn=//p' "$work/cg.out" | LC_ALL=C sort -u | LC_ALL=C comm -23 - "$work/startup" > "$work/requests"
cat "$work/startup" "$work/requests" > "$work/run"
awk 'NR == FNR {defined[$0] = 1; next} defined[$0]' "$work/defined" "$work/run" > proxy/link-order.txt
echo "proxy/link-order.txt: $(wc -l < proxy/link-order.txt) functions (of $(wc -l < "$work/run") run)"
