#!/usr/bin/env python3
"""Write truth.tsv for an index_dataset.py directory whose db.txt and queries.txt exist.

index_dataset.py computes the same file (query line, then every db line number within the radius,
tab separated) with a byte-table popcount that takes about half an hour at 10M entries; this does it
with numpy's popcount over four 64-bit words per hash, a few minutes at 10M. Independent of sigil's
own search code, so it can serve as ground truth for it.

usage: . /root/.cache/sigil-peers/bin/activate
       python3 benches/peers/index_truth.py /work/bench-data/idx10m [--radius 31]
"""
import argparse, os
import numpy as np


def load(path):
    with open(path, "rb") as f:
        raw = f.read()
    lines = raw.split()
    hexbytes = b"".join(lines)
    a = np.frombuffer(bytes.fromhex(hexbytes.decode()), dtype=np.uint8).reshape(len(lines), 32)
    # Big-endian words keep bit order irrelevant: popcount of XOR is the same either way.
    return a.view(">u8").astype(np.uint64)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("data")
    ap.add_argument("--radius", type=int, default=31)
    a = ap.parse_args()
    db = load(os.path.join(a.data, "db.txt"))
    q = load(os.path.join(a.data, "queries.txt"))
    cols = [np.ascontiguousarray(db[:, j]) for j in range(4)]
    out = os.path.join(a.data, "truth.tsv")
    with open(out + ".tmp", "w") as f:
        for i in range(len(q)):
            d = np.bitwise_count(cols[0] ^ q[i, 0]).astype(np.uint16)
            for j in range(1, 4):
                d += np.bitwise_count(cols[j] ^ q[i, j])
            hits = np.nonzero(d <= a.radius)[0]
            f.write("\t".join([str(i)] + [str(x) for x in hits]) + "\n")
    os.replace(out + ".tmp", out)


if __name__ == "__main__":
    main()
