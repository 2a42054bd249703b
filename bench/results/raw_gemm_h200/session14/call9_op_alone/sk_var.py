# op-level vs C++ variance of a stream-K plan: per-replay times of int4_linear 11008x4096 M=256
import math, time, sys, torch, subprocess
sys.path.insert(0, '.')
from awq_ext import ops
torch.manual_seed(0)
dev = 'cuda'
def wq(n, k, g=128, dt=torch.float16):
    return (torch.randint(-2**31, 2**31 - 1, (n, k // 8), dtype=torch.int32, device=dev),
            (torch.rand(n, k // g, device=dev) * 0.018 + 0.002).to(dt),
            torch.randint(0, 16, (n, k // g), dtype=torch.uint8, device=dev))
def run(n, k, m, calls, reps, copies):
    qw = [wq(n, k) for _ in range(copies)]
    x = torch.randn(m, k, dtype=torch.float16, device=dev)
    fn = lambda i: ops.int4_linear(x, *qw[i % copies])
    s = torch.cuda.Stream(); s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):
        for i in range(3): fn(i)
    torch.cuda.current_stream().wait_stream(s); torch.cuda.synchronize()
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g):
        for i in range(calls): fn(i)
    g.replay(); torch.cuda.synchronize()
    ts = []
    for _ in range(reps):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record(); g.replay(); b.record(); b.synchronize()
        ts.append(1000 * a.elapsed_time(b) / calls)
    return ts
for (n, k, m) in [(11008, 4096, 256), (11008, 4096, 128), (4096, 4096, 256)]:
    for calls, copies in [(8, 8), (32, 16), (64, 32)]:
        ts = run(n, k, m, calls, 15, copies)
        ts2 = sorted(ts)
        print(f"{n}x{k} M={m} calls={calls:3d} copies={copies:2d}: median {ts2[len(ts2)//2]:.2f} min {ts2[0]:.2f} max {ts2[-1]:.2f}  seq " + " ".join(f"{t:.1f}" for t in ts), flush=True)
