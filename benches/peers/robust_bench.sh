#!/usr/bin/env bash
# Cost of robust and dihedral matching per image, two sigil builds side by side in one run
# (BENCHMARKS.md, "Robust matching").
#
# usage: benches/peers/robust_bench.sh BASE_SIGIL NEW_SIGIL [CORPUS_DIR] [WORK_DIR]
#   BASE_SIGIL, NEW_SIGIL  two release binaries (e.g. main's, copied aside, and this branch's)
#   CORPUS_DIR default /work/bench-data/corpus (built by ../shared/tools/corpus/build.sh)
#   WORK_DIR   default /tmp/sigil-robust-bench
# For each mode (plain, --dihedral, --robust, --robust=full), REPEAT rounds (default 5) of
# `sigil scan --threads 1` over the corpus, the two builds alternating within each round; prints
# the median ms per image of each build and mode, the new/base ratio, and new robust over base
# robust (the issue 20 target: <= 1.25x; plain unchanged within noise).
set -euo pipefail
BASE=$(realpath "$1")
NEW=$(realpath "$2")
CORPUS=${3:-/work/bench-data/corpus}
WORK=${4:-/tmp/sigil-robust-bench}
REPEAT=${REPEAT:-5}
HERE=$(cd "$(dirname "$0")" && pwd)
IDX=$(cd "$HERE/../.." && pwd)/testdata/index
mkdir -p "$WORK"
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
echo "corpus: $CORPUS/img ($(ls "$CORPUS/img" | wc -l) files); index $IDX"

ms_per_image() { # args: sigil binary, mode args...; prints elapsed ms per scanned file
    local bin=$1
    shift
    rm -f "$WORK/out.jsonl"
    "$bin" scan --quiet --threads 1 --index "$IDX" "$@" "$CORPUS/img" \
        --output "$WORK/out.jsonl" --summary-json "$WORK/summary.json" || [ $? -eq 1 ]
    python3 -c 'import json,sys; print(1000.0 / json.load(open(sys.argv[1]))["files_per_s"])' \
        "$WORK/summary.json"
}

"$NEW" scan --quiet --index "$IDX" "$CORPUS/img" --output "$WORK/warm.jsonl" --overwrite || true
declare -A T
modes=("plain" "--dihedral" "--robust" "--robust=full")
for _ in $(seq "$REPEAT"); do
    for m in "${modes[@]}"; do
        args=()
        [ "$m" != plain ] && args=("$m")
        T[base,$m]+="$(ms_per_image "$BASE" "${args[@]}") "
        T[new,$m]+="$(ms_per_image "$NEW" "${args[@]}") "
    done
done
for m in "${modes[@]}"; do
    python3 - "$m" "${T[base,$m]}" "${T[new,$m]}" <<'PYEOF'
import statistics, sys
m, b, n = sys.argv[1], [float(x) for x in sys.argv[2].split()], [float(x) for x in sys.argv[3].split()]
mb, mn = statistics.median(b), statistics.median(n)
print(f"{m:14s} base {mb:6.2f} ms/image (runs {min(b):.2f}-{max(b):.2f})  "
      f"new {mn:6.2f} ms/image (runs {min(n):.2f}-{max(n):.2f})  new/base {mn/mb:.3f}x")
PYEOF
done
