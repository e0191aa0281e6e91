"""Peer harness: the CLIP ViT-L/14-336 vision tower forward in PyTorch (CPU,
fp32, random weights, batch 1), the shape `avq bench vit` measures.

Not part of the Go build; bench/run-peers.sh runs it with Debian's
python3-torch:

    OMP_NUM_THREADS=T OPENBLAS_NUM_THREADS=T /usr/bin/python3 vit_torch.py T

The model is plain torch.nn, written to match transformers' CLIPVisionModel
op for op: Conv2d patch embedding (no bias), class token, position
embedding, pre_layrnorm, then pre-LN blocks (LayerNorm, q/k/v/out
projections with bias, 16 heads, softmax(q·kᵀ/8)·v, LayerNorm, fc1,
quick_gelu, fc2). hidden_states[-2] (23 blocks, what LLaVA-1.5 uses) and the
full 24 are timed: the median of at least 3 calls and 5 s, after one
warm-up. Prints one JSON object per line, fields named as avq bench vit
--json names them.
"""
import ctypes
import json
import sys
import time

import torch
import torch.nn.functional as F
from torch import nn

D, HEADS, FF, LAYERS, PATCH, IMAGE = 1024, 16, 4096, 24, 14, 336
TOKENS = (IMAGE // PATCH) ** 2 + 1


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(D), nn.LayerNorm(D)
        self.q, self.k, self.v, self.o = (nn.Linear(D, D) for _ in range(4))
        self.fc1, self.fc2 = nn.Linear(D, FF), nn.Linear(FF, D)

    def forward(self, x):
        t, hd = x.shape[1], D // HEADS
        y = self.ln1(x)
        q, k, v = (p(y).view(1, t, HEADS, hd).transpose(1, 2) for p in (self.q, self.k, self.v))
        a = torch.softmax((q * hd**-0.5) @ k.transpose(-1, -2), dim=-1) @ v
        x = x + self.o(a.transpose(1, 2).reshape(1, t, D))
        y = self.fc1(self.ln2(x))
        y = y * torch.sigmoid(1.702 * y)  # quick_gelu
        return x + self.fc2(y)


class Tower(nn.Module):
    def __init__(self):
        super().__init__()
        self.patch = nn.Conv2d(3, D, PATCH, PATCH, bias=False)
        self.cls = nn.Parameter(torch.randn(1, 1, D))
        self.pos = nn.Parameter(torch.randn(1, TOKENS, D) * 0.02)
        self.pre = nn.LayerNorm(D)
        self.blocks = nn.ModuleList(Block() for _ in range(LAYERS))

    def forward(self, img, blocks):
        x = self.patch(img).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls.expand(1, -1, -1), x], 1) + self.pos
        x = self.pre(x)
        for b in self.blocks[:blocks]:
            x = b(x)
        return x


def gflop(blocks):
    t = TOKENS
    patch = 2 * (t - 1) * D * 3 * PATCH * PATCH
    return (patch + blocks * (4 * 2 * t * D * D + 2 * 2 * t * D * FF + 2 * 2 * t * t * D)) / 1e9


def blas_core():
    """The kernels OpenBLAS chose (Debian's torch calls it through libblas.so.3)."""
    try:
        lib = ctypes.CDLL("libblas.so.3")
        lib.openblas_get_corename.restype = ctypes.c_char_p
        return lib.openblas_get_corename().decode()
    except (OSError, AttributeError):
        return "not OpenBLAS"


def measure(f, min_reps=3, min_total=5.0):
    f()
    ts = []
    while len(ts) < min_reps or sum(ts) < min_total:
        t0 = time.perf_counter()
        f()
        ts.append(time.perf_counter() - t0)
    ts.sort()
    return ts


def main():
    threads = int(sys.argv[1]) if len(sys.argv) > 1 else 1
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = Tower().eval()
    img = torch.randn(1, 3, IMAGE, IMAGE)
    with torch.inference_mode():
        for blocks in (LAYERS - 1, LAYERS):
            ts = measure(lambda: model(img, blocks))
            med = ts[len(ts) // 2]
            print(json.dumps({
                "bench": "vit", "peer": f"pytorch {torch.__version__}", "shape": "vit-l-336",
                "blas_core": blas_core(),
                "blocks": blocks, "threads": threads, "weights": "F32", "reps": len(ts),
                "median_s": round(med, 4), "min_s": round(ts[0], 4),
                "ms_per_block": round(med / blocks * 1e3, 2), "gflop": round(gflop(blocks), 1),
                "gflops": round(gflop(blocks) / med, 1),
            }), flush=True)


if __name__ == "__main__":
    main()
