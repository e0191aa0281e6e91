#!/usr/bin/env python3
"""Gradient reference for one AlignedVQ training step (package train).

From a fixed state -- the block0_ln1 fixture's codebook and residual map, and
a DLP with non-zero gates drawn here -- and two fixture images, this computes
in float64 torch, with autograd, exactly the objective of docs/alignedvq.md
("Training"):

    U     = Z_in + tanh(g_in) * Linear_in(Z_in)
    i_t   = argmin_j |U_t - e_j|^2
    Zq    = U + (e_i - U).detach()                    straight through
    Z_out = Zq + tanh(g_out) * Linear_out(Zq)
    L     = mse(student, teacher) + beta * mean_t |U_t - e_i.detach()|^2
            + mean_t |U_t.detach() - e_i|^2           (--codebook-update grad)

where the student is the tiny CLIP tower resumed from the split (residual
x = scale * Z_out + shift, blocks 0..2 as transformers' modeling_clip.py runs
them) and the teacher the unquantised tower's hidden state -2, class token
dropped; the "projector" target adds the multimodal projector
(linear_2(gelu(linear_1(f)))). It also applies one EMA codebook update
(decay 0.99, eps 1e-5, n initialised to N_b/K, m to n*e) to the batch.

Run once with Debian's python3-torch (1.13):  /usr/bin/python3 make_grads.py
It writes state.safetensors (the fixed module, alignedvq format) and
grads.safetensors. The Go tests never run it.
"""
import json
import math
import os
import struct

import numpy as np
import torch

torch.set_num_threads(1)
HERE = os.path.dirname(os.path.abspath(__file__))
TD = os.path.dirname(HERE)
IMAGES = ["square_336", "wide_640x360"]
BETA, DECAY, EPS = 0.25, 0.99, 1e-5
GAMMA_IN, GAMMA_OUT = 0.3, -0.4


def read_st(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        hdr = json.loads(f.read(n))
        data = f.read()
    out = {}
    for k, e in hdr.items():
        if k == "__metadata__":
            continue
        a, b = e["data_offsets"]
        dt = {"F32": np.float32, "U8": np.uint8, "I32": np.int32}[e["dtype"]]
        out[k] = np.frombuffer(data[a:b], dtype=dt).reshape(e["shape"])
    return out


def write_st(path, tensors, meta):
    hdr, blobs, off = {"__metadata__": meta}, [], 0
    for k, t in tensors.items():
        if t.dtype == torch.int32:
            raw, dt = t.contiguous().numpy().tobytes(), "I32"
        else:
            raw, dt = t.detach().contiguous().to(torch.float32).numpy().tobytes(), "F32"
        hdr[k] = {"dtype": dt, "shape": list(t.shape), "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    h = json.dumps(hdr, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


cfg = json.load(open(os.path.join(TD, "tiny-llava", "config.json")))
vc = cfg["vision_config"]
D, HEADS, P, S = vc["hidden_size"], vc["num_attention_heads"], vc["patch_size"], vc["image_size"]
LN_EPS = vc.get("layer_norm_eps", 1e-5)
W = {k: torch.from_numpy(v.astype(np.float64)) for k, v in read_st(os.path.join(TD, "tiny-llava", "model.safetensors")).items()
     if not k.startswith("language_model")}
V = "vision_tower.vision_model."


def ln(x, name):
    return torch.nn.functional.layer_norm(x, (D,), W[name + ".weight"], W[name + ".bias"], LN_EPS)


def lin(x, name):
    return x @ W[name + ".weight"].T + W[name + ".bias"]


def embed(px):  # CLIPVisionEmbeddings + pre_layrnorm
    x = torch.from_numpy(px.astype(np.float64)).reshape(1, 3, S, S)
    p = torch.nn.functional.conv2d(x, W[V + "embeddings.patch_embedding.weight"], stride=P)
    p = p.flatten(2).transpose(1, 2)[0]
    x = torch.cat([W[V + "embeddings.class_embedding"][None], p], 0) + W[V + "embeddings.position_embedding.weight"]
    return ln(x, V + "pre_layrnorm")


def attn(z, k):  # CLIPAttention, eager
    pre = V + f"encoder.layers.{k}.self_attn."
    t, dh = z.shape[0], D // HEADS
    q = (lin(z, pre + "q_proj") * dh ** -0.5).view(t, HEADS, dh).transpose(0, 1)
    kk = lin(z, pre + "k_proj").view(t, HEADS, dh).transpose(0, 1)
    v = lin(z, pre + "v_proj").view(t, HEADS, dh).transpose(0, 1)
    a = torch.softmax(q @ kk.transpose(1, 2), -1) @ v
    return lin(a.transpose(0, 1).reshape(t, D), pre + "out_proj")


def mlp(z, k):
    pre = V + f"encoder.layers.{k}.mlp."
    h = lin(z, pre + "fc1")
    return lin(h * torch.sigmoid(1.702 * h), pre + "fc2")


L = cfg["vision_feature_layer"] % (vc["num_hidden_layers"] + 1)  # hidden state index (3)


def tower_from_attn0(x, z):
    """Block 0 from its attention on (x the residual, z = LN1 output), then to hidden state L."""
    x = x + attn(z, 0)
    x = x + mlp(ln(x, V + "encoder.layers.0.layer_norm2"), 0)
    for k in range(1, L):
        pre = V + f"encoder.layers.{k}."
        x = x + attn(ln(x, pre + "layer_norm1"), k)
        x = x + mlp(ln(x, pre + "layer_norm2"), k)
    return x[1:]


def project(f):
    h = f @ W["multi_modal_projector.linear_1.weight"].T + W["multi_modal_projector.linear_1.bias"]
    h = 0.5 * h * (1 + torch.erf(h / math.sqrt(2)))
    return h @ W["multi_modal_projector.linear_2.weight"].T + W["multi_modal_projector.linear_2.bias"]


# ---- the fixed state
mod = {k: torch.from_numpy(v.astype(np.float64)) for k, v in read_st(os.path.join(TD, "vq", "block0_ln1", "alignedvq.safetensors")).items()}
g = torch.Generator().manual_seed(20261202)
bound = 1 / math.sqrt(D)
state = {"codebook": mod["codebook"]}
for side, gamma in (("dlp_in", GAMMA_IN), ("dlp_out", GAMMA_OUT)):
    state[side + ".weight"] = (torch.rand(D, D, generator=g, dtype=torch.float64) * 2 - 1) * bound
    state[side + ".bias"] = (torch.rand(D, generator=g, dtype=torch.float64) * 2 - 1) * bound
    state[side + ".gamma"] = torch.tensor([gamma], dtype=torch.float64)
state["residual.scale"], state["residual.shift"] = mod["residual.scale"], mod["residual.shift"]
# the Go side reads fp32 values: compute from exactly those
state = {k: v.to(torch.float32).to(torch.float64) for k, v in state.items()}
write_st(os.path.join(HERE, "state.safetensors"), state, {"format": "alignedvq", "version": "1", "block": "0", "site": "ln1"})

pix = read_st(os.path.join(TD, "ref", "images.safetensors"))
zins, teach, proj = [], [], []
with torch.no_grad():
    for img in IMAGES:
        x0 = embed(pix[img + ".pixel_values.pad"])
        z = ln(x0, V + "encoder.layers.0.layer_norm1")
        f = tower_from_attn0(x0, z)
        zins.append(z)
        teach.append(f)
        proj.append(project(f))

out = {}
for target in ("features", "projector"):
    p = {k: v.clone().requires_grad_(True) for k, v in state.items() if not k.startswith("residual")}
    gin, gout = torch.tanh(p["dlp_in.gamma"]), torch.tanh(p["dlp_out.gamma"])
    mse = commit = cbloss = 0
    idx_all, margins, us = [], [], []
    for b, z in enumerate(zins):
        u = z + gin * (z @ p["dlp_in.weight"].T + p["dlp_in.bias"])
        with torch.no_grad():
            u32 = u.to(torch.float32).to(torch.float64)
            cb = p["codebook"]
            score = (cb * cb).sum(1)[None] - 2 * u32 @ cb.T
            top = torch.topk(score, 2, largest=False)
            idx = top.indices[:, 0]
            margins.append((top.values[:, 1] - top.values[:, 0]) / top.values[:, 0].abs().clamp_min(1e-30))
        e = p["codebook"][idx]
        zq = u + (e - u).detach()
        zout = zq + gout * (zq @ p["dlp_out.weight"].T + p["dlp_out.bias"])
        x = zout * state["residual.scale"] + state["residual.shift"]
        y = tower_from_attn0(x, zout)
        t = teach[b]
        if target == "projector":
            y, t = project(y), proj[b]
        mse = mse + ((y - t) ** 2).mean() / len(zins)
        n_tok = z.shape[0] * len(zins)
        commit = commit + ((u - e.detach()) ** 2).sum() / n_tok
        cbloss = cbloss + ((u.detach() - e) ** 2).sum() / n_tok
        idx_all.append(idx)
        us.append(u.detach())
    loss = mse + BETA * commit + cbloss
    loss.backward()
    out[target + ".loss_ema"] = torch.tensor([float(mse + BETA * commit)])
    out[target + ".loss_grad"] = torch.tensor([float(loss)])
    out[target + ".distill"] = torch.tensor([float(mse)])
    out[target + ".commit"] = torch.tensor([float(commit)])
    for k, v in p.items():
        out[target + ".grad." + k] = v.grad
    out["indices"] = torch.stack(idx_all).to(torch.int32)
    min_margin = float(torch.cat(margins).min())
    # no near tie (the spec: two best scores within 1e-5·|s_best|), so fp32 picks the same codes
    assert min_margin > 1e-5, f"near tie in the fixed state: relative margin {min_margin}"

# ---- one EMA update over the batch's U and codes, from n = N_b/K, m = n*e
cb = state["codebook"]
K = cb.shape[0]
U = torch.cat(us)
I = out["indices"].reshape(-1).long()
n0 = U.shape[0] / K
n = torch.full((K,), n0, dtype=torch.float64)
m = n0 * cb
count = torch.bincount(I, minlength=K).to(torch.float64)
s = torch.zeros_like(cb).index_add_(0, I, U)
n = DECAY * n + (1 - DECAY) * count
m = DECAY * m + (1 - DECAY) * s
tot = n.sum()
out["ema.codebook"] = m / ((n + EPS) / (tot + K * EPS) * tot)[:, None]
out["ema.n"] = n
write_st(os.path.join(HERE, "grads.safetensors"), out, {"format": "pt", "generator": "testdata/train/make_grads.py",
        "torch": torch.__version__, "beta": str(BETA), "min_relative_margin": f"{min_margin:.3g}"})
print("min relative margin", min_margin, {k: float(v.norm()) for k, v in out.items() if ".grad." in k})

# ---- the task objective: one answer's cross-entropy through the decoder with
# a LoRA on every Linear (rank 2, alpha 4), from the same module state on the
# first image; token ids fixed here (the Go test feeds the same ids).
tc = cfg["text_config"]
H, LH, LKV, LI = tc["hidden_size"], tc["num_attention_heads"], tc.get("num_key_value_heads", tc["num_attention_heads"]), tc["intermediate_size"]
HD, RMS_EPS, THETA = H // LH, tc.get("rms_norm_eps", 1e-6), tc.get("rope_theta", 10000.0)
WL = {k[len("language_model."):]: torch.from_numpy(v.astype(np.float64))
      for k, v in read_st(os.path.join(TD, "tiny-llava", "model.safetensors")).items() if k.startswith("language_model.")}
RANK, ALPHA = 2, 4.0
PROJS = [("self_attn", "q_proj"), ("self_attn", "k_proj"), ("self_attn", "v_proj"), ("self_attn", "o_proj"),
         ("mlp", "gate_proj"), ("mlp", "up_proj"), ("mlp", "down_proj")]
lora = {}
for i in range(tc["num_hidden_layers"]):
    for blk, proj in PROJS:
        w = WL[f"model.layers.{i}.{blk}.{proj}.weight"]
        name = f"language_model.model.layers.{i}.{blk}.{proj}"
        a = ((torch.rand(RANK, w.shape[1], generator=g, dtype=torch.float64) * 2 - 1) / math.sqrt(w.shape[1])).to(torch.float32).to(torch.float64)
        b = ((torch.rand(w.shape[0], RANK, generator=g, dtype=torch.float64) * 2 - 1) * 0.05).to(torch.float32).to(torch.float64)
        lora[name] = (a, b)
os.makedirs(os.path.join(HERE, "task_adapter"), exist_ok=True)
json.dump({"peft_type": "LORA", "task_type": "CAUSAL_LM", "r": RANK, "lora_alpha": ALPHA,
           "target_modules": [p for _, p in PROJS], "lora_dropout": 0.0, "bias": "none", "fan_in_fan_out": False,
           "use_rslora": False, "use_dora": False, "inference_mode": True, "base_model_name_or_path": "tiny-llava"},
          open(os.path.join(HERE, "task_adapter", "adapter_config.json"), "w"), indent=2)
ad = {}
for name, (a, b) in lora.items():
    ad[f"base_model.model.{name}.lora_A.weight"] = a
    ad[f"base_model.model.{name}.lora_B.weight"] = b
write_st(os.path.join(HERE, "task_adapter", "adapter_model.safetensors"), ad, {"format": "pt"})

# rotary tables as LlamaRotaryEmbedding makes them (fp32 angles), stored fp32
inv = (1.0 / (THETA ** (torch.arange(0, HD, 2, dtype=torch.int64).float() / HD)))
IDS = [1, 319, 13563, 1546, 263, 12758, 29901, 32000, 13, 5618, 338, 297, 278, 1967, 29973, 319, 1799, 9047, 13566, 29901,
       450, 1967, 3697, 263, 6862, 29889, 2]
PROMPT = 20  # ids[:PROMPT] is the prompt, the rest the answer (EOS last)


def rms(x, w):
    return x * torch.rsqrt((x * x).mean(-1, keepdim=True) + RMS_EPS) * w


def rope(x, nheads, cos, sin):
    t = x.shape[0]
    x = x.view(t, nheads, HD)
    x1, x2 = x[..., :HD // 2], x[..., HD // 2:]
    rot = torch.cat([-x2, x1], -1)
    return (x * cos[:, None] + rot * sin[:, None]).reshape(t, nheads * HD)


def llin(x, i, blk, proj, lp):
    name = f"language_model.model.layers.{i}.{blk}.{proj}"
    a, b = lp[name + ".A"], lp[name + ".B"]
    return x @ WL[f"model.layers.{i}.{blk}.{proj}.weight"].T + ALPHA / RANK * (x @ a.T) @ b.T


p = {k: v.clone().requires_grad_(True) for k, v in state.items() if not k.startswith("residual")}
lp = {}
for name, (a, b) in lora.items():
    lp[name + ".A"], lp[name + ".B"] = a.clone().requires_grad_(True), b.clone().requires_grad_(True)
gin, gout = torch.tanh(p["dlp_in.gamma"]), torch.tanh(p["dlp_out.gamma"])
z = zins[0]
u = z + gin * (z @ p["dlp_in.weight"].T + p["dlp_in.bias"])
with torch.no_grad():
    cb = p["codebook"]
    idx = ((cb * cb).sum(1)[None] - 2 * u.to(torch.float32).to(torch.float64) @ cb.T).argmin(1)
e = p["codebook"][idx]
zq = u + (e - u).detach()
zout = zq + gout * (zq @ p["dlp_out.weight"].T + p["dlp_out.bias"])
img = project(tower_from_attn0(zout * state["residual.scale"] + state["residual.shift"], zout))
at = IDS.index(32000)
emb = WL["model.embed_tokens.weight"]
x = torch.cat([emb[IDS[:at]], img, emb[IDS[at + 1:]]], 0)
T = x.shape[0]
pos = torch.arange(T, dtype=torch.float32)
ang = (pos[:, None] * inv[None]).to(torch.float32)
ang = torch.cat([ang, ang], -1).to(torch.float64)
cos = torch.cos(ang).to(torch.float32).to(torch.float64)
sin = torch.sin(ang).to(torch.float32).to(torch.float64)
mask = torch.full((T, T), float("-inf"), dtype=torch.float64).triu(1)
for i in range(tc["num_hidden_layers"]):
    pre = f"model.layers.{i}."
    xn = rms(x, WL[pre + "input_layernorm.weight"])
    q = rope(llin(xn, i, "self_attn", "q_proj", lp), LH, cos, sin).view(T, LH, HD).transpose(0, 1)
    k = rope(llin(xn, i, "self_attn", "k_proj", lp), LKV, cos, sin).view(T, LKV, HD).transpose(0, 1)
    v = llin(xn, i, "self_attn", "v_proj", lp).view(T, LKV, HD).transpose(0, 1)
    k, v = k.repeat_interleave(LH // LKV, 0), v.repeat_interleave(LH // LKV, 0)
    a = torch.softmax(q @ k.transpose(1, 2) / math.sqrt(HD) + mask, -1) @ v
    x = x + llin(a.transpose(0, 1).reshape(T, LH * HD), i, "self_attn", "o_proj", lp)
    hn = rms(x, WL[pre + "post_attention_layernorm.weight"])
    gg = llin(hn, i, "mlp", "gate_proj", lp)
    x = x + llin(gg * torch.sigmoid(gg) * llin(hn, i, "mlp", "up_proj", lp), i, "mlp", "down_proj", lp)
x = rms(x, WL["model.norm.weight"])
logits = x @ WL["lm_head.weight"].T
p0 = PROMPT - 1 + img.shape[0]
want = torch.tensor(IDS[PROMPT:])
ce = torch.nn.functional.cross_entropy(logits[p0 - 1:p0 - 1 + len(want)], want)
ntok = z.shape[0]
commit = ((u - e.detach()) ** 2).sum() / ntok
loss = ce + BETA * commit
loss.backward()
tout = {"ids": torch.tensor(IDS, dtype=torch.int32), "prompt": torch.tensor([PROMPT], dtype=torch.int32),
        "ce": torch.tensor([float(ce)]), "commit": torch.tensor([float(commit)]), "loss": torch.tensor([float(loss)])}
for k, v in p.items():
    if k != "codebook":
        tout["grad." + k] = v.grad
for k, v in lp.items():
    tout["grad." + k[:-2] + (".lora_A.weight" if k.endswith(".A") else ".lora_B.weight")] = v.grad
write_st(os.path.join(HERE, "task_grads.safetensors"), tout, {"format": "pt", "generator": "testdata/train/make_grads.py", "torch": torch.__version__})
print("task: ce", float(ce), "commit", float(commit))
