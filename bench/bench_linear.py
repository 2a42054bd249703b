"""Benchmark torch.ops.awq_ext.int4_linear against torch's fp16/bf16 matmul (cuBLAS) in one run.

For every layer shape N x K and batch M: y = x @ W^T with x [M, K] random, W int4 (group size --group,
zero points) in the kernel layout, against F.linear(x, W16) with a random fp16/bf16 W of the same
shape. Method (the one of /work/shared/ANCHORS.md):
  * enough weight copies that every call streams its weights from DRAM (>= 4x the L2 in all);
  * `--calls` calls rotating over the copies captured in one CUDA graph per op, the int4 and torch
    graphs replayed alternately `--reps` times each (so both run under the same clocks and power
    state), each replay timed with CUDA events; the median replay / calls is the time per call,
    allocation of the output included, as the library runs it;
  * ceilings measured in the same run: device-to-device copy (bytes read + written);
  * --sustain S: each op's graph is instead replayed back to back for S seconds (int4, then torch)
    and the median is taken over the replays of the second half, when the clocks have settled under
    the board's power cap (the default replays are bursts of a few milliseconds, mostly at boost
    clocks that compute-bound kernels cannot hold). Files get a _sustained suffix.
Reports time, speedup, TFLOP/s, GB/s and % of copy bandwidth; writes
  <out>/linear_<device>.json, <out>/linear_<device>.md and <out>/linear_<device>.png (speedup vs M).

Example:
  python bench/bench_linear.py                          # six LLM shapes, M = 1 .. 8192, fp16
  python bench/bench_linear.py --dtype bfloat16 --m 1,4,16 --shapes 4096x4096,28672x8192
  python bench/bench_linear.py --m 256,1024,4096 --sustain 2     # sustained load
"""
from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import re
import subprocess
import sys
import time

import torch
import torch.nn.functional as F

DEFAULT_SHAPES = "4096x4096,11008x4096,4096x11008,14336x4096,4096x14336,28672x8192"
DEFAULT_M = "1,2,4,8,16,32,64,256,1024,4096,8192"


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("--dtype", default="float16", choices=["float16", "bfloat16", "both"])
    ap.add_argument("--m", default=DEFAULT_M, help=f"comma-separated batch sizes (default {DEFAULT_M})")
    ap.add_argument("--shapes", default=DEFAULT_SHAPES, help="comma-separated NxK (out x in features)")
    ap.add_argument("--group", type=int, default=128, help="quantization group size (32, 64, 128)")
    ap.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "results"),
                    help="output folder (default bench/results)")
    ap.add_argument("--calls", type=int, default=0, help="calls per graph (default: 2 rounds of the copies)")
    ap.add_argument("--reps", type=int, default=15, help="timed graph replays (median)")
    ap.add_argument("--l2-multiple", type=float, default=4.0, help="weight bytes rotated, in units of L2")
    ap.add_argument("--no-plot", action="store_true", help="skip the PNG (no matplotlib needed)")
    ap.add_argument("--sustain", type=float, default=0.0,
                    help="seconds of back-to-back replays per op and case (0: --reps replays)")
    args = ap.parse_args(argv)
    if args.reps < 1 or args.sustain < 0:
        ap.error(f"--reps must be >= 1 and --sustain >= 0, got --reps {args.reps} --sustain {args.sustain}")
    return args


def capture(fn, calls: int) -> torch.cuda.CUDAGraph:
    """fn(i), i = 0..calls-1, captured in one CUDA graph (after a warm-up: lazy init, cuBLAS handles
    and workspaces, allocator) and replayed once."""
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        for i in range(min(calls, 3)):
            fn(i)
    torch.cuda.current_stream().wait_stream(stream)
    torch.cuda.synchronize()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        for i in range(calls):
            fn(i)
    graph.replay()
    torch.cuda.synchronize()
    return graph


def replay_ms(graph: torch.cuda.CUDAGraph) -> float:
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    graph.replay()
    end.record()
    end.synchronize()
    return start.elapsed_time(end)


def median_us(times_ms, calls: int) -> float:
    times = sorted(times_ms)
    return 1000.0 * times[len(times) // 2] / calls


def time_graph(fn, calls: int, reps: int, sustain: float = 0.0) -> float:
    """Median time per call in microseconds of fn(i), i = 0..calls-1, captured in one CUDA graph:
    over `reps` replays, or with sustain > 0 over the replays of the second half of `sustain` seconds
    of back-to-back replays."""
    graph = capture(fn, calls)
    times = []
    t0 = time.perf_counter()
    while True:
        t = replay_ms(graph)
        if sustain <= 0:
            times.append(t)
            if len(times) >= reps:
                break
        else:
            now = time.perf_counter() - t0
            if now >= sustain / 2:
                times.append(t)
            if now >= sustain:
                break
    del graph
    return median_us(times, calls)


def time_pair(fa, fb, calls: int, reps: int) -> tuple[float, float]:
    """Median time per call in microseconds of fa and of fb (each as in time_graph), their graphs
    replayed alternately: a, b, a, b, ... so that a burst of one op does not set the clocks the
    other runs at (timed one after the other, the same stream-K GEMM read 42.9 and 49.1 us in two
    runs of this benchmark on the H200; bench/results/gemm_notes.md, session 14)."""
    ga = capture(fa, calls)
    gb = capture(fb, calls)
    ta, tb = [], []
    for _ in range(reps):
        ta.append(replay_ms(ga))
        tb.append(replay_ms(gb))
    del ga, gb
    return median_us(ta, calls), median_us(tb, calls)


def copy_bandwidth() -> float:
    """Device-to-device copy, bytes read + written per second."""
    n = 1 << 29  # 1 GiB of int16
    a = torch.empty(n, dtype=torch.int16, device="cuda").random_()
    b = torch.empty_like(a)
    # timed eagerly: inside a CUDA graph torch's copy_ becomes a memcpy node that runs on the copy
    # engine at about 2.7 TB/s on an H200, well under what a copy kernel reaches (about 4.2 TB/s)
    times = []
    for _ in range(12):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        b.copy_(a)
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end) * 1e3)
    us = sorted(times[2:])[len(times[2:]) // 2]
    del a, b
    return 2 * n * 2 / (us * 1e-6)


def random_int4_weight(n: int, k: int, group: int, dtype: torch.dtype):
    """Random packed weight in the kernel layout (qweight int32 [N, K/8], scales [N, K/g], zeros [N, K/g])."""
    qweight = torch.randint(-2**31, 2**31 - 1, (n, k // 8), dtype=torch.int32, device="cuda")
    scales = (torch.rand(n, k // group, device="cuda") * 0.018 + 0.002).to(dtype)
    zeros = torch.randint(0, 16, (n, k // group), dtype=torch.uint8, device="cuda")
    return qweight, scales, zeros


def git_commit() -> str:
    try:
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10)
        return out.stdout.strip() or "unknown"
    except Exception:  # noqa: BLE001 - best effort metadata
        return "unknown"


def bench_dtype(args, dtype, shapes, ms, copy_bw, l2_bytes):
    from awq_ext import ops

    # weights of every shape up front, then M ascending over all shapes: every decode-sized case runs
    # before any compute-bound one. Measured on the H200: right after the M = 8192 GEMMs of the previous
    # shape, an M = 1 case ran up to 35 % slower (28672 x 8192: 57.5 vs 42.5 us) while the GPU's clocks
    # recovered from the power-heavy GEMMs; the decode kernels are issue-bound enough to feel that.
    weights = {}
    for n, k in shapes:
        int4_bytes = n * k / 2 + n * (k // args.group) * (torch.finfo(dtype).bits // 8 + 1)
        fp_bytes = n * k * torch.finfo(dtype).bits / 8
        copies_q = max(2, math.ceil(args.l2_multiple * l2_bytes / int4_bytes))
        copies_f = max(2, math.ceil(args.l2_multiple * l2_bytes / fp_bytes))
        qw = [random_int4_weight(n, k, args.group, dtype) for _ in range(copies_q)]
        fw = [(torch.rand(n, k, device="cuda", dtype=dtype) - 0.5) * 0.1 for _ in range(copies_f)]
        weights[(n, k)] = (int4_bytes, qw, fw)

    rows = []
    for m in sorted(ms):
        for n, k in shapes:
            int4_bytes, qw, fw = weights[(n, k)]
            copies_q, copies_f = len(qw), len(fw)
            calls = args.calls or 2 * max(copies_q, copies_f)
            x = torch.randn(m, k, dtype=dtype, device="cuda")
            f_q = lambda i: ops.int4_linear(x, *qw[i % copies_q])  # noqa: E731
            f_f = lambda i: F.linear(x, fw[i % copies_f])  # noqa: E731
            t_f = None  # torch's time, from the same alternating replays as int4's where possible
            try:
                if args.sustain > 0:
                    t_q = time_graph(f_q, calls, args.reps, args.sustain)
                else:
                    t_q, t_f = time_pair(f_q, f_f, calls, args.reps)
            except RuntimeError as e:  # an unsupported configuration is reported, not fatal
                print(f"  int4_linear failed for N={n} K={k} M={m}: {e}", file=sys.stderr)
                t_q = float("nan")
            if t_f is None:
                t_f = time_graph(f_f, calls, args.reps, args.sustain)
            moved = int4_bytes + m * k * 2 + m * n * 2
            row = dict(n=n, k=k, m=m, int4_us=t_q, torch_us=t_f, speedup=t_f / t_q,
                       int4_tflops=2 * m * n * k / (t_q * 1e-6) / 1e12,
                       torch_tflops=2 * m * n * k / (t_f * 1e-6) / 1e12,
                       int4_gbps=moved / (t_q * 1e-6) / 1e9,
                       int4_pct_copy=100 * moved / (t_q * 1e-6) / copy_bw)
            rows.append(row)
            print(f"  {n:>6} x {k:<6} M={m:<5} int4 {t_q:9.2f} us  torch {t_f:9.2f} us  "
                  f"speedup {row['speedup']:5.2f}x  {row['int4_gbps']:6.0f} GB/s ({row['int4_pct_copy']:4.1f}% copy)",
                  flush=True)
            del x
    del weights
    torch.cuda.empty_cache()
    order = {shape: i for i, shape in enumerate(shapes)}
    rows.sort(key=lambda r: (order[(r["n"], r["k"])], r["m"]))   # reported by shape, then M
    return rows


def geo_means(rows, ms, n_shapes):
    out = {}
    for m in ms:
        sp = [r["speedup"] for r in rows if r["m"] == m and math.isfinite(r["speedup"])]
        if len(sp) == n_shapes:
            out[m] = math.exp(sum(math.log(s) for s in sp) / len(sp))
    return out


def write_markdown(path, meta, results):
    lines = [f"# int4_linear vs torch matmul on {meta['device']}", "",
             f"- date: {meta['date']}", f"- commit: {meta['commit']}", f"- command: `{meta['command']}`",
             f"- torch {meta['torch']}, CUDA {meta['cuda']}, group size {meta['group']}",
             f"- device-to-device copy: {meta['copy_gbps']:.0f} GB/s (read + write)",
             f"- method: weights rotated over {meta['l2_multiple']}x L2, calls captured in one CUDA graph, "
             + ("int4 and torch graphs replayed alternately, median of timed replays per call; " if not meta.get("sustain") else
                f"each op's graph replayed back to back for {meta['sustain']:g} s (int4, then torch), median "
                "per call over the replays of the second half (sustained load, clocks under the power cap); ")
             + "cases run in ascending M over all shapes (decode cases before any compute-bound GEMM)", ""]
    for dtype_name, res in results.items():
        lines += [f"## {dtype_name}", "",
                  "| N x K | M | int4_linear us | torch us | speedup | int4 TFLOP/s | int4 GB/s | % copy BW |",
                  "|---|---|---|---|---|---|---|---|"]
        for r in res["rows"]:
            lines.append(f"| {r['n']} x {r['k']} | {r['m']} | {r['int4_us']:.1f} | {r['torch_us']:.1f} | "
                         f"{r['speedup']:.2f}x | {r['int4_tflops']:.1f} | {r['int4_gbps']:.0f} | "
                         f"{r['int4_pct_copy']:.1f} |")
        lines += ["", "| M | geo-mean speedup |", "|---|---|"]
        lines += [f"| {m} | {g:.2f}x |" for m, g in res["geo_mean"].items()]
        lines.append("")
    with open(path, "w") as f:
        f.write("\n".join(lines))


def write_plot(path, meta, results):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(results), figsize=(7 * len(results), 4.5), squeeze=False)
    for ax, (dtype_name, res) in zip(axes[0], results.items()):
        shapes = sorted({(r["n"], r["k"]) for r in res["rows"]}, key=lambda s: s[0] * s[1])
        for n, k in shapes:
            pts = [(r["m"], r["speedup"]) for r in res["rows"] if (r["n"], r["k"]) == (n, k)]
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=f"{n} x {k}")
        ax.axhline(1.0, color="gray", linewidth=0.8)
        ax.set_xscale("log", base=2)
        ax.set_xlabel("M (tokens)")
        ax.set_ylabel(f"speedup over torch {dtype_name} matmul")
        ax.set_title(f"int4_linear, {dtype_name}, g{meta['group']}, {meta['device']}")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main(argv=None):
    args = parse_args(argv)
    if not torch.cuda.is_available():
        sys.exit("bench_linear.py needs a CUDA device")
    import awq_ext

    if not awq_ext.build_info().get("cuda", False):
        sys.exit("awq_ext was built without CUDA kernels: rebuild with nvcc available")
    shapes = []
    for s in args.shapes.split(","):
        mt = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", s)
        if not mt:
            sys.exit(f"--shapes: cannot parse {s!r}, expected NxK")
        shapes.append((int(mt.group(1)), int(mt.group(2))))
    ms = [int(v) for v in args.m.split(",")]
    dtypes = {"float16": [torch.float16], "bfloat16": [torch.bfloat16],
              "both": [torch.float16, torch.bfloat16]}[args.dtype]
    for n, k in shapes:
        if k % args.group or k % 8:
            sys.exit(f"--shapes {n}x{k}: in_features must be a multiple of 8 and of --group {args.group}")

    props = torch.cuda.get_device_properties(0)
    device = props.name
    l2_bytes = getattr(props, "L2_cache_size", 50 << 20)
    copy_bw = copy_bandwidth()
    meta = dict(device=device, date=datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
                commit=git_commit(), command=" ".join([os.path.basename(sys.executable)] + sys.argv),
                torch=torch.__version__, cuda=torch.version.cuda, group=args.group,
                copy_gbps=copy_bw / 1e9, l2_multiple=args.l2_multiple, sm_count=props.multi_processor_count,
                sustain=args.sustain)
    print(f"{device}: {props.multi_processor_count} SMs, L2 {l2_bytes >> 20} MiB, copy {copy_bw / 1e9:.0f} GB/s")
    results = {}
    for dtype in dtypes:
        name = str(dtype).replace("torch.", "")
        print(f"== {name} ==")
        rows = bench_dtype(args, dtype, shapes, ms, copy_bw, l2_bytes)
        results[name] = dict(rows=rows, geo_mean=geo_means(rows, ms, len(shapes)))
        for m, g in results[name]["geo_mean"].items():
            print(f"  geo-mean speedup M={m}: {g:.2f}x")

    os.makedirs(args.out, exist_ok=True)
    tag = re.sub(r"[^A-Za-z0-9]+", "_", device).strip("_").lower()
    base = os.path.join(args.out, f"linear_{tag}" + ("_sustained" if args.sustain > 0 else ""))
    with open(base + ".json", "w") as f:
        json.dump(dict(meta=meta, results={k: dict(rows=v["rows"], geo_mean={str(m): g for m, g in v["geo_mean"].items()})
                                           for k, v in results.items()}), f, indent=1)
    write_markdown(base + ".md", meta, results)
    if not args.no_plot:
        try:
            write_plot(base + ".png", meta, results)
        except ImportError:
            print("matplotlib not installed: skipped the plot (pip install matplotlib, or --no-plot)")
    print(f"wrote {base}.json, {base}.md" + ("" if args.no_plot else f", {base}.png"))


if __name__ == "__main__":
    main()
