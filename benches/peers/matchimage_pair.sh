#!/usr/bin/env bash
# Paired MatchImage comparison of two sigil binaries (BENCHMARKS.md, "gRPC service"): in each
# round each binary serves the index in turn (a fresh server), `sigil-bench-server` runs phase 2
# of server_bench.sh against it (4 callers, 20 s), then the same binary's `sigil scan --threads 2`
# runs on the same files and index, the directory given SCAN_REPEAT times (default 5: one pass
# over the 271-photo corpus lasts ~1.5 s, too short for a steady rate). Pairs, because this VM's
# speed drifts within minutes.
#
# usage: benches/peers/matchimage_pair.sh OLD_SIGIL NEW_SIGIL INDEX IMAGES_DIR [ROUNDS]
# Prints one line per run: round, which binary, images/s, scan files/s and their ratio, and the
# CPU time per image of the server process and of the load generator (the run has no warm-up,
# so every call whose CPU is counted is counted).
set -euo pipefail
OLD=$1 NEW=$2 INDEX=$3 IMAGES=$4 ROUNDS=${5:-3}
PORT=${PORT:-50092}
SCAN_REPEAT=${SCAN_REPEAT:-5}
SCAN_DIRS=()
for _ in $(seq "$SCAN_REPEAT"); do SCAN_DIRS+=("$IMAGES"); done
. "$(dirname "$0")/serve_lib.sh"
for round in $(seq "$ROUNDS"); do
    for which in old new; do
        if [ "$which" = old ]; then S=$OLD; else S=$NEW; fi
        WORK=$(mktemp -d /tmp/sigil-ipair.XXXXXX)
        start_server "$S" "$INDEX" "$PORT" "$WORK"
        CPU0=$(cpu_ticks "$SERVER")
        /usr/bin/time -f '%U %S' -o "$WORK/client.cpu" \
            "$BENCH" --addr "127.0.0.1:$PORT" --mode image --images "$IMAGES" \
            --concurrency 4 --seconds 20 --warmup 0 > "$WORK/image.json"
        CPU1=$(cpu_ticks "$SERVER")
        kill "$SERVER"
        wait "$SERVER" 2>/dev/null || true
        "$S" scan --quiet --threads 2 --index "$INDEX" "${SCAN_DIRS[@]}" --output "$WORK/scan.jsonl" \
            --summary-json "$WORK/scan.json" || [ $? -eq 1 ]
        python3 - "$round" "$which" "$WORK" "$CPU0" "$CPU1" "$(getconf CLK_TCK)" <<'PYEOF'
import json, sys
r, which, work = sys.argv[1:4]
c0, c1, ticks = int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
img = json.load(open(f"{work}/image.json"))
scan = json.load(open(f"{work}/scan.json"))
client = sum(map(float, open(f"{work}/client.cpu").read().split()[-2:]))
print(r, which, json.dumps({"images_per_s": img["items_per_s"], "errors": img["errors"],
      "p99_ms": img["latency_ms"]["p99"], "scan_files_per_s": round(scan["files_per_s"], 1),
      "image_vs_scan": round(img["items_per_s"] / scan["files_per_s"], 3),
      "server_cpu_ms_per_image": round((c1 - c0) / ticks / img["calls"] * 1000, 2),
      "client_cpu_ms_per_image": round(client / img["calls"] * 1000, 2)}))
PYEOF
        rm -rf "$WORK"
    done
done
