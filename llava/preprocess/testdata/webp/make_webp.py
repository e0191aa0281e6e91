#!/usr/bin/python3
"""Lossy WebP corpus and Pillow's decoding of it, for llava/preprocess/webp_test.go.

Run with Debian bookworm's python3-pil 9.4.0 (libwebp 1.2.4, decoded through
WebPAnimDecoder as Pillow does whenever libwebpdemux is present) and numpy:

    /usr/bin/python3 make_webp.py . [X_IMAGE_TESTDATA]

It writes synthetic lossy WebP files (sizes odd and even down to 1x1, quality
0-100, methods 0-6, alpha with and without exact=True), copies the lossy files
named in X_IMAGE_FILES from golang.org/x/image's testdata when that folder is
given (they carry the simple and no-filter loop filters, which Pillow's encoder
options cannot select), and for every .webp in the folder writes NAME.rgb.png:
np.array(Image.open(NAME).convert("RGB")) saved losslessly, the reference the
Go test compares against value for value. Deterministic: the same files on
every run.
"""
import glob
import os
import shutil
import sys

import numpy as np
from PIL import Image

X_IMAGE_FILES = ["blue-purple-pink-large.simple-filter.lossy.webp"]


def synthetic(w, h, rng):
    """Stripes, a gradient, a checkerboard and noise: edges in every channel."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    r = 128 + 100 * np.sin(x / 7.0) * np.cos(y / 11.0)
    g = 255 * x / max(w - 1, 1)
    b = 255 * ((x // 9 + y // 5) % 2)
    a = np.stack([r, g, b], -1) + rng.normal(0, 8, (h, w, 3))
    return Image.fromarray(np.clip(a, 0, 255).astype(np.uint8), "RGB")


def main(out, ximage=None):
    rng = np.random.default_rng(20240601)
    sizes = [(1, 1), (2, 2), (3, 5), (17, 9), (16, 16), (64, 48), (97, 61)]
    i = 0
    for w, h in sizes:
        for q in (0, 25, 75, 100):
            m = i % 7
            i += 1
            synthetic(w, h, rng).save(os.path.join(out, f"s{w}x{h}_q{q}_m{m}.webp"), "WEBP", quality=q, method=m)
    synthetic(161, 121, rng).save(os.path.join(out, "s161x121_q80_m4.webp"), "WEBP", quality=80, method=4)
    for (w, h), q, exact in (((31, 17), 10, False), ((120, 90), 80, True)):
        a = np.array(synthetic(w, h, rng).convert("RGBA"))
        a[..., 3] = (np.arange(w)[None, :] * 255 // max(w - 1, 1)).astype(np.uint8)
        a[: h // 3, :, 3] = 0
        Image.fromarray(a, "RGBA").save(os.path.join(out, f"a{w}x{h}_q{q}_exact{int(exact)}.webp"), "WEBP",
                                        quality=q, exact=exact)
    if ximage:
        for name in X_IMAGE_FILES:
            shutil.copyfile(os.path.join(ximage, name), os.path.join(out, name))
    for f in sorted(glob.glob(os.path.join(out, "*.webp"))):
        with Image.open(f) as im:
            rgb = np.array(im.convert("RGB"))
        Image.fromarray(rgb, "RGB").save(f + ".rgb.png", optimize=True)


if __name__ == "__main__":
    main(*sys.argv[1:])
