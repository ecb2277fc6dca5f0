#!/usr/bin/env bash
# Paired MatchHashes comparison of two sigil binaries (BENCHMARKS.md, "gRPC service", batched
# lookups): in each round each binary serves the index in turn (a fresh server) and
# `sigil-bench-server` runs phase 1 of server_bench.sh against it for 20 s. Pairs, not single
# runs, because this VM's speed drifts by up to 1.7x within half an hour.
#
# usage: benches/peers/matchhashes_pair.sh OLD_SIGIL NEW_SIGIL INDEX [ROUNDS] [BATCH] [CALLERS]
#   e.g. benches/peers/matchhashes_pair.sh /tmp/sigil-old target/release/sigil \
#            /work/bench-data/idx10m/sigil-index 3 1000 4
# Prints one line per run: round, which binary, and sigil-bench-server's JSON line.
set -euo pipefail
OLD=$1 NEW=$2 INDEX=$3 ROUNDS=${4:-3} BATCH=${5:-1000} CALLERS=${6:-4}
PORT=${PORT:-50091}
. "$(dirname "$0")/serve_lib.sh"
for round in $(seq "$ROUNDS"); do
    for which in old new; do
        if [ "$which" = old ]; then S=$OLD; else S=$NEW; fi
        WORK=$(mktemp -d /tmp/sigil-pair.XXXXXX)
        start_server "$S" "$INDEX" "$PORT" "$WORK"
        echo "$round $which $("$BENCH" --addr "127.0.0.1:$PORT" --mode hashes \
            --batch "$BATCH" --concurrency "$CALLERS" --seconds 20)"
        kill "$SERVER"
        wait "$SERVER" 2>/dev/null || true
        rm -rf "$WORK"
    done
done
