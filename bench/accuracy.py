#!/usr/bin/python3
"""Turns bench/accuracy.sh's results (one avq eval JSON report a line, with
its "config") into the tables of docs/accuracy.md and Figure 1 as an SVG:

    python3 bench/accuracy.py results.jsonl docs/accuracy-fig1.svg > tables.md

Standard library only.
"""
import json
import math
import sys

KINDS = ["how many", "what color", "where is", "is there", "what is written"]
TABLE2 = [("cloud-png", "cloud-only (PNG)"), ("jpeg-90", "JPEG-90"), ("jpeg-50", "JPEG-50"), ("jpeg-10", "JPEG-10"),
          ("vq-ffn-b0", "vanilla VQ after block 0's FFN (k-means)"),
          ("vq-ln1-b0", "VQ after block 0's LN1 (k-means, identity DLP)"),
          ("alignedvq-b0", "+ DLP (distillation)"), ("alignedvq-lora-b0", "+ DLP and LoRA (task loss)")]


def load(path):
    rows = {}
    for line in open(path):
        line = line.strip()
        if line:
            r = json.loads(line)
            rows[r["config"]] = r
    return rows


def acc(r, kind=None):
    if kind is None:
        return next(m["value"] for m in r["metrics"] if m["name"] == "accuracy")
    for g in r.get("groups", []):
        if g["kind"] == "question_type" and g["name"] == kind:
            return next(m["value"] for m in g["metrics"] if m["name"] == "accuracy")
    return float("nan")


def fmt(v):
    return "—" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.1f}"


def table2(rows):
    out = ["| sent | bytes per image | " + " | ".join(KINDS) + " | overall |",
           "|---|---:|" + "---:|" * (len(KINDS) + 1)]
    for key, name in TABLE2:
        r = rows.get(key)
        if r is None:
            out.append(f"| {name} | not measured |" + " |" * (len(KINDS) + 1))
            continue
        b = r["transfer"]["bytes_per_image"]
        out.append(f"| {name} | {b:,.0f} | " + " | ".join(fmt(acc(r, k)) for k in KINDS) + f" | **{fmt(acc(r))}** |")
    n = next(iter(rows.values()))["scored"] if rows else 0
    out.append(f"\n{n} held-out questions.")
    return "\n".join(out)


def by_block(rows):
    out = ["| block | vanilla VQ (FFN) | VQ at LN1 | AlignedVQ (LN1 + DLP) |", "|---:|---:|---:|---:|"]
    for b in range(3):
        cells = [fmt(acc(rows[k])) if k in rows else "not measured"
                 for k in (f"vq-ffn-b{b}", f"vq-ln1-b{b}", f"alignedvq-b{b}")]
        out.append(f"| {b} | " + " | ".join(cells) + " |")
    return "\n".join(out)


def by_k(rows):
    out = ["| K | bits | VQ at LN1 | AlignedVQ |", "|---:|---:|---:|---:|"]
    for k, suffix in [(256, "-k256"), (1024, "-k1024"), (4096, "")]:
        cells = [fmt(acc(rows[c])) if c in rows else "not measured" for c in (f"vq-ln1-b0{suffix}", f"alignedvq-b0{suffix}")]
        out.append(f"| {k} | {int(math.log2(k))} | " + " | ".join(cells) + " |")
    return "\n".join(out)


def figure1(rows, path):
    pts = [(rows[k]["transfer"]["bytes_per_image"], acc(rows[k]), name) for k, name in TABLE2 if k in rows]
    w, h, l, r, t, b = 720, 420, 70, 20, 40, 60
    xs = [math.log10(p[0]) for p in pts]
    x0, x1 = math.floor(min(xs)), math.ceil(max(xs))
    X = lambda v: l + (math.log10(v) - x0) / max(x1 - x0, 1) * (w - l - r)
    Y = lambda a: t + (100 - a) / 100 * (h - t - b)
    s = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="12">',
         f'<text x="{l}" y="22" font-size="15">Accuracy against bytes per image (held-out synth questions)</text>',
         f'<line x1="{l}" y1="{h - b}" x2="{w - r}" y2="{h - b}" stroke="black"/>',
         f'<line x1="{l}" y1="{t}" x2="{l}" y2="{h - b}" stroke="black"/>']
    for e in range(x0, x1 + 1):
        x = X(10 ** e)
        s.append(f'<line x1="{x:.1f}" y1="{h - b}" x2="{x:.1f}" y2="{h - b + 5}" stroke="black"/>')
        s.append(f'<text x="{x:.1f}" y="{h - b + 20}" text-anchor="middle">{10 ** e:,}</text>')
    for a in range(0, 101, 20):
        s.append(f'<text x="{l - 8}" y="{Y(a) + 4:.1f}" text-anchor="end">{a}</text>')
        s.append(f'<line x1="{l}" y1="{Y(a):.1f}" x2="{w - r}" y2="{Y(a):.1f}" stroke="#ddd"/>')
    s.append(f'<text x="{(l + w - r) / 2}" y="{h - 15}" text-anchor="middle">bytes sent per image (log scale)</text>')
    s.append(f'<text x="18" y="{(t + h - b) / 2}" transform="rotate(-90 18 {(t + h - b) / 2})" text-anchor="middle">VQA accuracy (%)</text>')
    for bytes_, a, name in pts:
        color = "#1f77b4" if "VQ" in name or "DLP" in name else "#d62728"
        s.append(f'<circle cx="{X(bytes_):.1f}" cy="{Y(a):.1f}" r="5" fill="{color}"/>')
        s.append(f'<text x="{X(bytes_) + 8:.1f}" y="{Y(a) - 6:.1f}">{name} ({a:.1f})</text>')
    s.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(s) + "\n")


def main():
    rows = load(sys.argv[1])
    print("### Table 2 in miniature (K = 4096)\n")
    print(table2(rows))
    print("\n### Figure 7: the partition block (K = 4096)\n")
    print(by_block(rows))
    print("\n### Table 4: the codebook size (block 0)\n")
    print(by_k(rows))
    if len(sys.argv) > 2:
        figure1(rows, sys.argv[2])


if __name__ == "__main__":
    main()
