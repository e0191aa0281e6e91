#!/usr/bin/python3
"""Trains avq-shapes, a small LLaVA-1.5 (CLIP ViT-336/14 + 2-layer GELU MLP
projector + LLaMA, vicuna_v1 template, the LLaMA SentencePiece tokenizer)
from scratch on an `avq synth` set, and writes it in the llava-hf layout.

Run once (Debian's python3-torch 1.13 and python3-pil; the Go tests never
run this):

    avq synth --seed 1001 --count 6000 --out /data/train
    go run tokenize.go /data/train ../tiny-llava 3 /data/train/tokens.json
    ./train.py /data/train /data/train/tokens.json OUT_DIR [MINUTES [INIT.safetensors [PEAK_LR]]]

The model follows transformers' LlavaForConditionalGeneration as avq
implements it: CLIP with pre_layrnorm, the features of the second-to-last
layer without the CLS token, the projector, and the image token (32000)
replaced by the 576 projected features. Training sees every scene's
questions as one multi-turn conversation (answers, "</s>" included, are
the only tokens learned, as LLaVA trains), plus auxiliary heads on the
vision features that are not part of the checkpoint: the object count,
each (colour, shape) pair's presence, and the code's characters, meant to
give the vision tower dense targets. README.md says how far this recipe
got: not yet far enough to ship a checkpoint.
"""
import json
import math
import os
import struct
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from PIL import Image

torch.manual_seed(0)
np.random.seed(0)
torch.set_num_threads(2)

V = dict(hidden=128, inter=512, layers=4, heads=4)  # the last layer is unused (feature layer -2)
T = dict(hidden=128, inter=344, layers=2, heads=4, vocab=32064)
MEAN = torch.tensor([0.48145466, 0.4578275, 0.40821073]).view(1, 3, 1, 1)
STD = torch.tensor([0.26862954, 0.26130258, 0.27577711]).view(1, 3, 1, 1)
SHAPES = ["circle", "square", "triangle", "diamond", "star"]
COLORS = ["red", "green", "blue", "yellow", "purple", "orange"]
ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
IMAGE_TOKEN = 32000


class CLIPLayer(nn.Module):
    def __init__(self, d, inter, heads):
        super().__init__()
        self.heads = heads
        self.layer_norm1 = nn.LayerNorm(d, eps=1e-5)
        self.layer_norm2 = nn.LayerNorm(d, eps=1e-5)
        self.q_proj, self.k_proj, self.v_proj, self.out_proj = (nn.Linear(d, d) for _ in range(4))
        self.fc1, self.fc2 = nn.Linear(d, inter), nn.Linear(inter, d)

    def forward(self, x):
        b, n, d = x.shape
        h = self.layer_norm1(x)
        hd = d // self.heads
        q = self.q_proj(h).view(b, n, self.heads, hd).transpose(1, 2) * hd ** -0.5
        k = self.k_proj(h).view(b, n, self.heads, hd).transpose(1, 2)
        v = self.v_proj(h).view(b, n, self.heads, hd).transpose(1, 2)
        a = torch.softmax(q @ k.transpose(-1, -2), -1) @ v
        x = x + self.out_proj(a.transpose(1, 2).reshape(b, n, d))
        h = self.fc1(self.layer_norm2(x))
        return x + self.fc2(h * torch.sigmoid(1.702 * h))


class Vision(nn.Module):
    def __init__(self):
        super().__init__()
        d = V["hidden"]
        self.patch_embedding = nn.Conv2d(3, d, 14, 14, bias=False)
        self.class_embedding = nn.Parameter(torch.randn(d) * 0.02)
        self.position_embedding = nn.Embedding(577, d)
        nn.init.normal_(self.position_embedding.weight, std=0.02)
        self.pre_layrnorm = nn.LayerNorm(d, eps=1e-5)
        self.layers = nn.ModuleList(CLIPLayer(d, V["inter"], V["heads"]) for _ in range(V["layers"]))
        self.post_layernorm = nn.LayerNorm(d, eps=1e-5)  # in the checkpoint; LLaVA never uses it

    def forward(self, px):
        x = self.patch_embedding(px).flatten(2).transpose(1, 2)
        x = torch.cat([self.class_embedding.expand(x.shape[0], 1, -1), x], 1)
        x = self.pre_layrnorm(x + self.position_embedding.weight)
        for layer in self.layers[:-1]:  # hidden_states[-2]
            x = layer(x)
        return x[:, 1:]


class RMSNorm(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(d))

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-5) * self.weight


class LlamaLayer(nn.Module):
    def __init__(self, d, inter, heads):
        super().__init__()
        self.heads = heads
        self.input_layernorm, self.post_attention_layernorm = RMSNorm(d), RMSNorm(d)
        self.q_proj, self.k_proj, self.v_proj, self.o_proj = (nn.Linear(d, d, bias=False) for _ in range(4))
        self.gate_proj, self.up_proj = nn.Linear(d, inter, bias=False), nn.Linear(d, inter, bias=False)
        self.down_proj = nn.Linear(inter, d, bias=False)

    def forward(self, x, cos, sin, mask):
        b, n, d = x.shape
        hd = d // self.heads
        h = self.input_layernorm(x)

        def rope(t):
            t = t.view(b, n, self.heads, hd).transpose(1, 2)
            half = torch.cat([-t[..., hd // 2:], t[..., :hd // 2]], -1)
            return t * cos + half * sin

        q, k = rope(self.q_proj(h)), rope(self.k_proj(h))
        v = self.v_proj(h).view(b, n, self.heads, hd).transpose(1, 2)
        s = q @ k.transpose(-1, -2) / math.sqrt(hd) + mask
        a = torch.softmax(s, -1) @ v
        x = x + self.o_proj(a.transpose(1, 2).reshape(b, n, d))
        h = self.post_attention_layernorm(x)
        return x + self.down_proj(F.silu(self.gate_proj(h)) * self.up_proj(h))


class Model(nn.Module):
    def __init__(self):
        super().__init__()
        self.vision = Vision()
        dv, dt = V["hidden"], T["hidden"]
        self.linear_1, self.linear_2 = nn.Linear(dv, dt), nn.Linear(dt, dt)
        self.embed_tokens = nn.Embedding(T["vocab"], dt)
        nn.init.normal_(self.embed_tokens.weight, std=0.02)
        self.layers = nn.ModuleList(LlamaLayer(dt, T["inter"], T["heads"]) for _ in range(T["layers"]))
        self.norm = RMSNorm(dt)
        self.lm_head = nn.Linear(dt, T["vocab"], bias=False)
        nn.init.normal_(self.lm_head.weight, std=0.02)
        # Auxiliary heads (training only): count, (colour, shape) presence,
        # and the code's characters by attention from a query per position.
        self.aux_count = nn.Linear(dv, 6)
        self.aux_pairs = nn.Linear(dv, len(COLORS) * len(SHAPES))
        self.aux_query = nn.Parameter(torch.randn(4, dv) * 0.02)
        self.aux_char = nn.Linear(dv, len(ALPHABET) + 1)

    def project(self, feats):
        return self.linear_2(F.gelu(self.linear_1(feats)))

    def aux(self, feats):
        pooled = feats.mean(1)
        att = torch.softmax(self.aux_query @ feats.transpose(1, 2) / math.sqrt(feats.shape[-1]), -1)
        return self.aux_count(pooled), self.aux_pairs(pooled), self.aux_char(att @ feats)

    def lm(self, embeds, label_pos):
        b, n, d = embeds.shape
        hd = d // T["heads"]
        inv = 1.0 / (10000 ** (torch.arange(0, hd, 2).float() / hd))
        ang = torch.arange(n).float()[:, None] * inv[None]
        ang = torch.cat([ang, ang], -1)
        cos, sin = ang.cos()[None, None], ang.sin()[None, None]
        mask = torch.full((n, n), float("-inf")).triu(1)
        x = embeds
        for layer in self.layers:
            x = layer(x, cos, sin, mask)
        x = self.norm(x)
        return self.lm_head(x[label_pos])


def load_images(set_dir, names):
    out = np.empty((len(names), 336, 336, 3), np.uint8)
    for i, n in enumerate(names):
        out[i] = np.asarray(Image.open(os.path.join(set_dir, n)).convert("RGB"))
    return out


def aux_targets(scene):
    count = len(scene["objects"]) - 1
    pairs = torch.zeros(len(COLORS) * len(SHAPES))
    for o in scene["objects"]:
        pairs[COLORS.index(o["color"]) * len(SHAPES) + SHAPES.index(o["shape"])] = 1
    chars = [ALPHABET.index(c) for c in scene["code"]] + [len(ALPHABET)] * (4 - len(scene["code"]))
    return count, pairs, chars


def save_safetensors(path, tensors):
    header, offset, blobs = {}, 0, []
    for name in sorted(tensors):
        t = tensors[name].detach().to(torch.float16).contiguous()
        b = t.numpy().tobytes()
        header[name] = {"dtype": "F16", "shape": list(t.shape), "data_offsets": [offset, offset + len(b)]}
        offset += len(b)
        blobs.append(b)
    header["__metadata__"] = {"format": "pt"}
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h)
        for b in blobs:
            f.write(b)


def export(model, out):
    t = {}
    export_names(model, t)
    os.makedirs(out, exist_ok=True)
    save_safetensors(os.path.join(out, "model.safetensors"), t)
    write_config(out)


def export_names(model, t):
    m = model
    vp = "vision_tower.vision_model."
    t[vp + "embeddings.class_embedding"] = m.vision.class_embedding
    t[vp + "embeddings.patch_embedding.weight"] = m.vision.patch_embedding.weight
    t[vp + "embeddings.position_embedding.weight"] = m.vision.position_embedding.weight
    for n in ["pre_layrnorm", "post_layernorm"]:
        t[vp + n + ".weight"], t[vp + n + ".bias"] = getattr(m.vision, n).weight, getattr(m.vision, n).bias
    for i, l in enumerate(m.vision.layers):
        p = f"{vp}encoder.layers.{i}."
        for n, mod in [("layer_norm1", l.layer_norm1), ("layer_norm2", l.layer_norm2), ("self_attn.q_proj", l.q_proj),
                       ("self_attn.k_proj", l.k_proj), ("self_attn.v_proj", l.v_proj), ("self_attn.out_proj", l.out_proj),
                       ("mlp.fc1", l.fc1), ("mlp.fc2", l.fc2)]:
            t[p + n + ".weight"], t[p + n + ".bias"] = mod.weight, mod.bias
    for n in ["linear_1", "linear_2"]:
        t[f"multi_modal_projector.{n}.weight"], t[f"multi_modal_projector.{n}.bias"] = getattr(m, n).weight, getattr(m, n).bias
    lp = "language_model.model."
    t[lp + "embed_tokens.weight"] = m.embed_tokens.weight
    t[lp + "norm.weight"] = m.norm.weight
    t["language_model.lm_head.weight"] = m.lm_head.weight
    for i, l in enumerate(m.layers):
        p = f"{lp}layers.{i}."
        t[p + "input_layernorm.weight"] = l.input_layernorm.weight
        t[p + "post_attention_layernorm.weight"] = l.post_attention_layernorm.weight
        for n in ["q_proj", "k_proj", "v_proj", "o_proj"]:
            t[p + "self_attn." + n + ".weight"] = getattr(l, n).weight
        for n in ["gate_proj", "up_proj", "down_proj"]:
            t[p + "mlp." + n + ".weight"] = getattr(l, n).weight


def write_config(out):
    config = {
        "architectures": ["LlavaForConditionalGeneration"], "ignore_index": -100, "image_token_index": IMAGE_TOKEN,
        "model_type": "llava", "pad_token_id": 32001, "projector_hidden_act": "gelu", "tie_word_embeddings": False,
        "torch_dtype": "float16", "transformers_version": "4.40.2",
        "text_config": {"hidden_size": T["hidden"], "intermediate_size": T["inter"], "max_position_embeddings": 4096,
                        "model_type": "llama", "num_attention_heads": T["heads"], "num_hidden_layers": T["layers"],
                        "num_key_value_heads": T["heads"], "rms_norm_eps": 1e-05, "vocab_size": T["vocab"]},
        "vision_config": {"hidden_size": V["hidden"], "image_size": 336, "intermediate_size": V["inter"],
                          "model_type": "clip_vision_model", "num_attention_heads": V["heads"],
                          "num_hidden_layers": V["layers"], "patch_size": 14, "projection_dim": 512},
        "vision_feature_layer": -2, "vision_feature_select_strategy": "default",
    }
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(config, f, indent=2)


def load_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, e in header.items():
        if name == "__metadata__":
            continue
        a, b = e["data_offsets"]
        out[name] = torch.from_numpy(np.frombuffer(data[a:b], np.float16).reshape(e["shape"]).astype(np.float32))
    return out


def init_from(model, path):
    """Continues from an exported checkpoint (the auxiliary heads start anew)."""
    saved = load_safetensors(path)
    probe = {}
    export_names(model, probe)
    for name, param in probe.items():
        with torch.no_grad():
            param.copy_(saved[name])


def main():
    set_dir, tokens, out = sys.argv[1], sys.argv[2], sys.argv[3]
    minutes = float(sys.argv[4]) if len(sys.argv) > 4 else 60
    init = sys.argv[5] if len(sys.argv) > 5 else None
    peak_lr = float(sys.argv[6]) if len(sys.argv) > 6 else 1e-3
    samples = json.load(open(tokens))
    scenes = {s["image"]: s for s in json.load(open(os.path.join(set_dir, "scenes.json")))}
    t0 = time.time()
    images = load_images(set_dir, [s["image"] for s in samples])
    print(f"loaded {len(images)} images in {time.time() - t0:.0f}s", flush=True)
    targets = [aux_targets(scenes[s["image"]]) for s in samples]
    model = Model()
    if init:
        init_from(model, init)
        print(f"continuing from {init}", flush=True)
    params = [p for p in model.parameters()]
    opt = torch.optim.AdamW(params, lr=1e-3, betas=(0.9, 0.98), weight_decay=0.01)
    batch, warm = 8, 150
    step, start = 0, time.time()
    order = np.random.permutation(len(samples))
    pos = 0
    while time.time() - start < minutes * 60:
        if pos + batch > len(order):
            order, pos = np.random.permutation(len(samples)), 0
        idx = order[pos:pos + batch]
        pos += batch
        px = torch.from_numpy(images[idx]).permute(0, 3, 1, 2).float() / 255
        px = (px - MEAN) / STD
        feats = model.vision(px)
        proj = model.project(feats)
        seqs, labels = [], []
        for j, i in enumerate(idx):
            k = np.random.randint(len(samples[i]["ids"]))
            seqs.append(samples[i]["ids"][k])
            labels.append(samples[i]["labels"][k])
        n = max(len(s) for s in seqs) + 575
        emb = torch.zeros(len(idx), n, T["hidden"])
        lab_pos, lab_ids = [], []
        for j, (s, l) in enumerate(zip(seqs, labels)):
            ids = torch.tensor(s)
            at = s.index(IMAGE_TOKEN)
            e = model.embed_tokens(ids)
            e = torch.cat([e[:at], proj[j], e[at + 1:]], 0)
            emb[j, :len(e)] = e
            for p, (tid, on) in enumerate(zip(s, l)):
                if on:
                    q = p + 575  # position after the image expansion
                    lab_pos.append((j, q - 1))
                    lab_ids.append(tid)
        rows = torch.tensor([p[0] for p in lab_pos]), torch.tensor([p[1] for p in lab_pos])
        logits = model.lm(emb, rows)
        loss_lm = F.cross_entropy(logits, torch.tensor(lab_ids))
        c, pr, ch = model.aux(feats)
        tc = torch.tensor([targets[i][0] for i in idx])
        tp = torch.stack([targets[i][1] for i in idx])
        tch = torch.tensor([targets[i][2] for i in idx])
        loss_aux = F.cross_entropy(c, tc) + F.binary_cross_entropy_with_logits(pr, tp) * 4 + \
            F.cross_entropy(ch.reshape(-1, ch.shape[-1]), tch.reshape(-1))
        frac = min(1.0, (time.time() - start) / (minutes * 60))
        loss = loss_lm + (1.0 - 0.7 * frac) * loss_aux
        lr = peak_lr * min(1.0, (step + 1) / warm) * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * frac)))
        for g in opt.param_groups:
            g["lr"] = lr
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        step += 1
        if step % 25 == 0:
            el = time.time() - start
            acc = (logits.argmax(-1) == torch.tensor(lab_ids)).float().mean().item()
            print(f"step {step} {el / 60:.1f} min lm {loss_lm.item():.3f} aux {loss_aux.item():.3f} "
                  f"token acc {acc:.3f} lr {lr:.2e} ({el / step:.2f} s/step)", flush=True)
        if step % 400 == 0:
            export(model, out)
    export(model, out)
    print(f"done: {step} steps in {(time.time() - start) / 60:.1f} min", flush=True)


if __name__ == "__main__":
    main()
