#!/usr/bin/env python3
"""Pillow decode + pdqhash.compute (Meta's C++ PDQ core) per format, the peer side of the
"Decode + hash per format" section of BENCHMARKS.md.

usage: . /root/.cache/sigil-peers/bin/activate
       python benches/peers/decode_hash_peer.py [--repeat N]
Run `cargo bench -p sigil-benches --bench decode` first: it writes the GIF/BMP/TIFF inputs to
target/bench-inputs/ so both sides decode the same bytes. Prints the median seconds per file for
decode only and decode+hash, the same conversions as the reference hashes (alpha dropped, palette
and CMYK to RGB, grey as-is).
"""
import argparse, io, os, statistics, time
import numpy as np
import pdqhash
from PIL import Image

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
INPUTS = [
    ("jpeg", "testdata/originals/bridge-mods/aaa-orig.jpg"),
    ("png", "testdata/originals/misc-images/modes/RGBA.png"),
    ("webp", "testdata/originals/misc-images/modes/F.webp"),
    ("gif", "target/bench-inputs/aaa-orig.gif"),
    ("bmp", "target/bench-inputs/aaa-orig.bmp"),
    ("tiff", "target/bench-inputs/aaa-orig.tiff"),
]


def rgb_pixels(im):
    if im.mode in ("L", "LA", "I;16", "I", "F"):
        a = np.asarray(im.getchannel(0) if im.mode == "LA" else im.convert("L"))
        return np.ascontiguousarray(np.stack([a, a, a], axis=2))
    if im.mode == "RGBA":
        return np.ascontiguousarray(np.asarray(im)[:, :, :3])
    return np.ascontiguousarray(np.asarray(im.convert("RGB")))


def decode(data):
    im = Image.open(io.BytesIO(data))
    im.load()
    return rgb_pixels(im)


def median_time(f, repeat):
    f()  # warm-up
    ts = []
    for _ in range(repeat):
        t = time.perf_counter()
        f()
        ts.append(time.perf_counter() - t)
    return statistics.median(ts)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=20)
    a = ap.parse_args()
    print("format,decode_ms,decode_hash_ms")
    for name, rel in INPUTS:
        path = os.path.join(ROOT, rel)
        if not os.path.exists(path):
            print(f"{name},missing {rel},")
            continue
        data = open(path, "rb").read()
        d = median_time(lambda: decode(data), a.repeat)
        dh = median_time(lambda: pdqhash.compute(decode(data)), a.repeat)
        print(f"{name},{d * 1e3:.2f},{dh * 1e3:.2f}")


if __name__ == "__main__":
    main()
