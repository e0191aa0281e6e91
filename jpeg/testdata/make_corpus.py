#!/usr/bin/python3
"""Makes the JPEG test corpus and its references, once; the Go tests never
run this. Needs Debian bookworm's python3-pil (Pillow 9.4.0, linked against
libjpeg62-turbo 2.1.5), python3-numpy, libjpeg-turbo-progs (cjpeg) and, for
the YCCK file, gcc and libjpeg62-turbo-dev.

For every corpus/NAME.jpg it writes corpus/NAME.png: Pillow's
Image.open(f).convert("RGB"), the pixels transformers' LLaVA pipeline starts
from. Files listed in REFUSED are ones libjpeg-turbo would decode with
something other than the plain algorithm (or not at all); they get no
reference and the tests expect a named error.

Run from this directory: ./make_corpus.py
"""
import io
import json
import os
import subprocess
import tempfile

import numpy as np
from PIL import Image

assert Image.__version__ == "9.4.0", Image.__version__
OUT = "corpus"
os.makedirs(OUT, exist_ok=True)
tmp = tempfile.mkdtemp()


def synthetic(w, h, seed):
    """A photographic-enough scene: gradients, texture, noise, sharp edges."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    r = 128 + 100 * np.sin(x / 17.0) * np.cos(y / 23.0)
    g = 255 * x / max(w - 1, 1)
    b = 255 * y / max(h - 1, 1)
    img = np.stack([r, g, b], -1)
    img += rng.normal(0, 12, img.shape)
    cx, cy = w * 0.6, h * 0.4
    disc = (x - cx) ** 2 + (y - cy) ** 2 < (min(w, h) * 0.25) ** 2
    img[disc] = [230, 40, 30]
    img[(x.astype(int) // 6 + y.astype(int) // 6) % 2 == 0] *= 0.85
    return Image.fromarray(np.clip(img, 0, 255).astype(np.uint8), "RGB")


photo = Image.open("../../llava/preprocess/testdata/video-001.png").convert("RGB")  # 150x103
scene = synthetic(203, 117, 1)
sources = {"photo": photo, "scene": scene}
for k, im in sources.items():
    im.save(os.path.join(tmp, k + ".ppm"))


def cjpeg(name, src, *args):
    out = os.path.join(OUT, name + ".jpg")
    subprocess.run(["cjpeg", *args, "-outfile", out, os.path.join(tmp, src + ".ppm")], check=True)
    return out


def scans(text):
    p = os.path.join(tmp, "scans.txt")
    with open(p, "w") as f:
        f.write(text)
    return p


made = []  # (name, how)


def c(name, src, *args):
    cjpeg(name, src, *args)
    made.append((name, "cjpeg " + " ".join(args) + " " + src))


c("c-420-q75", "photo")
c("c-444", "scene", "-sample", "1x1")
c("c-422", "scene", "-sample", "2x1")
c("c-440", "scene", "-sample", "1x2")
c("c-411", "photo", "-sample", "4x1")
c("c-410", "scene", "-sample", "4x2")
c("c-luma-upsampled", "scene", "-sample", "1x1,2x2,2x2")
c("c-mixed-factors", "scene", "-sample", "2x2,2x1,1x1")
c("c-h3", "photo", "-sample", "3x1,1x1,1x1")
c("c-v3", "photo", "-sample", "1x3,1x1,1x1")
c("c-progressive", "photo", "-progressive")
c("c-progressive-444", "scene", "-progressive", "-sample", "1x1")
c("c-progressive-422-restart", "scene", "-progressive", "-sample", "2x1", "-restart", "2B")
c("c-optimize", "scene", "-optimize")
c("c-restart-row", "photo", "-restart", "1")
c("c-restart-3blocks", "scene", "-restart", "3B", "-sample", "1x1")
c("c-gray", "scene", "-grayscale")
c("c-gray-progressive", "photo", "-grayscale", "-progressive")
c("c-rgb", "scene", "-rgb")
c("c-q10", "photo", "-quality", "10")
c("c-q100", "scene", "-quality", "100")
c("c-q100-444", "photo", "-quality", "100", "-sample", "1x1")
c("c-q1-16bit-tables", "scene", "-quality", "1")
c("c-dct-float", "photo", "-dct", "float")
c("c-smooth", "scene", "-smooth", "40")
c("c-scans-sequential", "scene", "-scans", scans("0;\n1;\n2;\n"))
c("c-scans-interleaved-chroma", "scene", "-scans", scans("0;\n1 2;\n"))
c("c-scans-custom-progression", "scene", "-scans", scans(
    "0 1 2: 0-0, 0, 1;\n0: 1-5, 0, 2;\n0: 6-63, 0, 1;\n2: 1-63, 0, 0;\n1: 1-63, 0, 1;\n"
    "0 1 2: 0-0, 1, 0;\n0: 1-5, 2, 1;\n0: 1-63, 1, 0;\n1: 1-63, 1, 0;\n"))

# Sizes where the upsamplers' edge cases apply (widths of 1 or 2 chroma
# samples switch libjpeg to replication).
for w, h in [(1, 1), (2, 2), (3, 5), (4, 3), (5, 3), (17, 9), (1, 33), (33, 1)]:
    im = synthetic(w, h, w * 100 + h)
    p = os.path.join(tmp, f"s{w}x{h}.ppm")
    im.save(p)
    for sample in ["2x2", "2x1"]:
        name = f"c-{w}x{h}-{sample}"
        out = os.path.join(OUT, name + ".jpg")
        subprocess.run(["cjpeg", "-sample", sample, "-outfile", out, p], check=True)
        made.append((name, f"cjpeg -sample {sample} ({w}x{h} synthetic)"))


def pil(name, im, **kw):
    im.save(os.path.join(OUT, name + ".jpg"), "JPEG", **kw)
    made.append((name, f"Pillow save {im.mode} {kw}"))


pil("p-q90-420", scene, quality=90, subsampling=2)
pil("p-q50-422", photo, quality=50, subsampling=1)
pil("p-q95-444", scene, quality=95, subsampling=0)
pil("p-progressive-optimize", scene, quality=80, progressive=True, optimize=True)
pil("p-q10", scene, quality=10)
pil("p-cmyk", scene.convert("CMYK"), quality=90)
pil("p-cmyk-photo-q60", photo.convert("CMYK"), quality=60)
pil("p-gray", scene.convert("L"), quality=80)

# YCCK: a few lines of C against libjpeg-turbo.
exe = os.path.join(tmp, "ycck")
subprocess.run(["gcc", "-O2", "-o", exe, "ycck.c", "-ljpeg"], check=True)
subprocess.run([exe, os.path.join(OUT, "l-ycck.jpg"), "61", "37"], check=True)
made.append(("l-ycck", "ycck.c 61 37"))


# Go's own test JPEGs (BSD licence, as ../../llava/preprocess/testdata says):
# every chroma subsampling, grayscale, and an Adobe CMYK file.
import shutil
for f in ["video-001.q50.444", "video-001.q50.422", "video-001.q50.420", "video-001.q50.440",
          "video-001.q50.411", "video-001.q50.410", "video-005.gray.q50", "video-001.cmyk"]:
    shutil.copy(f"../../llava/preprocess/testdata/{f}.jpeg", os.path.join(OUT, f"go-{f}.jpg"))
    made.append((f"go-{f}", f"Go's src/image/testdata/{f}.jpeg"))


# Colour-space guessing: the same entropy-coded data with the markers that
# decide between RGB and YCbCr removed or added.
def segments(b):
    """Splits a JPEG at its markers up to SOS: [(marker, bytes)], rest."""
    out, p = [], 2
    while True:
        m = b[p + 1]
        n = b[p + 2] << 8 | b[p + 3]
        out.append((m, b[p:p + 2 + n]))
        p += 2 + n
        if m == 0xDA:
            return out, b[p:]


def rebuild(segs, rest):
    return b"\xff\xd8" + b"".join(s for _, s in segs) + rest


with open(os.path.join(OUT, "c-rgb.jpg"), "rb") as f:
    rgb = f.read()
segs, rest = segments(rgb)
no_adobe = [(m, s) for m, s in segs if m != 0xEE]
with open(os.path.join(OUT, "g-rgb-ids-no-adobe.jpg"), "wb") as f:  # ids 'R','G','B' -> RGB
    f.write(rebuild(no_adobe, rest))
made.append(("g-rgb-ids-no-adobe", "c-rgb.jpg without its APP14"))
jfif = b"\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
with open(os.path.join(OUT, "g-jfif-wins.jpg"), "wb") as f:  # JFIF -> YCbCr, whatever Adobe says
    f.write(rebuild([(0xE0, jfif)] + segs, rest))
made.append(("g-jfif-wins", "c-rgb.jpg with a JFIF APP0 added"))
with open(os.path.join(OUT, "c-444.jpg"), "rb") as f:
    ycc = f.read()
segs, rest = segments(ycc)
no_jfif = [(m, s) for m, s in segs if m != 0xE0]
with open(os.path.join(OUT, "g-no-markers-ids-123.jpg"), "wb") as f:
    f.write(rebuild(no_jfif, rest))
made.append(("g-no-markers-ids-123", "c-444.jpg without its APP0"))

# Files libjpeg-turbo decodes other than plainly, or not at all.
REFUSED = {}
cjpeg("r-arithmetic", "photo", "-arithmetic")
REFUSED["r-arithmetic"] = "arithmetic"
cjpeg("r-progression-incomplete", "scene", "-scans", scans("0 1 2: 0-0, 0, 0;\n0: 1-63, 0, 0;\n"))
REFUSED["r-progression-incomplete"] = "block smoothing"
cjpeg("r-progression-last-bit-missing", "scene", "-scans",
      scans("0 1 2: 0-0, 0, 0;\n0: 1-63, 0, 1;\n1: 1-63, 0, 0;\n2: 1-63, 0, 0;\n"))
REFUSED["r-progression-last-bit-missing"] = "block smoothing"
# 64 coefficients x 5 successive-approximation scans: a legal progression
# with more passes over the image than the decoder allows. cjpeg takes at
# most 100 scans a script, so four files' scans are spliced after one DC scan.
def after_first_scan(b):
    p = b.index(b"\xff\xda")
    p += 2 + (b[p + 2] << 8 | b[p + 3])
    while not (b[p] == 0xFF and b[p + 1] not in (0x00, 0xFF) and not 0xD0 <= b[p + 1] <= 0xD7):
        p += 1
    return p


Image.fromarray(np.asarray(synthetic(16, 16, 5).convert("L"))).save(os.path.join(tmp, "small.pgm"))
parts = []
for lo in range(1, 64, 19):
    script = "0: 0-0, 0, 0;\n" + "".join(
        f"0: {k}-{k}, 0, 4;\n" + "".join(f"0: {k}-{k}, {a}, {a - 1};\n" for a in range(4, 0, -1))
        for k in range(lo, min(lo + 19, 64)))
    out = os.path.join(tmp, f"many{lo}.jpg")
    subprocess.run(["cjpeg", "-grayscale", "-scans", scans(script), "-outfile", out,
                    os.path.join(tmp, "small.pgm")], check=True)
    with open(out, "rb") as f:
        parts.append(f.read())
spliced = parts[0][:-2] + b"".join(p[after_first_scan(p):-2] for p in parts[1:]) + b"\xff\xd9"
with open(os.path.join(OUT, "r-too-many-scans.jpg"), "wb") as f:
    f.write(spliced)
REFUSED["r-too-many-scans"] = "more than 256 scans"
with open(os.path.join(OUT, "c-420-q75.jpg"), "rb") as f:
    base = f.read()
sof = base.index(b"\xff\xc0")
b12 = bytearray(base)
b12[sof + 4] = 12
with open(os.path.join(OUT, "r-12bit.jpg"), "wb") as f:
    f.write(bytes(b12))
REFUSED["r-12bit"] = "12-bit"
lossless = bytearray(base)
lossless[sof + 1] = 0xC3
with open(os.path.join(OUT, "r-lossless.jpg"), "wb") as f:
    f.write(bytes(lossless))
REFUSED["r-lossless"] = "lossless"
with open(os.path.join(OUT, "r-truncated.jpg"), "wb") as f:
    f.write(base[: len(base) * 2 // 3])
REFUSED["r-truncated"] = "truncated"

for name, _ in made:
    im = Image.open(os.path.join(OUT, name + ".jpg"))
    im.convert("RGB").save(os.path.join(OUT, name + ".png"))
for name in REFUSED:
    try:
        Image.open(os.path.join(OUT, name + ".jpg")).convert("RGB")
        REFUSED[name] = {"error": REFUSED[name], "pillow": "decodes"}
    except Exception as e:  # noqa: BLE001 - recording what Pillow says
        REFUSED[name] = {"error": REFUSED[name], "pillow": f"{type(e).__name__}: {e}"}

with open(os.path.join(OUT, "manifest.json"), "w") as f:
    json.dump({"pillow": Image.__version__, "files": {n: h for n, h in made}, "refused": REFUSED}, f, indent=1, sort_keys=True)
print(len(made), "references,", len(REFUSED), "refused")
