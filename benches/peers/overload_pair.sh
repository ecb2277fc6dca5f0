#!/usr/bin/env bash
# MatchImage under overload, two server configurations of one binary (BENCHMARKS.md, "gRPC
# service"; docs/operations.md, "Queue depth"): in each round each configuration serves the index
# in turn (a fresh server), `sigil-bench-server` measures the closed-loop peak (4 callers, 15 s),
# then offers 80% of that peak open loop for 30 s (phase 3 of server_bench.sh). Pairs, because
# this VM's speed drifts within minutes.
#
# usage: benches/peers/overload_pair.sh SIGIL INDEX IMAGES_DIR "A_ENV" "B_ENV" [ROUNDS]
#   A_ENV, B_ENV  environment overrides for the server, e.g. "SIGIL_LIMITS__HASHING_QUEUE=16"
#                 and "" (the defaults)
# Prints one line per run: round, configuration, peak and offered calls/s, completed calls/s,
# latency p50/p99 (ms), errors by cause, and the server's peak RSS.
set -euo pipefail
S=$1 INDEX=$2 IMAGES=$3 A_ENV=$4 B_ENV=$5 ROUNDS=${6:-2}
PORT=${PORT:-50096}
. "$(dirname "$0")/serve_lib.sh"
for round in $(seq "$ROUNDS"); do
    for which in A B; do
        if [ "$which" = A ]; then ENVS=$A_ENV; else ENVS=$B_ENV; fi
        WORK=$(mktemp -d /tmp/sigil-overload.XXXXXX)
        # ENVS is a list of NAME=VALUE words: exported for the server only.
        for kv in $ENVS; do export "${kv?}"; done
        start_server "$S" "$INDEX" "$PORT" "$WORK"
        for kv in $ENVS; do unset "${kv%%=*}"; done
        "$BENCH" --addr "127.0.0.1:$PORT" --mode image --images "$IMAGES" \
            --concurrency 4 --seconds 15 > "$WORK/peak.json"
        RATE=$(python3 -c 'import json,sys; print(round(0.8 * json.load(open(sys.argv[1]))["calls_per_s"], 2))' "$WORK/peak.json")
        # sigil-bench-server exits non-zero when any call failed; the errors are in its JSON line.
        "$BENCH" --addr "127.0.0.1:$PORT" --mode image --images "$IMAGES" --rate "$RATE" \
            --concurrency 64 --seconds 30 > "$WORK/open.json" || true
        HWM=$(awk '/VmHWM/ {print $2}' "/proc/$SERVER/status")
        kill "$SERVER"
        wait "$SERVER" 2>/dev/null || true
        python3 - "$round" "$which" "$WORK" "$RATE" "$HWM" "$ENVS" <<'PYEOF'
import json, sys
r, which, work, rate, hwm, envs = sys.argv[1:7]
p = json.load(open(f"{work}/peak.json"))
o = json.load(open(f"{work}/open.json"))
print(r, which, json.dumps({"env": envs, "peak_per_s": p["calls_per_s"], "offered_per_s": float(rate),
      "completed_per_s": round(o["calls_per_s"], 1), "p50_ms": o["latency_ms"]["p50"],
      "p99_ms": o["latency_ms"]["p99"], "errors": o["errors"], "peak_rss_mib": round(int(hwm) / 1024)}))
PYEOF
        rm -rf "$WORK"
    done
done
