#!/usr/bin/env bash
# Profile `sigil serve` during a MatchImage peak (BENCHMARKS.md, "gRPC service"): starts the
# server on INDEX, runs phase 2's load (`sigil-bench-server --mode image`, 4 callers, 20 s) and
# records the server with `perf record -p` for 12 s of it; prints sigil-bench-server's JSON line
# and the server's top symbols.
#
# usage: benches/peers/server_profile.sh SIGIL INDEX IMAGES_DIR [PERF_OUT]
set -euo pipefail
S=$1 INDEX=$2 IMAGES=$3 OUT=${4:-/tmp/sigil-server.perf}
PORT=${PORT:-50095}
WORK=$(mktemp -d /tmp/sigil-profile.XXXXXX)
. "$(dirname "$0")/serve_lib.sh"
start_server "$S" "$INDEX" "$PORT" "$WORK"
trap 'kill $SERVER 2>/dev/null || true; rm -rf "$WORK"' EXIT
"$BENCH" --addr "127.0.0.1:$PORT" --mode image --images "$IMAGES" --concurrency 4 \
    --seconds 20 >"$WORK/image.json" &
LOAD=$!
sleep 5
perf record -o "$OUT" -p "$SERVER" -- sleep 12 >/dev/null 2>&1
wait $LOAD
cat "$WORK/image.json"
perf report -i "$OUT" --no-children --sort sym --stdio 2>/dev/null | grep '%' | head -25
