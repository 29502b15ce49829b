#!/usr/bin/python3
"""Golden values for the tensor engine from PyTorch (Debian's python3-torch, CPU).

Writes test/fixtures/gpu/golden.json: a pre-LN transformer block (the one in src/gpu/nn.ts:
LayerNorm, multi-head attention with an additive block-causal + padding mask, GELU-tanh MLP) with
its output and the gradients of every parameter and of the input, and three AdamW steps with two
parameter groups and global grad-norm clipping. Run from the repository root:

    /usr/bin/python3 scripts/golden/engine_golden.py   # Debian's python, where python3-torch lives
"""
import json
import math

import numpy as np
import torch

torch.set_default_dtype(torch.float64)  # goldens in float64; the engine computes in float32
rng = np.random.default_rng(20251125)

B, T, C, H, HID = 2, 5, 8, 2, 12
BLOCKS = [2, 1, 2]  # prefix | state | actions
KEY_VALID = [[True] * 5, [True, False, True, True, True]]


def rand(*shape, lo=-1.0, hi=1.0):
    # float32-representable values so the engine starts from exactly the same numbers
    return rng.uniform(lo, hi, size=shape).astype(np.float32).astype(np.float64)


params = {}
def p(name, *shape, lo=-0.5, hi=0.5):
    params[name] = torch.tensor(rand(*shape, lo=lo, hi=hi), requires_grad=True)
    return params[name]

for ln in ("ln1", "ln2"):
    params[f"blk.{ln}.weight"] = torch.tensor(rand(C, lo=0.5, hi=1.5), requires_grad=True)
    p(f"blk.{ln}.bias", C)
for proj in ("q", "k", "v", "o"):
    p(f"blk.attn.{proj}.weight", C, C)
    p(f"blk.attn.{proj}.bias", C)
p("blk.mlp.fc1.weight", HID, C)
p("blk.mlp.fc1.bias", HID)
p("blk.mlp.fc2.weight", C, HID)
p("blk.mlp.fc2.bias", C)

x = torch.tensor(rand(B, T, C), requires_grad=True)
w_out = torch.tensor(rand(B, T, C))

block_of = [i for i, n in enumerate(BLOCKS) for _ in range(n)]
mask = torch.zeros(B, 1, T, T)
for b in range(B):
    for i in range(T):
        for j in range(T):
            if not (block_of[j] <= block_of[i] and KEY_VALID[b][j]):
                mask[b, 0, i, j] = -1e9

P = params
def linear(name, t):
    return t @ P[f"{name}.weight"].T + P[f"{name}.bias"]

def block(x):
    h = torch.nn.functional.layer_norm(x, (C,), P["blk.ln1.weight"], P["blk.ln1.bias"], 1e-5)
    split = lambda t: t.reshape(B, T, H, C // H).permute(0, 2, 1, 3)
    q, k, v = (split(linear(f"blk.attn.{n}", h)) for n in "qkv")
    att = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(C // H) + mask, dim=-1) @ v
    x = x + linear("blk.attn.o", att.permute(0, 2, 1, 3).reshape(B, T, C))
    h = torch.nn.functional.layer_norm(x, (C,), P["blk.ln2.weight"], P["blk.ln2.bias"], 1e-5)
    return x + linear("blk.mlp.fc2", torch.nn.functional.gelu(linear("blk.mlp.fc1", h), approximate="tanh"))

y = block(x)
loss = (y * w_out).sum()
loss.backward()

flat = lambda t: [float(v) for v in t.detach().reshape(-1).tolist()]
out = {
    "generator": f"scripts/golden/engine_golden.py, torch {torch.__version__}",
    "block": {
        "B": B, "T": T, "C": C, "heads": H, "hidden": HID, "blocks": BLOCKS, "keyValid": KEY_VALID,
        "params": {n: flat(t) for n, t in P.items()},
        "x": flat(x), "wOut": flat(w_out), "y": flat(y), "loss": float(loss),
        "grads": {n: flat(t.grad) for n, t in P.items()}, "dx": flat(x.grad),
    },
}

# AdamW: two groups (as RLinf gives the value head its own lr), clipping to norm 1.0, 3 steps.
w1 = torch.tensor(rand(4, 3), requires_grad=True)
w2 = torch.tensor(rand(5), requires_grad=True)
init = {"w1": flat(w1), "w2": flat(w2)}
opt = torch.optim.AdamW([{"params": [w1], "lr": 1e-2}, {"params": [w2], "lr": 1e-1, "weight_decay": 0.1}],
                        betas=(0.9, 0.95), eps=1e-8, weight_decay=0.01)
steps = []
for s in range(3):
    g1, g2 = rand(4, 3, lo=-2, hi=2), rand(5, lo=-0.3, hi=0.3)
    w1.grad, w2.grad = torch.tensor(g1), torch.tensor(g2)
    norm = torch.nn.utils.clip_grad_norm_([w1, w2], max_norm=1.0)
    opt.step()
    steps.append({"g1": g1.tolist(), "g2": g2.tolist(), "norm": float(norm), "w1": flat(w1), "w2": flat(w2)})
out["adamw"] = {"lr": [1e-2, 1e-1], "weightDecay": [0.01, 0.1], "betas": [0.9, 0.95], "eps": 1e-8,
                "maxGradNorm": 1.0, "init": init, "steps": steps}

with open("test/fixtures/gpu/golden.json", "w") as f:
    json.dump(out, f, separators=(",", ":"))
print("wrote test/fixtures/gpu/golden.json")
