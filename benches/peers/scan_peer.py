#!/usr/bin/env python3
"""Python peer for `sigil scan`: walk a tree, decode each image with Pillow, hash it with
Meta's reference PDQ core (the `pdqhash` binding), and compute the SHA-256 and MD5 of the
bytes, one thread. The same work `sigil scan --threads 1` does per file, minus the index
lookup (which would only add time to the peer).

usage: scan_peer.py DIR [--repeat N]     (venv: . /root/.cache/sigil-peers/bin/activate)
Prints one JSON object: files, errors, elapsed_s, files_per_s, decode_s, pdq_s.
Decoding follows shared/tools/peers/pdq_reference.py: EXIF orientation ignored, alpha
dropped, grey used as-is, palette/CMYK converted to RGB.
"""
import argparse, hashlib, json, os, sys, time
import numpy as np
import pdqhash
from PIL import Image

EXTS = {".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".gif", ".webp", ".bmp", ".tif", ".tiff"}


def rgb_pixels(im):
    if im.mode in ("L", "LA", "I;16", "I", "F"):
        a = np.asarray(im.getchannel(0) if im.mode == "LA" else im.convert("L"))
        return np.ascontiguousarray(np.stack([a, a, a], axis=2))
    if im.mode == "RGBA":
        return np.ascontiguousarray(np.asarray(im)[:, :, :3])
    return np.ascontiguousarray(np.asarray(im.convert("RGB")))


def files_under(d):
    for root, dirs, files in os.walk(d):
        dirs.sort()
        for f in sorted(files):
            if os.path.splitext(f)[1].lower() in EXTS:
                yield os.path.join(root, f)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dir")
    ap.add_argument("--repeat", type=int, default=1)
    a = ap.parse_args()
    paths = list(files_under(a.dir))
    n = errors = 0
    t_decode = t_pdq = 0.0
    t0 = time.perf_counter()
    for _ in range(a.repeat):
        for p in paths:
            n += 1
            try:
                with open(p, "rb") as f:
                    data = f.read()
                hashlib.sha256(data).digest()
                hashlib.md5(data).digest()
                t = time.perf_counter()
                im = Image.open(p)
                im.load()
                px = rgb_pixels(im)
                t_decode += time.perf_counter() - t
                t = time.perf_counter()
                pdqhash.compute(px)
                t_pdq += time.perf_counter() - t
            except Exception:
                errors += 1
    el = time.perf_counter() - t0
    json.dump({"files": n, "errors": errors, "elapsed_s": el, "files_per_s": n / el,
               "decode_s": t_decode, "pdq_s": t_pdq}, sys.stdout)
    print()


if __name__ == "__main__":
    main()
