#!/usr/bin/env bash
# Architecture invariants that a machine can check (ARCHITECTURE.md,
# "Invariants"): dependency edges, read from `cargo tree`, and where the
# generated proto types may be used, read with grep. Called by .ci/run
# before the tests; run it alone from anywhere in the repository.
set -euo pipefail
cd "$(dirname "$0")/.."

failed=0
broken() {
    printf '\narchitecture invariant broken: %s\n' "$1" >&2
    shift
    printf '%s\n' "$@" >&2
    failed=1
}

# The packages in `cargo tree -p CRATE` (default edges: normal, build, and
# CRATE's own dev-dependencies), one "name version" per line.
packages() {
    cargo tree --locked -p "$1" --prefix none --format '{p}' | sed 's/ (.*//' | sort -u
}

# 1. Nothing on the serving or scanning path depends on the evaluation
#    harness: `cargo tree -p CRATE -i sigil-eval` prints nothing.
for crate in sigil-server sigil-scan sigil-reports sigil-match sigil-index sigil-core; do
    list=$(packages "$crate") # a failing `cargo tree` stops the script here
    if printf '%s\n' "$list" | grep -q '^sigil-eval '; then
        broken "$crate depends on sigil-eval (the harness is not on the serving or scanning path)" \
            "$(cargo tree --locked -p "$crate" -i sigil-eval)"
    fi
done

# 2. The server binary carries no plotting, font or C-built SIMD code (what
#    sigil-eval pulled in).
list=$(packages sigil-server)
heavy=$(printf '%s\n' "$list" | grep -E '^(plotters|font8x8|simsimd) ' || true)
if [ -n "$heavy" ]; then
    broken "sigil-server depends on harness-only crates:" "$heavy" \
        "$(for p in $(printf '%s\n' "$heavy" | cut -d' ' -f1); do cargo tree --locked -p sigil-server -i "$p"; done)"
fi

# 3. The generated proto types stop at the service's edge: inside
#    sigil-server only grpc/ (conversions and handlers), server/listeners.rs
#    (mounts the services) and lib.rs (defines the module) use them; outside
#    it only clients do: integration tests, the load generator
#    (benches/src/bin/), examples/ and the fuzz targets.
uses=$(grep -rnE '(\bproto::|crate::proto\b|super::proto\b|sigil_server::proto\b)' \
    --include='*.rs' crates benches examples fuzz 2>/dev/null |
    grep -vE '^(crates/sigil-server/src/grpc/|crates/sigil-server/src/server/listeners\.rs:|crates/sigil-server/src/lib\.rs:|crates/[^/]+/tests/|benches/src/bin/|examples/|fuzz/fuzz_targets/)' ||
    true)
if [ -n "$uses" ]; then
    broken "generated proto types used outside the service's edge (convert in sigil-server's grpc/convert.rs instead):" "$uses"
fi

# 4. One declared minimum Rust version: every crate inherits the workspace's
#    rust-version (clippy's incompatible_msrv lint then checks std APIs
#    against it), the README states the same, and the container builds with
#    a toolchain at least that new.
msrv=$(sed -n 's/^rust-version = "\(.*\)"/\1/p' Cargo.toml)
own=$(grep -l '^rust-version = ' crates/*/Cargo.toml || true)
if [ -n "$own" ]; then
    broken "crates declare their own rust-version instead of the workspace's ($msrv):" "$own"
fi
if ! grep -q "Rust toolchain ($msrv or newer)" README.md; then
    broken "README.md does not state the workspace's minimum Rust version ($msrv)"
fi
docker_rust=$(sed -n 's/^FROM rust:\([0-9.]*\)-.*/\1/p' deploy/Dockerfile)
if [ "$(printf '%s\n%s\n' "$msrv" "$docker_rust" | sort -V | head -n1)" != "$msrv" ]; then
    broken "deploy/Dockerfile builds with Rust $docker_rust, older than the workspace's rust-version $msrv"
fi

# 5. One integration-test binary per crate: tests/it/main.rs, nothing in
#    tests/*.rs (each file there would be one more binary linking the graph).
loose=$(ls crates/*/tests/*.rs 2>/dev/null || true)
if [ -n "$loose" ]; then
    broken "integration tests outside tests/it/ (make them modules of tests/it/main.rs):" "$loose"
fi

# 6. The report store is a library of its own: `sigil reports` and `sigil
#    scan --reports` use it without the server, so it depends on neither the
#    server, the scanner nor the gRPC stack.
list=$(packages sigil-reports)
edges=$(printf '%s\n' "$list" | grep -E '^(sigil-server|sigil-scan|tonic|prost) ' || true)
if [ -n "$edges" ]; then
    broken "sigil-reports depends on the server, the scanner or gRPC:" "$edges"
fi

# 5. The reviewer console never fetches content: no client code (outgoing
#    connections, HTTP clients) under sigil-server's src/console/.
fetches=$(grep -rnE '(TcpStream::connect|client::conn|client::legacy|reqwest|UdpSocket)' \
    crates/sigil-server/src/console 2>/dev/null || true)
if [ -n "$fetches" ]; then
    broken "the reviewer console opens outgoing connections (it must never fetch content):" "$fetches"
fi

if [ "$failed" -ne 0 ]; then
    printf '\nSee ARCHITECTURE.md, "Invariants", for why these hold.\n' >&2
    exit 1
fi
echo "architecture invariants hold"
