#!/usr/bin/env python3
"""Times Meta's reference PDQ core (the `pdqhash` binding, as used by HMA and
python-threatexchange) on exactly the pixels `benches/benches/pdq.rs` hashes.

usage: . /root/.cache/sigil-peers/bin/activate
       python benches/peers/pdq_reference_timing.py [--quick]

Prints, per image, the median wall time of `pdqhash.compute` and
`pdqhash.compute_dihedral` on a decoded RGB uint8 array (one thread; the
binding's own float luma conversion is part of the call, as it is part of
sigil's `hash_rgb8`), and the hash, which must equal what the Rust bench
prints on stderr ("pdq NAME HASH QUALITY").
"""
import argparse
import os
import statistics
import sys
import time

import numpy as np
import pdqhash
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
TESTDATA = os.path.join(HERE, "..", "..", "testdata", "pixels")


def synthetic_rgb(w, h):
    """Byte-identical to `synthetic_rgb` in benches/benches/pdq.rs."""
    y, x, c = np.meshgrid(
        np.arange(h, dtype=np.uint32), np.arange(w, dtype=np.uint32), np.arange(3, dtype=np.uint32), indexing="ij"
    )
    with np.errstate(over="ignore"):
        m = x * np.uint32(0x9E3779B1) + y * np.uint32(0x85EBCA77) + c * np.uint32(0xC2B2AE3D)
        m ^= m >> np.uint32(15)
        m = m * np.uint32(0x2C1B3C6D)
        m ^= m >> np.uint32(12)
    base = x * np.uint32(256) // np.uint32(w) + y * np.uint32(128) // np.uint32(h) + c * np.uint32(64)
    wave = (x ^ y) & np.uint32(63)
    return np.ascontiguousarray(((base + wave + (m & np.uint32(31))) & np.uint32(255)).astype(np.uint8))


def hexof(bits):
    return "%064x" % int("".join(str(int(b)) for b in bits), 2)


def median_time(fn, arr, runs):
    """Median wall time and median thread CPU time of `fn(arr)`, seconds."""
    fn(arr)  # warm-up
    wall, cpu = [], []
    for _ in range(runs):
        t0, c0 = time.perf_counter(), time.thread_time()
        fn(arr)
        wall.append(time.perf_counter() - t0)
        cpu.append(time.thread_time() - c0)
    return statistics.median(wall), statistics.median(cpu)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="fewer runs")
    a = ap.parse_args()
    images = [(f"{w}x{h}", synthetic_rgb(w, h)) for (w, h) in [(512, 512), (1024, 1024), (4032, 3024)]]
    street = os.path.join(TESTDATA, "street_2016x1512.png")
    if os.path.exists(street):
        images.append(("street_2016x1512", np.ascontiguousarray(np.asarray(Image.open(street).convert("RGB")))))
    print(f"pdqhash {pdqhash.__version__}, numpy {np.__version__}, python {sys.version.split()[0]}")
    print("times in ms, median; wall = perf_counter, cpu = thread_time (robust on a loaded machine)")
    print(f"{'image':<18} {'compute wall':>12} {'compute cpu':>12} {'dihedral wall':>13} {'dihedral cpu':>12}  hash quality")
    for name, arr in images:
        px = arr.shape[0] * arr.shape[1]
        runs = max(5, min(41, int(4e7 / px))) if not a.quick else 3
        t, tc = median_time(pdqhash.compute, arr, runs)
        td, tdc = median_time(pdqhash.compute_dihedral, arr, runs)
        bits, q = pdqhash.compute(arr)
        print(
            f"{name:<18} {t * 1e3:>12.3f} {tc * 1e3:>12.3f} {td * 1e3:>13.3f} {tdc * 1e3:>12.3f}  {hexof(bits)} {q}",
            flush=True,
        )


if __name__ == "__main__":
    main()
