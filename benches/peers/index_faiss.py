#!/usr/bin/env python3
"""Time FAISS (the matcher of Meta's HMA) on an existing index_dataset.py directory, so that
sigil and FAISS are measured in the same session on the same files.

usage: . /root/.cache/sigil-peers/bin/activate
       python3 benches/peers/index_faiss.py /work/bench-data/idx1m [--queries 1000] [--radius 31]
Prints one JSON line: p50/p99 per query (one thread, one query at a time) for IndexBinaryFlat and
IndexBinaryMultiHash(256, 16 tables, 16 bits, nflip = radius // 16), the time per query when all
queries go in one range_search call (one thread), their build times, and how many queries differ
from truth.tsv. FAISS radius is strict, so radius + 1 is passed (PDQ match is <=).
"""
import argparse, json, os, time
import numpy as np
import faiss


def load(path):
    with open(path) as f:
        return np.array([np.frombuffer(bytes.fromhex(l.strip()), dtype=np.uint8) for l in f if l.strip()])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("data")
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--radius", type=int, default=31)
    a = ap.parse_args()
    faiss.omp_set_num_threads(1)
    t = time.perf_counter()
    db = load(os.path.join(a.data, "db.txt"))
    q = load(os.path.join(a.data, "queries.txt"))[: a.queries]
    truth = []
    with open(os.path.join(a.data, "truth.tsv")) as f:
        for l in f:
            truth.append(set(int(x) for x in l.rstrip("\n").split("\t")[1:]))
    res = {"n": len(db), "queries": len(q), "radius": a.radius, "load_s": time.perf_counter() - t}
    for name in ["flat", "multihash"]:
        t = time.perf_counter()
        if name == "flat":
            idx = faiss.IndexBinaryFlat(256)
        else:
            idx = faiss.IndexBinaryMultiHash(256, 16, 16)
            idx.nflip = a.radius // 16
        idx.add(db)
        res[name + "_build_s"] = time.perf_counter() - t
        lat, wrong = [], 0
        for i in range(len(q)):
            t = time.perf_counter()
            lims, _, ids = idx.range_search(q[i:i + 1], a.radius + 1)
            lat.append(time.perf_counter() - t)
            if set(ids[lims[0]:lims[1]].tolist()) != truth[i]:
                wrong += 1
        res[name + "_ms_p50"] = float(np.median(lat) * 1e3)
        res[name + "_ms_p99"] = float(np.percentile(lat, 99) * 1e3)
        res[name + "_queries_differing"] = wrong
        # All queries in one call (still one thread): the peer of sigil's
        # batched search (the index bench's "batch of 1000").
        t = time.perf_counter()
        lims, _, ids = idx.range_search(q, a.radius + 1)
        res[name + "_batch_us_per_query"] = (time.perf_counter() - t) / len(q) * 1e6
        res[name + "_batch_queries_differing"] = sum(
            set(ids[lims[i]:lims[i + 1]].tolist()) != truth[i] for i in range(len(q)))
        del idx
    print(json.dumps(res))


if __name__ == "__main__":
    main()
