#!/usr/bin/python3
"""Golden values for the tensor engine and the policy from PyTorch (Debian's python3-torch, CPU).

Writes test/fixtures/gpu/golden.json with, in float64:
- "prefix": the policy's prefix as src/model/policy.ts embedPrefix runs it (patchify, the ViT's
  pre-LN LayerNorm blocks with fused qkv, projector, view and text embeddings, the RMSNorm prefix
  layers with a key-padding bias, and, with value_after_vlm, the pooled final output) on a tiny
  config, with every parameter's gradient of Σ_l (K_l·wK_l + V_l·wV_l) + pooled·wP;
- "expert": the action expert as Policy.expert runs it (action_in_proj, the sin-cos time embedding
  through action_time_mlp_in/out, the state token, RMSNorm layers attending block-causally to given
  prefix K/V, action_out_proj) with the gradients of Σ velocity·wOut for every parameter and for the
  inputs x_t, the state and the prefix K/V;
- for each output and gradient, "f32err": how far the same computation in float32 PyTorch is from
  the float64 value (max |diff|), the scale of float32 rounding that the engine's tolerance follows;
- "adamw": three AdamW steps with two parameter groups (own lr and weight decay) and global
  grad-norm clipping (src/engine/optim.ts); "learner": the same with one weight decay for both groups,
  as src/engine/learner.ts applies it.
Parameter names and layouts are the policy's (src/model/config.ts parameterShapes: linear weights
[in, out]). Run from the repository root:

    /usr/bin/python3 scripts/golden/engine_golden.py   # Debian's python, where python3-torch lives
"""
import json
import math

import numpy as np
import torch

rng = np.random.default_rng(20251203)
F = torch.nn.functional
MASK_BIAS = -1e9


def rand(*shape, lo=-1.0, hi=1.0):
    # float32-representable values so the engine starts from exactly the same numbers
    return rng.uniform(lo, hi, size=shape).astype(np.float32).astype(np.float64)


# A tiny policy config (src/model/config.ts ModelConfig) with odd sizes.
CFG = dict(model_type="dexrl_pi0", image_size=8, patch_size=4, num_images=2, vit_width=6, vit_depth=1,
           vit_heads=2, vit_mlp=10, width=8, depth=2, heads=2, head_dim=3, mlp=12, vocab_size=11,
           max_text_len=4, expert_width=6, expert_mlp=10, state_dim=8, action_dim=7, horizon=3,
           add_value_head=True, value_after_vlm=True, add_noise_head=False)
c = CFG
PPS = c["image_size"] // c["patch_size"]
NP = PPS * PPS  # patches per view
T = c["num_images"] * NP + c["max_text_len"]  # prefix length
ATT = c["heads"] * c["head_dim"]
vw, W, H, D = c["vit_width"], c["expert_width"], c["horizon"], c["action_dim"]
B = 2

# ---- parameters (numpy, float32-representable), in parameterShapes order ----
PARAMS = {}


def param(name, *shape, lo=-0.5, hi=0.5):
    PARAMS[name] = rand(*shape, lo=lo, hi=hi)


def linear_p(name, i, o):
    param(f"{name}.weight", i, o, lo=-1 / math.sqrt(i), hi=1 / math.sqrt(i))
    param(f"{name}.bias", o, lo=-0.1, hi=0.1)


def norm_p(name, n, bias):
    param(f"{name}.weight", n, lo=0.5, hi=1.5)
    if bias:
        param(f"{name}.bias", n, lo=-0.2, hi=0.2)


linear_p("vit.patch_embed", c["patch_size"] ** 2 * 3, vw)
param("vit.pos_embed", NP, vw, lo=-0.1, hi=0.1)
for l in range(c["vit_depth"]):
    p = f"vit.layers.{l}"
    norm_p(f"{p}.ln1", vw, True)
    linear_p(f"{p}.qkv", vw, 3 * vw)
    linear_p(f"{p}.proj", vw, vw)
    norm_p(f"{p}.ln2", vw, True)
    linear_p(f"{p}.fc1", vw, c["vit_mlp"])
    linear_p(f"{p}.fc2", c["vit_mlp"], vw)
norm_p("vit.ln_post", vw, True)
linear_p("projector", vw, c["width"])
param("view_embed", c["num_images"], c["width"], lo=-0.1, hi=0.1)
param("embed_tokens", c["vocab_size"], c["width"], lo=-0.1, hi=0.1)
param("text_pos_embed", c["max_text_len"], c["width"], lo=-0.1, hi=0.1)
for l in range(c["depth"]):
    for tower, w, mlp_width in (("prefix", c["width"], c["mlp"]), ("expert", W, c["expert_mlp"])):
        p = f"{tower}.layers.{l}"
        norm_p(f"{p}.input_norm", w, False)
        for n in ("q", "k", "v"):
            linear_p(f"{p}.{n}_proj", w, ATT)
        linear_p(f"{p}.o_proj", ATT, w)
        norm_p(f"{p}.post_norm", w, False)
        linear_p(f"{p}.fc1", w, mlp_width)
        linear_p(f"{p}.fc2", mlp_width, w)
norm_p("expert.final_norm", W, False)
linear_p("state_proj", c["state_dim"], W)
linear_p("action_in_proj", c["action_dim"], W)
linear_p("action_time_mlp_in", 2 * W, W)
linear_p("action_time_mlp_out", W, W)
param("action_pos_embed", c["horizon"], W, lo=-0.1, hi=0.1)
linear_p("action_out_proj", W, c["action_dim"])
norm_p("prefix.final_norm", c["width"], False)
linear_p("value_head", c["width"], 1)
PREFIX_NAMES = [n for n in PARAMS if n.startswith(("vit.", "projector.", "prefix.")) or n in ("view_embed", "embed_tokens", "text_pos_embed")]
EXPERT_NAMES = [n for n in PARAMS if n not in PREFIX_NAMES and not n.startswith("value_head")]

# ---- inputs ----
S, ps, V = c["image_size"], c["patch_size"], c["num_images"]
images = rng.integers(0, 256, size=(B, V, S, S, 3), dtype=np.uint8)
ids = np.array([[1, 5, 9, 2], [3, 10, 0, 0]])
token_mask = np.array([[1, 1, 1, 1], [1, 1, 0, 0]], dtype=np.float64)
w_k = [rand(B, c["heads"], T, c["head_dim"]) for _ in range(c["depth"])]
w_v = [rand(B, c["heads"], T, c["head_dim"]) for _ in range(c["depth"])]
w_pooled = rand(B, c["width"])

prefix_k = [rand(B, c["heads"], T, c["head_dim"]) for _ in range(c["depth"])]
prefix_v = [rand(B, c["heads"], T, c["head_dim"]) for _ in range(c["depth"])]
key_valid = np.ones((B, T))
key_valid[1, -3:] = 0  # padded prefix keys of example 1
state = rand(B, c["state_dim"])
xt = rand(B, H, D)
t_flow = [0.75, 0.3]


def time_embedding(t, width):
    # openpi: sin-cos with periods from 4e-3 to 4.0, sin half then cos half (float64: as the engine's CPU makes it)
    half = width // 2
    period = 4e-3 * (4.0 / 4e-3) ** (np.arange(half) / (half - 1))
    x = 2 * math.pi * t / period
    return np.concatenate([np.sin(x), np.cos(x)])


temb = np.stack([time_embedding(t, W) for t in t_flow]).astype(np.float32).astype(np.float64)  # the engine's float32 input
w_out = rand(B, H, D)


class Model:
    """The policy's prefix and expert in PyTorch at one dtype, with gradients."""

    def __init__(self, dtype):
        self.dtype = dtype
        self.P = {n: torch.tensor(a, dtype=dtype, requires_grad=True) for n, a in PARAMS.items()}

    def t(self, a, grad=False):
        return torch.tensor(a, dtype=self.dtype, requires_grad=grad)

    def linear(self, name, x):
        return x @ self.P[f"{name}.weight"] + self.P[f"{name}.bias"]

    def mlp(self, name, x):
        return self.linear(f"{name}.fc2", F.gelu(self.linear(f"{name}.fc1", x), approximate="tanh"))

    def rms(self, name, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6) * self.P[f"{name}.weight"]

    def ln(self, name, x):
        return F.layer_norm(x, (x.shape[-1],), self.P[f"{name}.weight"], self.P[f"{name}.bias"], 1e-5)

    @staticmethod
    def heads(x, h, hd):
        n, s, _ = x.shape
        return x.reshape(n, s, h, hd).permute(0, 2, 1, 3)

    @staticmethod
    def merge(x):
        n, h, s, hd = x.shape
        return x.permute(0, 2, 1, 3).reshape(n, s, h * hd)

    @staticmethod
    def attend(q, k, v, bias=None):
        logits = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])
        if bias is not None:
            logits = logits + bias
        return torch.softmax(logits, dim=-1) @ v

    def prefix(self):
        P, h_, m_ = self.P, c["heads"], c["head_dim"]
        img = self.t(images.astype(np.float64)).reshape(B * V, PPS, ps, PPS, ps, 3)
        patches = img.permute(0, 1, 3, 2, 4, 5).reshape(B * V, NP, ps * ps * 3) * (2 / 255) - 1
        h = self.linear("vit.patch_embed", patches) + P["vit.pos_embed"]
        vhd = vw // c["vit_heads"]
        for l in range(c["vit_depth"]):
            p = f"vit.layers.{l}"
            qkv = self.linear(f"{p}.qkv", self.ln(f"{p}.ln1", h))
            q, k, v = (self.heads(qkv[..., i * vw:(i + 1) * vw], c["vit_heads"], vhd) for i in range(3))
            h = h + self.linear(f"{p}.proj", self.merge(self.attend(q, k, v)))
            h = h + self.mlp(p, self.ln(f"{p}.ln2", h))
        tok = self.linear("projector", self.ln("vit.ln_post", h)).reshape(B, V, NP, c["width"]) + P["view_embed"].reshape(1, V, 1, c["width"])
        text = P["embed_tokens"][torch.tensor(ids)] * math.sqrt(c["width"]) + P["text_pos_embed"]
        x = torch.cat([tok.reshape(B, V * NP, c["width"]), text], 1)
        valid = torch.cat([torch.ones(B, V * NP, dtype=self.dtype), self.t(token_mask)], 1)
        key_bias = ((1 - valid) * MASK_BIAS).reshape(B, 1, 1, T)
        ks, vs = [], []
        for l in range(c["depth"]):
            p = f"prefix.layers.{l}"
            a = self.rms(f"{p}.input_norm", x)
            ks.append(self.heads(self.linear(f"{p}.k_proj", a), h_, m_))
            vs.append(self.heads(self.linear(f"{p}.v_proj", a), h_, m_))
            q = self.heads(self.linear(f"{p}.q_proj", a), h_, m_)
            x = x + self.linear(f"{p}.o_proj", self.merge(self.attend(q, ks[l], vs[l], key_bias)))
            x = x + self.mlp(p, self.rms(f"{p}.post_norm", x))
        weights = valid / valid.sum(1, keepdim=True)
        pooled = (weights.unsqueeze(1) @ self.rms("prefix.final_norm", x)).reshape(B, c["width"])
        loss = (pooled * self.t(w_pooled)).sum()
        for l in range(c["depth"]):
            loss = loss + (ks[l] * self.t(w_k[l])).sum() + (vs[l] * self.t(w_v[l])).sum()
        loss.backward()
        outs = {"pooled": pooled, **{f"k{l}": k for l, k in enumerate(ks)}, **{f"v{l}": v for l, v in enumerate(vs)}}
        return loss, outs, {n: P[n].grad if P[n].grad is not None else torch.zeros_like(P[n]) for n in PREFIX_NAMES}

    def expert(self):
        P, h_, m_ = self.P, c["heads"], c["head_dim"]
        pk = [self.t(a, True) for a in prefix_k]
        pv = [self.t(a, True) for a in prefix_v]
        st, x = self.t(state, True), self.t(xt, True)
        act = self.linear("action_in_proj", x)
        te = self.t(temb).reshape(B, 1, W).expand(B, H, W)
        mixed = self.linear("action_time_mlp_out", F.silu(self.linear("action_time_mlp_in", torch.cat([act, te], 2))))
        y = torch.cat([self.linear("state_proj", st).reshape(B, 1, W), mixed + P["action_pos_embed"]], 1)
        L = 1 + H
        block = torch.zeros(L, L, dtype=self.dtype)
        block[0, 1:] = MASK_BIAS  # the state token sees only itself; actions see state and actions
        prefix_bias = self.t((1 - key_valid) * MASK_BIAS).reshape(B, 1, 1, T).expand(B, 1, L, T)
        bias = torch.cat([prefix_bias, block.reshape(1, 1, L, L).expand(B, 1, L, L)], 3)
        for l in range(c["depth"]):
            p = f"expert.layers.{l}"
            a = self.rms(f"{p}.input_norm", y)
            q = self.heads(self.linear(f"{p}.q_proj", a), h_, m_)
            k = torch.cat([pk[l], self.heads(self.linear(f"{p}.k_proj", a), h_, m_)], 2)
            v = torch.cat([pv[l], self.heads(self.linear(f"{p}.v_proj", a), h_, m_)], 2)
            y = y + self.linear(f"{p}.o_proj", self.merge(self.attend(q, k, v, bias)))
            y = y + self.mlp(p, self.rms(f"{p}.post_norm", y))
        velocity = self.linear("action_out_proj", self.rms("expert.final_norm", y)[:, 1:])
        loss = (velocity * self.t(w_out)).sum()
        loss.backward()
        outs = {"velocity": velocity, "dxt": x.grad, "dstate": st.grad, **{f"dk{l}": t.grad for l, t in enumerate(pk)}, **{f"dv{l}": t.grad for l, t in enumerate(pv)}}
        return loss, outs, {n: P[n].grad for n in EXPERT_NAMES}


flat = lambda t: [float(f"{v:.10g}") for v in t.detach().reshape(-1).tolist()]  # outputs: 10 digits, far below float32's error
f32 = lambda a: [float(f"{v:.9g}") for v in np.asarray(a, dtype=np.float32).reshape(-1).tolist()]  # float32 inputs: 9 digits read back exactly


def golden(part):
    loss, outs, grads = getattr(Model(torch.float64), part)()
    loss32, outs32, grads32 = getattr(Model(torch.float32), part)()
    err = lambda a, b: float((a.detach().double() - b.detach()).abs().max())
    return {
        "loss": float(loss), "outputs": {k: flat(v) for k, v in outs.items()}, "grads": {n: flat(g) for n, g in grads.items()},
        "f32err": {"loss": abs(float(loss32) - float(loss)), **{k: err(outs32[k], v) for k, v in outs.items()}, **{f"g.{n}": err(grads32[n], g) for n, g in grads.items()}},
    }


out = {
    "generator": f"scripts/golden/engine_golden.py, torch {torch.__version__}",
    "config": CFG,
    "params": {n: f32(a) for n, a in PARAMS.items()},
    "prefix": {"B": B, "images": images.reshape(-1).tolist(), "ids": ids.reshape(-1).tolist(), "tokenMask": token_mask.reshape(-1).tolist(),
               "wK": [f32(w) for w in w_k], "wV": [f32(w) for w in w_v], "wPooled": f32(w_pooled), **golden("prefix")},
    "expert": {"B": B, "t": t_flow, "temb": f32(temb), "keyValid": key_valid.reshape(-1).tolist(), "prefixK": [f32(a) for a in prefix_k],
               "prefixV": [f32(a) for a in prefix_v], "state": f32(state), "xt": f32(xt), "wOut": f32(w_out), **golden("expert")},
}


# ---- AdamW: two groups (as RLinf gives the value head its own lr), clipping to norm 1.0, 3 steps ----
def adamw_case(decays):
    w1 = torch.tensor(rand(4, 3), requires_grad=True)
    w2 = torch.tensor(rand(5), requires_grad=True)
    init = {"w1": flat(w1), "w2": flat(w2)}
    opt = torch.optim.AdamW([{"params": [w1], "lr": 1e-2, "weight_decay": decays[0]}, {"params": [w2], "lr": 1e-1, "weight_decay": decays[1]}],
                            betas=(0.9, 0.95), eps=1e-8)
    steps = []
    for s in range(3):
        g1, g2 = rand(4, 3, lo=-2, hi=2), rand(5, lo=-0.3, hi=0.3)
        w1.grad, w2.grad = torch.tensor(g1), torch.tensor(g2)
        norm = torch.nn.utils.clip_grad_norm_([w1, w2], max_norm=1.0)
        opt.step()
        steps.append({"g1": g1.tolist(), "g2": g2.tolist(), "norm": float(norm), "w1": flat(w1), "w2": flat(w2)})
    return {"lr": [1e-2, 1e-1], "weightDecay": decays, "betas": [0.9, 0.95], "eps": 1e-8, "maxGradNorm": 1.0, "init": init, "steps": steps}


out["adamw"] = adamw_case([0.01, 0.1])
out["learner"] = adamw_case([0.05, 0.05])

with open("test/fixtures/gpu/golden.json", "w") as f:
    json.dump(out, f, separators=(",", ":"))
print("wrote test/fixtures/gpu/golden.json")
