# The block of bench/block.ts in PyTorch on the CPU (the reference a user would pick instead):
# /usr/bin/python3 bench/block_torch.py THREADS SECONDS
import sys, time, torch
torch.set_num_threads(int(sys.argv[1]))
seconds = float(sys.argv[2])
B, S, P, C, H, M = 8, 51, 64, 256, 4, 1024
hd = C // H
g = torch.Generator().manual_seed(3)
r = lambda *s, std=1.0: (torch.randn(*s, generator=g) * std).requires_grad_()
x, pk, pv = r(B, S, C), torch.randn(B, H, P, hd, generator=g), torch.randn(B, H, P, hd, generator=g)
ln1, ln2 = torch.nn.LayerNorm(C), torch.nn.LayerNorm(C)
wq, wk, wv, wo = (r(C, C, std=1 / 16) for _ in range(4))
w1, b1, w2, b2 = r(C, M, std=1 / 16), r(M), r(M, C, std=1 / 32), r(C)

def block(x):
    heads = lambda t: t.view(B, S, H, hd).transpose(1, 2)
    h = ln1(x)
    q, k, v = heads(h @ wq), torch.cat([pk, heads(h @ wk)], 2), torch.cat([pv, heads(h @ wv)], 2)
    a = torch.softmax(q @ k.transpose(-1, -2) / hd ** 0.5, -1) @ v
    x = x + a.transpose(1, 2).reshape(B, S, C) @ wo
    return x + torch.nn.functional.gelu(ln2(x) @ w1 + b1, approximate="tanh") @ w2 + b2

def timed(fn):
    fn()
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        fn(); n += 1
    return (time.perf_counter() - t0) / n * 1000

def fwd():
    with torch.no_grad():
        block(x)

def bwd():
    for p in [x, wq, wk, wv, wo, w1, b1, w2, b2, *ln1.parameters(), *ln2.parameters()]:
        p.grad = None
    (block(x) ** 2).mean().backward()

print(f"forward_ms={timed(fwd):.2f} backward_ms={timed(bwd):.2f} torch={torch.__version__}")
