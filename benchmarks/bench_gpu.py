"""GPU checks and throughput of the evaluation engine: CUDA vs CPU, batched vs alone, one-by-one vs batched.

Run on a CUDA machine: `python benchmarks/bench_gpu.py` (about a minute on an H200).
"""
import time, torch
from actsearch import parse
from actsearch.evaluation import get_fidelity, train_one, train_population

dev = "cuda"
exprs = ["x*sigmoid(beta*x)", "max(x, sigmoid(x))", "cos(x)-x", "min(x, sin(x))", "atan(x)**2-x",
         "max(x, tanh(x))", "sinc(x)+x", "x*asinh(x)**2", "relu", "gelu", "elu", "tanh",
         "softplus", "sigmoid", "selu", "leaky_relu"]
acts = [parse(e) if "(" in e else e for e in exprs]

# 1. CUDA vs CPU: same seed, first 50 steps of the quick MLP
q = get_fidelity("quick").replace(steps=50)
for a in acts[:4]:
    tc, tg = [], []
    train_one(a, q, seed=1, device="cpu", trace=tc)
    train_one(a, q, seed=1, device=dev, trace=tg)
    d = max(abs(x - y) for x, y in zip(tc, tg))
    print(f"cpu vs cuda loss trace, 50 steps, {a}: max |diff| = {d:.2e}")

# 2. batched == alone on CUDA (first 100 steps)
q = get_fidelity("quick").replace(steps=100)
tp = {}
train_population(acts[:4], q, [0, 1, 2, 3], device=dev, trace=tp)
for i, a in enumerate(acts[:4]):
    t1 = []
    train_one(a, q, seed=i, device=dev, trace=t1)
    d = max(abs(x - y) for x, y in zip(t1, tp[i]))
    print(f"cuda batched vs alone, 100 steps, member {i}: max |diff| = {d:.2e}")

# 3. throughput on the GPU: one-by-one vs batched, quick (MLP) and standard (CNN), 16 candidates
for fid_name, steps in (("quick", 600), ("standard", 400)):
    f = get_fidelity(fid_name).replace(steps=steps)
    train_one(acts[0], f.replace(steps=20), seed=0, device=dev)
    torch.cuda.synchronize(); t = time.perf_counter()
    solo = [train_one(a, f, seed=i, device=dev) for i, a in enumerate(acts)]
    torch.cuda.synchronize(); t_solo = time.perf_counter() - t
    t = time.perf_counter()
    pop = train_population(acts, f, list(range(16)), device=dev)
    torch.cuda.synchronize(); t_pop = time.perf_counter() - t
    full = get_fidelity(fid_name).steps
    print(f"GPU {fid_name}: one-by-one {16 * 60 / (t_solo * full / steps):.1f} cand/min, "
          f"batched {16 * 60 / (t_pop * full / steps):.1f} cand/min at full length; ratio {t_solo / t_pop:.2f}x "
          f"(statuses {sorted(set(r.status for r in pop))})")
    for K in (64,):
        t = time.perf_counter()
        train_population((acts * 4)[:K], f, list(range(K)), device=dev)
        torch.cuda.synchronize(); tk = time.perf_counter() - t
        print(f"GPU {fid_name}: batched K={K}: {K * 60 / (tk * full / steps):.1f} cand/min at full length")
