#!/usr/bin/env bash
# gRPC service load benchmark (BENCHMARKS.md, "gRPC service"): one run, one machine.
#
# usage: benches/peers/server_bench.sh INDEX IMAGES_DIR [SOAK_SECONDS]
#   INDEX       e.g. /work/bench-data/idx10m/sigil-index (10M entries)
#   IMAGES_DIR  e.g. /work/bench-data/corpus/img (the photo corpus, also scanned by scan_bench.sh)
#   SOAK_SECONDS default 600 (0: skip the soak)
# Starts `sigil serve --insecure-loopback` on the index, then with `sigil-bench-server`:
# 1. MatchHashes peak: random PDQ hashes (no match), 1000 per call, 4 callers, 20 s;
# 2. MatchImage peak on IMAGES_DIR, 4 callers, 20 s; then `sigil scan --threads 2` on the same
#    directory and index for the comparison;
# 3. p99 at 80% of the MatchImage peak: open loop at a fixed call rate, 30 s;
# 4. soak: MatchImage for SOAK_SECONDS at 2 callers, the server's RSS sampled every 10 s.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
INDEX=$1
IMAGES=$2
SOAK=${3:-600}
cd "$ROOT"
cargo build --release -q -p sigil-cli
SIGIL=${CARGO_TARGET_DIR:-$ROOT/target}/release/sigil
WORK=$(mktemp -d /tmp/sigil-server-bench.XXXXXX)
PORT=${PORT:-50071}
. "$HERE/serve_lib.sh"
start_server "$SIGIL" "$INDEX" "$PORT" "$WORK"
trap 'kill $SERVER 2>/dev/null || true; rm -rf "$WORK"' EXIT
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
echo "index: $INDEX; images: $IMAGES ($(ls "$IMAGES" | wc -l) files)"
bench() { "$BENCH" --addr "127.0.0.1:$PORT" "$@"; }
rss() { awk '/VmRSS/ {print $2}' "/proc/$SERVER/status"; }

echo "== 1. MatchHashes peak"
bench --mode hashes --batch 1000 --concurrency 4 --seconds 20 | tee "$WORK/hashes.json"
echo "== 2. MatchImage peak, then sigil scan --threads 2 on the same files"
# The load generator shares the 2 cores with the server, so throughput alone
# understates the server; CPU seconds per image (server process only, from
# /proc, vs the whole scan process) compare the work per image directly.
TICKS=$(getconf CLK_TCK)
CPU0=$(cpu_ticks "$SERVER")
# --warmup 0: the server's CPU is read over the whole run, so every call of the run must count
# (with the default 1 s warm-up, 5% of the CPU went to uncounted calls).
/usr/bin/time -f '%U %S' -o "$WORK/client.cpu" \
    "$BENCH" --addr "127.0.0.1:$PORT" --mode image --images "$IMAGES" \
    --concurrency 4 --seconds 20 --warmup 0 | tee "$WORK/image.json"
CPU1=$(cpu_ticks "$SERVER")
# The directory is given SCAN_REPEAT times (default 5): one pass over the 271-photo corpus lasts
# ~1.5 s, too short for a steady rate.
SCAN_DIRS=()
for _ in $(seq "${SCAN_REPEAT:-5}"); do SCAN_DIRS+=("$IMAGES"); done
/usr/bin/time -f '%U %S' -o "$WORK/scan.cpu" \
    "$SIGIL" scan --quiet --threads 2 --index "$INDEX" "${SCAN_DIRS[@]}" --output "$WORK/scan.jsonl" \
    --summary-json "$WORK/scan.json" || [ $? -eq 1 ]
python3 - "$WORK" "$CPU0" "$CPU1" "$TICKS" <<'PYEOF'
import json, sys
work, c0, c1, ticks = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
img = json.load(open(f"{work}/image.json"))
scan = json.load(open(f"{work}/scan.json"))
server_cpu = (c1 - c0) / ticks
client_cpu = sum(map(float, open(f"{work}/client.cpu").read().split()[-2:]))
scan_cpu = sum(map(float, open(f"{work}/scan.cpu").read().split()[-2:]))
files = scan.get("files") or round(scan["files_per_s"] * scan["elapsed_s"])
server_rate = img["calls"] / server_cpu
scan_rate = files / scan_cpu
print(json.dumps({
    "scan_threads2_files_per_s": scan["files_per_s"],
    "server_cpu_s": round(server_cpu, 2), "client_cpu_s": round(client_cpu, 2),
    "server_images_per_cpu_s": round(server_rate, 1),
    "scan_cpu_s": round(scan_cpu, 2), "scan_files": files,
    "scan_files_per_cpu_s": round(scan_rate, 1),
    "server_vs_scan_per_cpu": round(server_rate / scan_rate, 3),
}))
PYEOF
PEAK=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["calls_per_s"])' "$WORK/image.json")
RATE=$(python3 -c "print(round(0.8 * $PEAK, 2))")
echo "== 3. MatchImage open loop at 80% of peak ($RATE calls/s)"
# sigil-bench-server exits non-zero when any call failed; the errors are in its JSON line.
bench --mode image --images "$IMAGES" --rate "$RATE" --concurrency 64 --seconds 30 || true
if [ "$SOAK" -eq 0 ]; then exit 0; fi
echo "== 4. soak ${SOAK}s, server RSS (KiB) every 10 s"
(bench --mode image --images "$IMAGES" --concurrency 2 --seconds "$SOAK" --warmup 0 > "$WORK/soak.json" || true) &
LOAD=$!
samples=()
while kill -0 $LOAD 2>/dev/null; do samples+=("$(rss)"); sleep 10; done
cat "$WORK/soak.json"
python3 - "${samples[@]}" <<'PYEOF'
import sys
s = [int(x) for x in sys.argv[1:] if x]
print(f"rss samples: {len(s)}, first {s[0]/1024:.1f} MiB, min {min(s)/1024:.1f}, max {max(s)/1024:.1f}, "
      f"last {s[-1]/1024:.1f} MiB; last vs 2nd minute {100*(s[-1]/s[min(12,len(s)-1)]-1):+.1f}%")
print("rss trace (MiB): " + " ".join(f"{x/1024:.0f}" for x in s))
PYEOF
