"""Bandwidth of awq_ext's quantization ops on the GPU, and the clip search against the chunked
PyTorch formulation that AWQ's reference implementation uses.

    python bench/bench_quant.py                      # everything through torch.ops.awq_ext
    python bench/bench_quant.py --reference-only     # only the chunked PyTorch clip search (no awq_ext)

Method: random inputs; enough input copies that each call streams from DRAM (working set >= 4x L2);
CUDA events around each call, median; bandwidth = bytes read + written, and % of a device-to-device
copy measured in the same run. Clip search: time and torch.cuda.max_memory_allocated over the call
(inputs excluded), for awq_ext.clip_search and for the formulation of llm-awq's auto_clip (batches
of 64 output channels, [oc, T, G, g] products in the model dtype). Writes
bench/results/quant_<device>.md.
"""
from __future__ import annotations

import argparse
import datetime
import pathlib
import statistics

import torch


def _median_us(fn, reps: int, warmup: int = 3) -> float:
    for i in range(warmup):
        fn(i)
    torch.cuda.synchronize()
    pairs = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)) for _ in range(reps)]
    for i, (a, b) in enumerate(pairs):
        a.record()
        fn(i)
        b.record()
    torch.cuda.synchronize()
    return statistics.median(a.elapsed_time(b) for a, b in pairs) * 1000.0


def _copies(nbytes: int) -> int:
    l2 = torch.cuda.get_device_properties(0).L2_cache_size
    return max(2, min(8, 4 * l2 // max(nbytes, 1) + 1))


def copy_bandwidth() -> float:
    """Device-to-device copy of 1 GiB, GB/s counting bytes read and written."""
    src = torch.empty(1 << 30, dtype=torch.uint8, device="cuda").fill_(1)
    dst = torch.empty_like(src)
    us = _median_us(lambda i: dst.copy_(src), 20)
    del src, dst
    return 2 * (1 << 30) / (us * 1e-6) / 1e9


# ------------------------------------------------------------------------------------------------
# chunked PyTorch clip search (the formulation of llm-awq's auto_clip, with core.h's arithmetic)
# ------------------------------------------------------------------------------------------------
@torch.no_grad()
def clip_search_chunked(w: torch.Tensor, x: torch.Tensor, bits: int, group_size: int, zero_point: bool,
                        n_grid: int = 20, max_shrink: float = 0.5, oc_batch: int = 64):
    """Best clip ratio per (row, group): per batch of oc_batch rows, materializes the [oc, T, G, g]
    products of x with the original and with each candidate's quantized weights, in w.dtype."""
    n, k = w.shape
    g = k if group_size == -1 else group_size
    xg = x.reshape(-1, k).reshape(1, -1, k // g, g)  # [T, K] -> [1, T, G, g]
    qmax = 2**bits - 1 if zero_point else 2 ** (bits - 1) - 1
    qmin = 0 if zero_point else -(2 ** (bits - 1))
    ratios, errors = [], []
    for i0 in range(0, n, oc_batch):
        wb = w[i0:i0 + oc_batch].reshape(-1, 1, k // g, g)  # [oc, K] -> [oc, 1, G, g]
        org_out = (xg * wb).sum(-1)                         # [oc, T, G]
        amax = wb.abs().amax(-1, keepdim=True)              # [oc, 1, G, 1]
        mn, mx = wb.amin(-1, keepdim=True), wb.amax(-1, keepdim=True)
        best_err = torch.full(amax.shape[:1] + amax.shape[2:3], float("inf"), device=w.device)
        best_ratio = torch.ones_like(best_err)
        for i in range(int(max_shrink * n_grid)):
            r = 1 - i / n_grid
            lim = amax * r
            if zero_point:
                lo, hi = torch.maximum(mn, -lim), torch.minimum(mx, lim)
                scale = (hi - lo).clamp_min(1e-5) / qmax
                zero = torch.round(-lo / scale).clamp(qmin, qmax)
            else:
                lo, hi = -lim, lim
                scale = lim.clamp_min(1e-5) / qmax
                zero = torch.zeros_like(scale)
            q = (torch.round(torch.clamp(wb, lo, hi) / scale) + zero).clamp(qmin, qmax)
            qw = (q - zero) * scale                         # [oc, 1, G, g]
            cur_out = (xg * qw).sum(-1)                     # [oc, T, G]
            err = (cur_out - org_out).float().pow(2).sum(1)  # [oc, G]
            better = err < best_err
            best_err = torch.where(better, err, best_err)
            best_ratio = torch.where(better, torch.full_like(best_ratio, r), best_ratio)
        ratios.append(best_ratio)
        errors.append(best_err)
    return torch.cat(ratios), torch.cat(errors)


def _timed_with_memory(fn, reps: int):
    fn()  # warm-up
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.memory_allocated()
    times = []
    for _ in range(reps):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        fn()
        b.record()
        torch.cuda.synchronize()
        times.append(a.elapsed_time(b))
    peak = torch.cuda.max_memory_allocated() - base
    return statistics.median(times), peak


def bench_clip(rows: list, n: int, k: int, tokens: int, dtype, reference_only: bool, reps: int):
    w = (torch.randn(n, k, device="cuda") * 0.05).to(dtype)
    x = (torch.randn(tokens, k, device="cuda") * 2).to(dtype)
    ms_ref, mem_ref = _timed_with_memory(lambda: clip_search_chunked(w, x, 4, 128, True), reps)
    line = {"shape": f"W {n}x{k} g128, T={tokens}, 10 candidates", "dtype": str(dtype).split(".")[-1],
            "ref_ms": ms_ref, "ref_mib": mem_ref / 2**20}
    if not reference_only:
        from awq_ext import ops

        ms, mem = _timed_with_memory(lambda: ops.clip_search(w, x, 4, 128, True, 20, 0.5), reps)
        line.update(ms=ms, mib=mem / 2**20)
    rows.append(line)
    print(line, flush=True)


# ------------------------------------------------------------------------------------------------
# bandwidth of the other ops through torch.ops.awq_ext
# ------------------------------------------------------------------------------------------------
def bench_ops(rows: list, copy_gbs: float):
    from awq_ext import ops

    def add(op, shape, dtype, us, nbytes, note=""):
        gbs = nbytes / (us * 1e-6) / 1e9
        rows.append(dict(op=op, shape=shape, dtype=str(dtype).split(".")[-1], us=us, gbs=gbs,
                         pct=100 * gbs / copy_gbs, note=note))
        print(rows[-1], flush=True)

    for dtype in (torch.float16, torch.bfloat16):
        t, k = 8192, 4096
        nc = _copies(t * k * 2)
        xs = [torch.randn(t, k, device="cuda").to(dtype) for _ in range(nc)]
        s = torch.zeros(k, device="cuda")
        m = torch.zeros(k, device="cuda")
        c = torch.zeros(1, dtype=torch.long, device="cuda")
        us = _median_us(lambda i: ops.act_stats_(xs[i % nc], s, m, c), 50)
        add("act_stats_", f"x {t}x{k}", dtype, us, t * k * xs[0].element_size())
        del xs

        for n, k in ((11008, 4096), (28672, 8192)):
            esz = torch.finfo(dtype).bits // 8
            nc = _copies(2 * n * k * esz)
            ws = [(torch.randn(n, k, device="cuda") * 0.05).to(dtype) for _ in range(nc)]
            scale = torch.rand(k, device="cuda") + 0.5
            shape = f"W {n}x{k} g128"
            us = _median_us(lambda i: ops.pseudo_quantize(ws[i % nc], 4, 128, True), 30)
            add("pseudo_quantize", shape, dtype, us, 2 * n * k * esz, "incl. output allocation")
            us = _median_us(lambda i: ops.pseudo_quantize(ws[i % nc], 4, 128, True, scale), 30)
            add("pseudo_quantize", shape, dtype, us, 2 * n * k * esz, "w*s, /s; incl. allocation")
            if (n, k) == (11008, 4096):
                # C candidate scalings at once; bytes: W read once (the op is compute-bound: C groups'
                # quantization per element), against the naive loop it replaces
                cands = 20
                cand_scales = torch.rand(cands, k, device="cuda") * 1.5 + 0.5
                cw = torch.rand(k, device="cuda")
                us = _median_us(lambda i: ops.pseudo_quantize_error(ws[i % nc], cand_scales, 4, 128, True, cw),
                                20)

                def naive(i):
                    wi = ws[i % nc]
                    wf = wi.float()
                    return torch.stack([((ops.pseudo_quantize(wi, 4, 128, True, cand_scales[c]).float() - wf)
                                         .pow(2) * cw).sum() for c in range(cands)])

                us_naive = _median_us(naive, 10)
                add("pseudo_quantize_error", f"{shape}, C={cands}", dtype, us, n * k * esz,
                    f"GB/s of reading W once; naive loop ({cands} pseudo_quantize + PyTorch error) "
                    f"{us_naive:.0f} us, {us_naive / us:.1f}x")
            side = n * (k // 128) * (esz + 1)
            us = _median_us(lambda i: ops.quantize_int4(ws[i % nc], 128, True), 30)
            add("quantize_int4", shape, dtype, us, n * k * esz + n * k // 2 + side)
            packed = [ops.quantize_int4(wi, 128, True) for wi in ws]
            us = _median_us(lambda i: ops.dequantize_int4(*packed[i % nc]), 30)
            add("dequantize_int4", shape, dtype, us, n * k * esz + n * k // 2 + side)
            if dtype == torch.float16:
                us = _median_us(lambda i: ops.pack_awq(packed[i % nc][0], packed[i % nc][2]), 30)
                add("pack_awq", shape, dtype, us, n * k + n * (k // 128) * 1.5)
            del ws, packed


def write_markdown(path: pathlib.Path, device: str, copy_gbs: float, op_rows: list, clip_rows: list, argv: str):
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [f"# awq_ext quantization ops on {device}", "",
             f"{now}; torch {torch.__version__}; command: `{argv}`; device-to-device copy "
             f"{copy_gbs:.0f} GB/s (read + write).", ""]
    if op_rows:
        lines += ["| op | shape | dtype | us | GB/s | % of copy | note |", "|---|---|---|---|---|---|---|"]
        lines += [f"| {r['op']} | {r['shape']} | {r['dtype']} | {r['us']:.1f} | {r['gbs']:.0f} | {r['pct']:.1f} | "
                  f"{r['note']} |" for r in op_rows]
        lines.append("")
    if clip_rows:
        lines += ["| clip search | dtype | chunked PyTorch ms | its peak MiB | awq_ext ms | awq_ext peak MiB | speedup |",
                  "|---|---|---|---|---|---|---|"]
        for r in clip_rows:
            ms = r.get("ms")
            lines.append(f"| {r['shape']} | {r['dtype']} | {r['ref_ms']:.1f} | {r['ref_mib']:.0f} | "
                         + (f"{ms:.2f} | {r['mib']:.1f} | {r['ref_ms'] / ms:.0f}x |" if ms else "- | - | - |"))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--reference-only", action="store_true", help="only the chunked PyTorch clip search")
    ap.add_argument("--reps", type=int, default=3, help="timed repetitions of each clip search")
    ap.add_argument("--out", type=pathlib.Path, default=None, help="markdown output path")
    args = ap.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("bench_quant.py needs a CUDA device")
    device = torch.cuda.get_device_name(0)
    copy_gbs = copy_bandwidth()
    op_rows, clip_rows = [], []
    if not args.reference_only:
        bench_ops(op_rows, copy_gbs)
    for dtype in (torch.float16, torch.bfloat16):
        bench_clip(clip_rows, 11008, 4096, 512, dtype, args.reference_only, args.reps)
    slug = device.replace(" ", "_").replace("/", "_")
    out = args.out or pathlib.Path(__file__).parent / "results" / f"quant_{slug}.md"
    write_markdown(out, device, copy_gbs, op_rows, clip_rows, "python bench/bench_quant.py "
                   + ("--reference-only" if args.reference_only else ""))


if __name__ == "__main__":
    main()
