#!/usr/bin/env python3
"""Reference for a LLaVA checkpoint the transformers fixtures do not cover.

The fixtures in ../ref were made by transformers 4.40.2 and all use plain
multi-head attention, F32/F16 weights, one shard, the llava-hf names of
transformers <= 4.44 and an adapter with one rank. This script builds a tiny
random LLaVA with what real checkpoints also bring -- grouped-query attention
(4 query heads on 2 key/value heads), BF16 weights, two safetensors shards
behind an index, the newer transformers names (model.language_model.*,
model.vision_tower.*, model.multi_modal_projector.*, lm_head.*), a non-default
rope_theta and rms_norm_eps, a CLIP tower with exact-erf "gelu", and a PEFT
LoRA with rslora scaling and a rank_pattern -- and computes its reference
outputs in float32 torch, following transformers' modeling_clip.py,
modeling_llava.py and modeling_llama.py (4.40.2) operation for operation:
the BF16 weights are upcast exactly, as from_pretrained(torch_dtype=float32)
does, and the LoRA is applied unmerged, x W^T + s (x A^T) B^T, as PEFT does.

Run once with Debian's python3-torch (1.13):  /usr/bin/python3 make_gqa.py
It writes model/ (the checkpoint; tokenizer files are copied from
../tiny-llava), lora/ (the adapter) and ref.safetensors + ref.json. The Go
tests never run it.
"""
import json
import math
import os
import shutil
import struct

import numpy as np
import torch

torch.manual_seed(20261126)
torch.set_num_threads(1)
HERE = os.path.dirname(os.path.abspath(__file__))
TD = os.path.dirname(HERE)

VISION = dict(hidden_size=48, intermediate_size=96, num_hidden_layers=3, num_attention_heads=3,
              image_size=336, patch_size=14, hidden_act="gelu", layer_norm_eps=1e-5,
              model_type="clip_vision_model", projection_dim=32)
TEXT = dict(hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=2, rms_norm_eps=1e-6, rope_theta=500000.0, vocab_size=32064,
            max_position_embeddings=2048, model_type="llama")
LORA = dict(peft_type="LORA", r=4, lora_alpha=8, use_rslora=True, rank_pattern={"down_proj": 2},
            alpha_pattern={}, target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
            lora_dropout=0.0, bias="none", fan_in_fan_out=False, task_type="CAUSAL_LM", use_dora=False)

def bf16(t):
    """Round to bfloat16 and back: the values the checkpoint stores."""
    return t.to(torch.bfloat16).to(torch.float32)

def randn(*shape, std=0.08):
    return bf16(torch.randn(*shape) * std)

# ---- weights (canonical llava-hf names in memory; written with the new ones)
W = {}
D, I, P = VISION["hidden_size"], VISION["intermediate_size"], VISION["patch_size"]
T = (VISION["image_size"] // P) ** 2 + 1
v = "vision_tower.vision_model."
W[v + "embeddings.class_embedding"] = randn(D)
W[v + "embeddings.patch_embedding.weight"] = randn(D, 3, P, P)
W[v + "embeddings.position_embedding.weight"] = randn(T, D)
for n in ("pre_layrnorm", "post_layernorm"):
    W[v + n + ".weight"] = bf16(1 + torch.randn(D) * 0.2)
    W[v + n + ".bias"] = randn(D, std=0.1)
for l in range(VISION["num_hidden_layers"]):
    p = v + f"encoder.layers.{l}."
    for n in ("q_proj", "k_proj", "v_proj", "out_proj"):
        W[p + f"self_attn.{n}.weight"] = randn(D, D)
        W[p + f"self_attn.{n}.bias"] = randn(D, std=0.04)
    for n in ("layer_norm1", "layer_norm2"):
        W[p + n + ".weight"] = bf16(1 + torch.randn(D) * 0.2)
        W[p + n + ".bias"] = randn(D, std=0.1)
    W[p + "mlp.fc1.weight"], W[p + "mlp.fc1.bias"] = randn(I, D), randn(I, std=0.04)
    W[p + "mlp.fc2.weight"], W[p + "mlp.fc2.bias"] = randn(D, I), randn(D, std=0.04)
H, HI, V = TEXT["hidden_size"], TEXT["intermediate_size"], TEXT["vocab_size"]
NH, NKV = TEXT["num_attention_heads"], TEXT["num_key_value_heads"]
HD = H // NH
W["multi_modal_projector.linear_1.weight"], W["multi_modal_projector.linear_1.bias"] = randn(H, D), randn(H, std=0.04)
W["multi_modal_projector.linear_2.weight"], W["multi_modal_projector.linear_2.bias"] = randn(H, H), randn(H, std=0.04)
m = "language_model.model."
W[m + "embed_tokens.weight"] = randn(V, H)
W[m + "norm.weight"] = bf16(1 + torch.randn(H) * 0.2)
W["language_model.lm_head.weight"] = randn(V, H, std=0.5)
for l in range(TEXT["num_hidden_layers"]):
    p = m + f"layers.{l}."
    W[p + "self_attn.q_proj.weight"] = randn(NH * HD, H)
    W[p + "self_attn.k_proj.weight"] = randn(NKV * HD, H)
    W[p + "self_attn.v_proj.weight"] = randn(NKV * HD, H)
    W[p + "self_attn.o_proj.weight"] = randn(H, NH * HD)
    W[p + "mlp.gate_proj.weight"], W[p + "mlp.up_proj.weight"] = randn(HI, H), randn(HI, H)
    W[p + "mlp.down_proj.weight"] = randn(H, HI)
    W[p + "input_layernorm.weight"] = bf16(1 + torch.randn(H) * 0.2)
    W[p + "post_attention_layernorm.weight"] = bf16(1 + torch.randn(H) * 0.2)

# LoRA on every LLaMA linear; rank 2 for down_proj (rank_pattern), else 4.
A, B, S = {}, {}, {}
for l in range(TEXT["num_hidden_layers"]):
    for n, (out_f, in_f) in {"self_attn.q_proj": (NH * HD, H), "self_attn.k_proj": (NKV * HD, H),
                             "self_attn.v_proj": (NKV * HD, H), "self_attn.o_proj": (H, NH * HD),
                             "mlp.gate_proj": (HI, H), "mlp.up_proj": (HI, H), "mlp.down_proj": (H, HI)}.items():
        mod = m + f"layers.{l}.{n}"
        r = 2 if n.endswith("down_proj") else 4
        A[mod], B[mod] = randn(r, in_f, std=0.1), randn(out_f, r, std=0.1)
        S[mod] = LORA["lora_alpha"] / math.sqrt(r)

def new_name(k):
    """transformers >= 4.45 naming."""
    for a, b in (("language_model.model.", "model.language_model."), ("language_model.lm_head.", "lm_head."),
                 ("vision_tower.", "model.vision_tower."), ("multi_modal_projector.", "model.multi_modal_projector.")):
        if k.startswith(a):
            return b + k[len(a):]
    raise KeyError(k)

# ---- the forward pass, as transformers computes it in float32
def linear(x, name, lora=False):
    y = x @ W[name + ".weight"].T
    if name + ".bias" in W:
        y = y + W[name + ".bias"]
    if lora and name in A:
        y = y + (x @ A[name].T) @ B[name].T * S[name]
    return y

def layer_norm(x, name, eps):
    return torch.nn.functional.layer_norm(x, (x.shape[-1],), W[name + ".weight"], W[name + ".bias"], eps)

def clip(pixels):
    eps = VISION["layer_norm_eps"]
    w = W[v + "embeddings.patch_embedding.weight"]
    patches = torch.nn.functional.conv2d(pixels, w, stride=P).flatten(2).transpose(1, 2)[0]
    x = torch.cat([W[v + "embeddings.class_embedding"][None], patches]) + W[v + "embeddings.position_embedding.weight"]
    x = layer_norm(x, v + "pre_layrnorm", eps)
    states = [x]
    nh, hd = VISION["num_attention_heads"], D // VISION["num_attention_heads"]
    for l in range(VISION["num_hidden_layers"]):
        p = v + f"encoder.layers.{l}."
        h = layer_norm(x, p + "layer_norm1", eps)
        q = linear(h, p + "self_attn.q_proj") * hd ** -0.5
        k, vv = linear(h, p + "self_attn.k_proj"), linear(h, p + "self_attn.v_proj")
        q, k, vv = (t.view(T, nh, hd).transpose(0, 1) for t in (q, k, vv))
        a = torch.softmax(q @ k.transpose(1, 2), dim=-1) @ vv
        x = x + linear(a.transpose(0, 1).reshape(T, D), p + "self_attn.out_proj")
        h = layer_norm(x, p + "layer_norm2", eps)
        x = x + linear(torch.nn.functional.gelu(linear(h, p + "mlp.fc1")), p + "mlp.fc2")
        states.append(x)
    return states

def rms_norm(x, name):
    var = x.pow(2).mean(-1, keepdim=True)
    return W[name + ".weight"] * (x * torch.rsqrt(var + TEXT["rms_norm_eps"]))

inv_freq = 1.0 / (TEXT["rope_theta"] ** (torch.arange(0, HD, 2, dtype=torch.int64).float() / HD))

def rope(x, pos):  # x [heads, T, HD]
    freqs = pos[:, None].float() * inv_freq[None, :]
    emb = torch.cat([freqs, freqs], dim=-1)
    cos, sin = emb.cos(), emb.sin()
    rot = torch.cat([-x[..., HD // 2:], x[..., :HD // 2]], dim=-1)
    return x * cos + rot * sin

def llama(embeds):
    """All positions, no cache: the logits of every position."""
    n = embeds.shape[0]
    pos = torch.arange(n)
    x = embeds
    mask = torch.full((n, n), float("-inf")).triu(1)
    for l in range(TEXT["num_hidden_layers"]):
        p = m + f"layers.{l}."
        h = rms_norm(x, p + "input_layernorm")
        q = linear(h, p + "self_attn.q_proj", True).view(n, NH, HD).transpose(0, 1)
        k = linear(h, p + "self_attn.k_proj", True).view(n, NKV, HD).transpose(0, 1)
        vv = linear(h, p + "self_attn.v_proj", True).view(n, NKV, HD).transpose(0, 1)
        q, k = rope(q, pos), rope(k, pos)
        k, vv = k.repeat_interleave(NH // NKV, dim=0), vv.repeat_interleave(NH // NKV, dim=0)
        s = q @ k.transpose(1, 2) / math.sqrt(HD) + mask
        a = torch.softmax(s.float(), dim=-1) @ vv
        x = x + linear(a.transpose(0, 1).reshape(n, NH * HD), p + "self_attn.o_proj", True)
        h = rms_norm(x, p + "post_attention_layernorm")
        g = torch.nn.functional.silu(linear(h, p + "mlp.gate_proj", True))
        x = x + linear(g * linear(h, p + "mlp.up_proj", True), p + "mlp.down_proj", True)
    return linear(rms_norm(x, m + "norm"), "language_model.lm_head")

# ---- safetensors I/O (the format is small; no package needed)
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

def write_st(path, tensors):
    hdr, blobs, off = {"__metadata__": {"format": "pt"}}, [], 0
    for k, t in tensors.items():
        if t.dtype == torch.bfloat16:
            raw, dt = t.contiguous().view(torch.int16).numpy().tobytes(), "BF16"
        elif t.dtype == torch.int32:
            raw, dt = t.contiguous().numpy().tobytes(), "I32"
        else:
            raw, dt = t.contiguous().to(torch.float32).numpy().tobytes(), "F32"
        hdr[k] = {"dtype": dt, "shape": list(t.shape), "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    h = json.dumps(hdr, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))

# ---- write the checkpoint, two BF16 shards behind an index, new names
os.makedirs(os.path.join(HERE, "model"), exist_ok=True)
names = sorted(W)
half = len(names) // 2
weight_map = {}
for i, part in enumerate((names[:half], names[half:])):
    fn = f"model-{i + 1:05d}-of-00002.safetensors"
    write_st(os.path.join(HERE, "model", fn), {new_name(k): W[k].to(torch.bfloat16) for k in part})
    weight_map.update({new_name(k): fn for k in part})
total = sum(W[k].numel() * 2 for k in names)
with open(os.path.join(HERE, "model", "model.safetensors.index.json"), "w") as f:
    json.dump({"metadata": {"total_size": total}, "weight_map": weight_map}, f, indent=2)
config = {"architectures": ["LlavaForConditionalGeneration"], "model_type": "llava", "image_token_index": 32000,
          "pad_token_id": 32001, "projector_hidden_act": "gelu", "vision_feature_layer": -2,
          "vision_feature_select_strategy": "default", "tie_word_embeddings": False, "torch_dtype": "bfloat16",
          "text_config": TEXT, "vision_config": VISION}
with open(os.path.join(HERE, "model", "config.json"), "w") as f:
    json.dump(config, f, indent=2)
for fn in ("tokenizer.model", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json",
           "preprocessor_config.json", "generation_config.json"):
    shutil.copy(os.path.join(TD, "tiny-llava", fn), os.path.join(HERE, "model", fn))

os.makedirs(os.path.join(HERE, "lora"), exist_ok=True)
write_st(os.path.join(HERE, "lora", "adapter_model.safetensors"),
         {"base_model.model." + new_name(mod + ".weight")[:-7] + f".lora_{ab}.weight": t[mod].to(torch.bfloat16)
          for mod in sorted(A) for ab, t in (("A", A), ("B", B))})
with open(os.path.join(HERE, "lora", "adapter_config.json"), "w") as f:
    json.dump(LORA, f, indent=2)

# ---- reference outputs: the tiny-llava prompt ids of two fixture cases
cases = {c["name"]: c for c in json.load(open(os.path.join(TD, "ref", "tiny-llava", "cases.json")))["cases"]}
images = read_st(os.path.join(TD, "ref", "images.safetensors"))
ref, meta = {}, {"cases": []}
with torch.no_grad():
    for name in ("square_336.p1.pad", "tall_200x500.p3.pad"):
        c = cases[name]
        px = torch.from_numpy(images[c["image"] + ".pixel_values.pad"].copy())
        states = clip(px)
        selected = states[-2][1:]
        proj = linear(torch.nn.functional.gelu(linear(selected, "multi_modal_projector.linear_1")), "multi_modal_projector.linear_2")
        ids = c["input_ids"]
        at = ids.index(32000)
        emb = W[m + "embed_tokens.weight"]
        seq = torch.cat([emb[ids[:at]], proj, emb[ids[at + 1:]]])
        gen = []
        for step in range(24):
            logits = llama(seq)[-1]
            if step == 0:
                ref[c["image"] + ".logits_last"] = logits
            top2 = torch.topk(logits, 2).values
            tok = int(torch.argmax(logits))
            gen.append((tok, float(top2[0] - top2[1])))
            if tok == 2:
                break
            seq = torch.cat([seq, emb[tok][None]])
        ref[c["image"] + ".selected"] = selected
        ref[c["image"] + ".projector"] = proj
        meta["cases"].append({"name": name, "image": c["image"], "question": c["question"], "input_ids": ids,
                              "generated_ids": [g[0] for g in gen],
                              "min_step_margin": min(g[1] for g in gen)})
write_st(os.path.join(HERE, "ref.safetensors"), ref)
meta["note"] = "float32 torch reference of make_gqa.py; LoRA applied unmerged; no-cache greedy loop"
with open(os.path.join(HERE, "ref.json"), "w") as f:
    json.dump(meta, f, indent=1)
print(json.dumps([{k: c[k] for k in ("name", "generated_ids", "min_step_margin")} for c in meta["cases"]]))
