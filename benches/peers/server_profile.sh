#!/usr/bin/env bash
# Profile `sigil serve` during a MatchImage peak (BENCHMARKS.md, "gRPC service"): starts the
# server on INDEX, runs phase 2's load (`bench-server --mode image`, 4 callers, 20 s) and records
# the server with `perf record -p` for 12 s of it; prints bench-server's JSON line and the
# server's top symbols.
#
# usage: benches/peers/server_profile.sh SIGIL INDEX IMAGES_DIR [PERF_OUT]
set -euo pipefail
S=$1 INDEX=$2 IMAGES=$3 OUT=${4:-/tmp/sigil-server.perf}
PORT=${PORT:-50095}
WORK=$(mktemp -d /tmp/sigil-profile.XXXXXX)
"$S" serve --index "$INDEX" --listen "127.0.0.1:$PORT" --db "$WORK/reports.db" \
    --metrics-listen 127.0.0.1:0 --insecure-loopback --log-format text 2>"$WORK/serve.log" &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true; rm -rf "$WORK"' EXIT
for _ in $(seq 300); do
    "$S" bench-server --addr "127.0.0.1:$PORT" --mode hashes --batch 1 --concurrency 1 \
        --seconds 0.2 --warmup 0 >/dev/null 2>&1 && break
    sleep 0.2
done
"$S" bench-server --addr "127.0.0.1:$PORT" --mode image --images "$IMAGES" --concurrency 4 \
    --seconds 20 >"$WORK/image.json" &
LOAD=$!
sleep 5
perf record -o "$OUT" -p "$SERVER" -- sleep 12 >/dev/null 2>&1
wait $LOAD
cat "$WORK/image.json"
perf report -i "$OUT" --no-children --sort sym --stdio 2>/dev/null | grep '%' | head -25
