#!/usr/bin/env bash
# Index search side by side (BENCHMARKS.md, "Index search"): for each data set, FAISS first,
# then three rounds of the sigil bench (5 passes of the 1000 queries each).
#
# usage: benches/peers/index_run.sh [DATA_DIR...]
#   DATA_DIR default /work/bench-data/idx1m /work/bench-data/idx10m, each made by
#   ../shared/tools/peers/index_dataset.py (10M: --no-faiss, then benches/peers/index_truth.py).
# Needs the peer venv (../shared/tools/peers/setup.sh) at /root/.cache/sigil-peers.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
cd "$HERE/../.."
VENV=${SIGIL_PEERS_VENV:-/root/.cache/sigil-peers}
# shellcheck disable=SC1091
. "$VENV/bin/activate"
[ $# -gt 0 ] || set -- /work/bench-data/idx1m /work/bench-data/idx10m
date -u
for data in "$@"; do
    python3 benches/peers/index_faiss.py "$data"
    for _ in 1 2 3; do
        SIGIL_INDEX_BENCH_DATA=$data SIGIL_INDEX_BENCH_FLAT=0 SIGIL_INDEX_BENCH_RUNS=5 \
            cargo bench -p sigil-benches --bench index -- --noplot 2>&1 |
            grep -E '^index:|^Auto|rss|mapped|time:'
    done
done
date -u
