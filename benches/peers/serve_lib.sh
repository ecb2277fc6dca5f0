# Sourced by the server benchmark scripts in this directory.

# The load generator, `sigil-bench-server` (benches/src/bin/sigil-bench-server.rs): built once
# from this tree in release mode, the same one against every binary a script compares. Set
# BENCH=PATH to use another build.
if [ -z "${BENCH:-}" ]; then
    _root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
    (cd "$_root" && cargo build --release -q -p sigil-benches --bin sigil-bench-server)
    BENCH=${CARGO_TARGET_DIR:-$_root/target}/release/sigil-bench-server
fi

# start_server SIGIL INDEX PORT WORK: starts `sigil serve --insecure-loopback` on INDEX in the
# background (reports database and log in WORK), sets SERVER to its pid, and returns once it
# answers a one-hash MatchHashes call (or after ~60 s of trying).
start_server() {
    local sigil=$1 index=$2 port=$3 work=$4
    "$sigil" serve --index "$index" --listen "127.0.0.1:$port" --db "$work/reports.db" \
        --metrics-listen 127.0.0.1:0 --insecure-loopback --log-format text 2>"$work/serve.log" &
    SERVER=$!
    for _ in $(seq 300); do
        "$BENCH" --addr "127.0.0.1:$port" --mode hashes --batch 1 --concurrency 1 \
            --seconds 0.2 --warmup 0 >/dev/null 2>&1 && return 0
        sleep 0.2
    done
}

# cpu_ticks PID: the user + system CPU time PID has used so far, in clock ticks (getconf CLK_TCK).
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
