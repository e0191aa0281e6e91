"""Turns the JSON lines of bench/run-peers.sh into the markdown tables of
docs/performance.md:

    python3 bench/summarize.py results.jsonl
"""
import json
import sys
from collections import defaultdict


def load(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.startswith("{")]


def fmt(v, digits=1):
    return "—" if v is None else f"{v:.{digits}f}"


def median(v):
    v = sorted(v)
    return v[len(v) // 2] if v else None


def gemm_table(rows):
    """Medians over every run of a shape. The one-row shapes are bound by a
    memory bandwidth that drifts within minutes, so their ratios are the
    medians of ours ÷ OpenBLAS over the alternating rounds of the gemv section
    (each pair measured seconds apart), not ratios of medians."""
    ours = defaultdict(lambda: defaultdict(list))   # (m,n,k) -> (threads, weights) -> [gflops]
    peer = defaultdict(lambda: defaultdict(list))   # (m,n,k) -> (threads, routine) -> [gflops]
    core = "?"
    for r in rows:
        if r["bench"] != "gemm":
            continue
        key = (r["m"], r["n"], r["k"])
        if "peer" in r:
            peer[key][(r["threads"], r["peer"].split()[-1])].append(r["gflops"])
            core = r["core"]
        else:
            ours[key][(r["threads"], r["weights"])].append(r["gflops"])
    threads = sorted({t for v in ours.values() for t, _ in v})
    out = []
    for t in threads:
        out.append(f"\n{t} thread{'s' if t > 1 else ''}, GFLOP/s (OpenBLAS kernels: {core}; for M = 1, "
                   "OpenBLAS sgemm / sgemv):\n")
        out.append("| M×N×K | ours, fp32 W | ours, fp16 W | OpenBLAS (fp32) | ours fp32 ÷ OpenBLAS | ours fp16 ÷ OpenBLAS |")
        out.append("|---|---|---|---|---|---|")
        for key in sorted(ours, key=lambda k: (-k[0], k[1], k[2])):
            o32, o16 = ours[key][(t, "F32")], ours[key][(t, "F16")]
            sg, sv = peer[key][(t, "sgemm")], peer[key][(t, "sgemv")]
            best = [max(a, b) for a, b in zip(sg, sv)] if sv else sg
            if key[0] == 1 and len(best) > 1:
                rounds = len(best) - 1  # the gemv section's rounds; the first run is the gemm section's
                r32 = median([a / b for a, b in zip(o32[-rounds:], best[-rounds:])])
                r16 = median([a / b for a, b in zip(o16[-rounds:], best[-rounds:])])
            else:
                r32 = median(o32) / median(best) if o32 and best else None
                r16 = median(o16) / median(best) if o16 and best else None
            cell = f"{fmt(median(sg))} / {fmt(median(sv))}" if key[0] == 1 else fmt(median(sg))
            out.append(f"| {key[0]}×{key[1]}×{key[2]} | {fmt(median(o32))} | {fmt(median(o16))} | {cell} | "
                       f"{fmt(r32, 2)}× | {fmt(r16, 2)}× |")
    return "\n".join(out)


def vit_table(rows):
    out = ["| threads | blocks | ours (fp16 W), s | PyTorch (fp32), s | PyTorch ÷ ours |",
           "|---|---|---|---|---|"]
    ours, peer = {}, {}
    for r in rows:
        if r["bench"] != "vit":
            continue
        key = (r["threads"], r["blocks"])
        if "peer" in r:
            peer[key] = r["median_s"]
        else:
            ours[key] = r["median_s"]
    for key in sorted(ours):
        p = peer.get(key)
        out.append(f"| {key[0]} | {key[1]} | {fmt(ours[key], 3)} | {fmt(p, 3)} | "
                   + (f"{p / ours[key]:.2f}× |" if p else "— |"))
    return "\n".join(out)


def decode_table(rows):
    """Each decode row with the STREAM runs just before and after it."""
    out = ["| threads | ms/token (4 layers) | ms/layer | LM head ms | → 32 layers ms/token (tok/s) | weights GB/s "
           "| read probe GB/s | of probe | STREAM triad / read GB/s, before · after |",
           "|---|---|---|---|---|---|---|---|---|"]
    last_stream, pending = {}, []
    for r in rows:
        if r["bench"] == "stream":
            for d in pending:
                if d["threads"] == r["threads"] and "after" not in d:
                    d["after"] = r
            last_stream[r["threads"]] = r
        elif r["bench"] == "decode":
            pending.append(dict(r, before=last_stream.get(r["threads"])))
    for d in pending:
        streams = " · ".join(f"{s['triad_gbps']:.1f} / {s['read_gbps']:.1f}"
                             for s in (d.get("before"), d.get("after")) if s)
        out.append(("| {threads} | {ms_per_token:.1f} | {ms_per_layer:.2f} | {lm_head_ms:.2f} | "
                    "{ms_per_token_32:.0f} ({tok_s_32:.2f}) | {weight_gbps:.1f} | {read_bound_gbps:.1f} | "
                    "{of_bound:.0%} | ").format(**d) + (streams or "—") + " |")
    return "\n".join(out)


def edge_table(rows):
    out = ["| K | threads | median ms | tower ms | quantize ms | GFLOP | one-core peak GFLOP/s | bound ms | × bound |",
           "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if r["bench"] == "edge":
            out.append("| {k} | {threads} | {median_ms:.1f} | {tower_ms:.1f} | {quantize_ms:.1f} | {gflop:.2f} | "
                       "{peak_gflops:.0f} | {bound_ms:.1f} | {x_bound:.2f} |".format(**r))
    return "\n".join(out)


def peak_table(rows):
    out = ["| vector | threads | register-loop FMA peak GFLOP/s |", "|---|---|---|"]
    for r in rows:
        if r["bench"] == "fmapeak":
            out.append(f"| {r['isa']} | {r['threads']} | {r['gflops']:.1f} |")
    return "\n".join(out)


def main():
    rows = load(sys.argv[1])
    for r in rows:
        if r["bench"] in ("machine", "load", "error"):
            print(f"- {r}")
    print("\n### FMA peak (bench/peers/fmapeak.c)\n\n" + peak_table(rows))
    print("\n### GEMM\n" + gemm_table(rows))
    print("\n### Vision tower\n\n" + vit_table(rows))
    print("\n### Decode\n\n" + decode_table(rows))
    print("\n### Edge head\n\n" + edge_table(rows))


if __name__ == "__main__":
    main()
