#!/usr/bin/env bash
# Batch-scan benchmark, side by side in one run (BENCHMARKS.md, "Batch scan").
#
# usage: benches/peers/scan_bench.sh [CORPUS_DIR] [WORK_DIR]
#   CORPUS_DIR default /work/bench-data/corpus (built by ../shared/tools/corpus/build.sh)
#   WORK_DIR   default /tmp/sigil-scan-bench (large derived JPEGs, outputs)
# Needs the peer venv (../shared/tools/peers/setup.sh) at /root/.cache/sigil-peers.
#
# 1. end-to-end files/s on the photo corpus: Python (Pillow decode + pdqhash.compute +
#    sha256/md5, one thread) vs `sigil scan --threads 1` and `--threads 2`;
#    sigil's per-stage times ((pdq + lookup) / decode).
# 2. --fast on large JPEGs: the corpus images of 2 MP and more, upscaled 2x (Lanczos) and
#    saved as JPEG quality 90 (8 MP), the same upscaled sqrt(2)x (4-7 MP, decoded at 1/2
#    where the 8 MP set is decoded at 1/4), plus the corpus as JPEG q90 at native size;
#    exact vs --fast: hash deviation (bits) at quality >= 80 and the speedup.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
CORPUS=${1:-/work/bench-data/corpus}
WORK=${2:-/tmp/sigil-scan-bench}
VENV=${SIGIL_PEERS_VENV:-/root/.cache/sigil-peers}
REPEAT=${REPEAT:-3}
mkdir -p "$WORK"
cd "$ROOT"
cargo build --release -q -p sigil-cli
SIGIL=${CARGO_TARGET_DIR:-$ROOT/target}/release/sigil
IDX=$ROOT/testdata/index
# shellcheck disable=SC1091
. "$VENV/bin/activate"

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
echo "corpus: $CORPUS/img ($(ls "$CORPUS/img" | wc -l) files, $(du -sh "$CORPUS/img" | cut -f1))"

median() { python3 -c 'import sys,statistics; print(statistics.median(float(x) for x in sys.argv[1:]))' "$@"; }
sigil_fps() { # args: extra sigil args...; prints files/s, keeps the last summary in $WORK/summary.json
    rm -f "$WORK/out.jsonl"
    "$SIGIL" scan --quiet --index "$IDX" "$@" --output "$WORK/out.jsonl" --summary-json "$WORK/summary.json" || [ $? -eq 1 ]
    python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["files_per_s"])' "$WORK/summary.json"
}

echo
echo "== 1. end-to-end, photo corpus (median of $REPEAT runs, interleaved) =="
py=(); t1=(); t2=()
"$SIGIL" scan --quiet --index "$IDX" "$CORPUS/img" --output "$WORK/warm.jsonl" --overwrite || true  # warm the page cache
for _ in $(seq "$REPEAT"); do
    py+=("$(python3 "$HERE/scan_peer.py" "$CORPUS/img" | python3 -c 'import json,sys; print(json.load(sys.stdin)["files_per_s"])')")
    t1+=("$(sigil_fps --threads 1 "$CORPUS/img")"); cp "$WORK/summary.json" "$WORK/summary-t1.json"
    t2+=("$(sigil_fps --threads 2 "$CORPUS/img")")
done
PY=$(median "${py[@]}"); T1=$(median "${t1[@]}"); T2=$(median "${t2[@]}")
python3 - "$PY" "$T1" "$T2" "$WORK/summary-t1.json" <<'PYEOF'
import json, sys
py, t1, t2 = map(float, sys.argv[1:4])
s = json.load(open(sys.argv[4]))
st = s["stage_s"]
print(f"python Pillow+pdqhash (1 thread): {py:8.1f} files/s")
print(f"sigil scan --threads 1          : {t1:8.1f} files/s  ({t1/py:.2f}x python)")
print(f"sigil scan --threads 2          : {t2:8.1f} files/s  ({t2/t1:.2f}x one thread)")
print("sigil --threads 1 stage seconds: " + ", ".join(f"{k} {v:.3f}" for k, v in st.items()))
print(f"(pdq + lookup) / decode: {100*s['pdq_plus_lookup_over_decode']:.1f}%")
PYEOF

echo
echo "== 2. --fast on large JPEGs =="
python3 - "$CORPUS/img" "$WORK/jpeg-native" "$WORK/jpeg-8mp" "$WORK/jpeg-4mp" <<'PYEOF'
import math, os, sys
from PIL import Image
src, native, big, mid = sys.argv[1:5]
for d in (native, big, mid):
    os.makedirs(d, exist_ok=True)
for f in sorted(os.listdir(src)):
    stem = os.path.splitext(f)[0]
    a, b, c = (os.path.join(d, stem + ".jpg") for d in (native, big, mid))
    im = Image.open(os.path.join(src, f)).convert("RGB")
    if not os.path.exists(a):
        im.save(a, quality=90)
    if im.width * im.height >= 2_000_000 and not os.path.exists(b):
        im.resize((im.width * 2, im.height * 2), Image.LANCZOS).save(b, quality=90)
    if im.width * im.height >= 2_000_000 and not os.path.exists(c):
        s = math.sqrt(2)
        im.resize((round(im.width * s), round(im.height * s)), Image.LANCZOS).save(c, quality=90)
PYEOF
for set in jpeg-native jpeg-4mp jpeg-8mp; do
    ex=(); fa=()
    for _ in $(seq "$REPEAT"); do
        ex+=("$(sigil_fps --threads 1 "$WORK/$set")"); cp "$WORK/out.jsonl" "$WORK/$set-exact.jsonl"
        fa+=("$(sigil_fps --threads 1 --fast "$WORK/$set")"); cp "$WORK/out.jsonl" "$WORK/$set-fast.jsonl"
    done
    EX=$(median "${ex[@]}"); FA=$(median "${fa[@]}")
    python3 - "$set" "$EX" "$FA" "$WORK/$set-exact.jsonl" "$WORK/$set-fast.jsonl" <<'PYEOF'
import json, sys
name, ex, fa = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
def load(p):
    return {r["path"].rsplit("/", 1)[-1]: r for r in map(json.loads, open(p))}
a, b = load(sys.argv[4]), load(sys.argv[5])
d = []
for k, r in a.items():
    if r.get("pdq") and b[k].get("pdq") and r["quality"] >= 80:
        d.append(bin(int(r["pdq"], 16) ^ int(b[k]["pdq"], 16)).count("1"))
d.sort()
if d:
    pct = lambda p: d[min(len(d) - 1, int(p * len(d)))]
    print(f"{name}: {len(a)} files, exact {ex:.1f} files/s, --fast {fa:.1f} files/s ({fa/ex:.2f}x); "
          f"deviation at quality>=80 over {len(d)} images: mean {sum(d)/len(d):.2f} bits, "
          f"median {pct(0.5)}, p95 {pct(0.95)}, max {d[-1]}")
PYEOF
done
