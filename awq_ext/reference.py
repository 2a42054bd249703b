"""Pure-PyTorch oracle for every awq_ext op: the specification the kernels are tested against.

Written for clarity, not speed. Every function computes in fp32 (fp64 for matrix products) and
follows csrc/include/awq/core.h step by step, so integer results (codes, zero points, packed words)
must match the kernels exactly and float results to within rounding.
"""
from __future__ import annotations

import torch

# nibble i of a packed int32 word holds element NIBBLE_ORDER[i] of the word's 8 elements
NIBBLE_ORDER = (0, 2, 4, 6, 1, 3, 5, 7)


def resolve_group_size(group_size: int, k: int) -> int:
    """-1 means one group per row."""
    return k if group_size == -1 else group_size


# --------------------------------------------------------------------------------------------
# activation statistics
# --------------------------------------------------------------------------------------------
def act_stats(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Per-channel sum |x| and max |x| (fp32) over all leading dims, and the token count."""
    x2 = x.reshape(-1, x.shape[-1]).float().abs()  # x [..., K] -> [T, K]
    if x2.shape[0] == 0:
        return torch.zeros(x.shape[-1]), torch.zeros(x.shape[-1]), 0
    return x2.double().sum(0).float(), x2.amax(0), x2.shape[0]


# --------------------------------------------------------------------------------------------
# group quantization
# --------------------------------------------------------------------------------------------
def group_qparams(v: torch.Tensor, bits: int, zero_point: bool, dtype: torch.dtype,
                  clip: torch.Tensor | None = None):
    """v [N, G, g] fp32 -> (scale, zero, lo, hi, qmin, qmax), each [N, G, 1] (qmin/qmax floats)."""
    mn = v.amin(-1, keepdim=True)
    mx = v.amax(-1, keepdim=True)
    lim = torch.maximum(mn.abs(), mx.abs())
    if clip is not None:
        lim = lim * clip.float().unsqueeze(-1)
    if zero_point:
        lo = torch.maximum(mn, -lim)
        hi = torch.minimum(mx, lim)
        qmin, qmax = 0.0, float(2**bits - 1)
        scale = ((hi - lo).clamp_min(1e-5) / qmax).to(dtype).float()
        zero = torch.round(-lo / scale).clamp(qmin, qmax)
    else:
        qmin, qmax = -float(2 ** (bits - 1)), float(2 ** (bits - 1) - 1)
        lo, hi = -lim, lim
        scale = (lim.clamp_min(1e-5) / qmax).to(dtype).float()
        zero = torch.zeros_like(scale)
    return scale, zero, lo, hi, qmin, qmax


def _codes(v, scale, zero, lo, hi, qmin, qmax):
    return (torch.round(torch.minimum(torch.maximum(v, lo), hi) / scale) + zero).clamp(qmin, qmax)


def pseudo_quantize(w: torch.Tensor, bits: int, group_size: int, zero_point: bool,
                    scale: torch.Tensor | None = None, clip: torch.Tensor | None = None) -> torch.Tensor:
    """Q(w * s) / s per group, returned in w.dtype (see PseudoQuantParams in core.h)."""
    n, k = w.shape
    g = resolve_group_size(group_size, k)
    v = w.float()
    if scale is not None:
        v = v * scale.float()
    v = v.reshape(n, k // g, g)  # w [N, K] -> [N, G, g]
    s, z, lo, hi, qmin, qmax = group_qparams(v, bits, zero_point, w.dtype, clip)
    out = (_codes(v, s, z, lo, hi, qmin, qmax) - z) * s
    out = out.reshape(n, k)
    if scale is not None:
        out = out / scale.float()
    return out.to(w.dtype)


def pseudo_quantize_error(w: torch.Tensor, scales: torch.Tensor, bits: int, group_size: int, zero_point: bool,
                          channel_weight: torch.Tensor | None = None) -> torch.Tensor:
    """err [C] fp32: err[c] = sum_{n,k} channel_weight[k] * (pseudo_quantize(w, scale=scales[c]) - w)^2.

    The pseudo-quantized values are pseudo_quantize's (in w.dtype); differences, squares and sums in
    fp64 here (the kernels: differences in fp32, sums in fp32 or fp64).
    """
    wd = w.double()
    cw = None if channel_weight is None else channel_weight.double()  # [K], broadcast over rows
    err = []
    for c in range(scales.shape[0]):
        d2 = (pseudo_quantize(w, bits, group_size, zero_point, scales[c]).double() - wd).pow(2)  # [N, K]
        err.append((d2 if cw is None else d2 * cw).sum())
    return torch.stack(err).float() if err else torch.zeros(0)


def pack_kernel(codes: torch.Tensor) -> torch.Tensor:
    """codes [N, K] in 0..15 -> int32 [N, K/8], nibble i = element NIBBLE_ORDER[i] of each 8."""
    n, k = codes.shape
    c = codes.to(torch.int64).reshape(n, k // 8, 8)  # [N, K] -> [N, K/8, 8]
    word = torch.zeros(n, k // 8, dtype=torch.int64)
    for i, e in enumerate(NIBBLE_ORDER):
        word |= (c[..., e] & 0xF) << (4 * i)
    return (word - ((word >> 31) << 32)).to(torch.int32)  # reinterpret as signed int32


def unpack_kernel(qweight: torch.Tensor) -> torch.Tensor:
    """int32 [N, K/8] -> codes uint8 [N, K]."""
    n, kw = qweight.shape
    w = qweight.to(torch.int64) & 0xFFFFFFFF
    out = torch.empty(n, kw, 8, dtype=torch.uint8)
    for i, e in enumerate(NIBBLE_ORDER):
        out[..., e] = ((w >> (4 * i)) & 0xF).to(torch.uint8)
    return out.reshape(n, kw * 8)


def quantize_int4(w: torch.Tensor, group_size: int, zero_point: bool, clip: torch.Tensor | None = None):
    """w [N, K] -> (qweight int32 [N, K/8], scales w.dtype [N, G], zeros uint8 [N, G])."""
    n, k = w.shape
    g = resolve_group_size(group_size, k)
    v = w.float().reshape(n, k // g, g)  # [N, K] -> [N, G, g]
    s, z, lo, hi, qmin, qmax = group_qparams(v, 4, zero_point, w.dtype, clip)
    codes = _codes(v, s, z, lo, hi, qmin, qmax)
    if not zero_point:  # symmetric codes -8..7 are stored offset by 8 with zero point 8
        codes = codes + 8
        z = z + 8
    codes = codes.reshape(n, k).to(torch.uint8)
    return pack_kernel(codes), s.squeeze(-1).to(w.dtype), z.squeeze(-1).to(torch.uint8)


def dequantize_int4(qweight: torch.Tensor, scales: torch.Tensor, zeros: torch.Tensor) -> torch.Tensor:
    """Kernel layout -> W [N, K] in scales.dtype: (q - z) * s."""
    codes = unpack_kernel(qweight.cpu()).float()
    n, k = codes.shape
    groups = scales.shape[1]
    c = codes.reshape(n, groups, k // groups)  # [N, K] -> [N, G, g]
    w = (c - zeros.cpu().float().unsqueeze(-1)) * scales.cpu().float().unsqueeze(-1)
    return w.reshape(n, k).to(scales.dtype).to(scales.device)


# --------------------------------------------------------------------------------------------
# AutoAWQ "gemm" layout
# --------------------------------------------------------------------------------------------
def pack_awq(qweight: torch.Tensor, zeros: torch.Tensor):
    """Kernel layout -> AutoAWQ: (qweight int32 [K, N/8], qzeros int32 [G, N/8])."""
    codes_t = unpack_kernel(qweight.cpu()).t().contiguous()  # [N, K] -> [K, N]
    return pack_kernel(codes_t), pack_kernel(zeros.cpu().t().contiguous())


def unpack_awq(qweight_awq: torch.Tensor, qzeros_awq: torch.Tensor):
    """AutoAWQ -> kernel layout: (qweight int32 [N, K/8], zeros uint8 [N, G])."""
    codes = unpack_kernel(qweight_awq.cpu()).t().contiguous()  # [K, N] -> [N, K]
    zeros = unpack_kernel(qzeros_awq.cpu()).t().contiguous()   # [G, N] -> [N, G]
    return pack_kernel(codes), zeros


# --------------------------------------------------------------------------------------------
# INT4 linear
# --------------------------------------------------------------------------------------------
def int4_linear(x: torch.Tensor, qweight: torch.Tensor, scales: torch.Tensor, zeros: torch.Tensor,
                bias: torch.Tensor | None = None) -> torch.Tensor:
    """y = x @ dequant(W)^T (+ bias), computed in fp64, returned in x.dtype."""
    w = dequantize_int4(qweight, scales, zeros).double().cpu()
    y = x.double().cpu() @ w.t()
    if bias is not None:
        y = y + bias.double().cpu()
    return y.to(x.dtype).to(x.device)


# --------------------------------------------------------------------------------------------
# clip search
# --------------------------------------------------------------------------------------------
def clip_candidates(n_grid: int, max_shrink: float) -> list[float]:
    return [1.0 - i / n_grid for i in range(int(max_shrink * n_grid))]


def clip_search(w: torch.Tensor, x: torch.Tensor, bits: int, group_size: int, zero_point: bool,
                n_grid: int = 20, max_shrink: float = 0.5):
    """Best clip ratio per (row, group) by output error over x's tokens: (ratio, err), fp32 [N, G]."""
    n, k = w.shape
    g = resolve_group_size(group_size, k)
    v = w.float().reshape(n, k // g, g)                      # [N, G, g]
    xs = x.reshape(-1, k).double().reshape(-1, k // g, g)    # [T, K] -> [T, G, g]
    best_err = torch.full((n, k // g), float("inf"), dtype=torch.float64)
    best_ratio = torch.ones(n, k // g)
    for r in clip_candidates(n_grid, max_shrink):
        clip = torch.full((n, k // g), r)
        s, z, lo, hi, qmin, qmax = group_qparams(v, bits, zero_point, w.dtype, clip)
        delta = ((_codes(v, s, z, lo, hi, qmin, qmax) - z) * s - v).double()  # [N, G, g]
        err = torch.einsum("tjc,njc->ntj", xs, delta).pow(2).sum(1)           # [N, G]
        better = err < best_err
        best_err = torch.where(better, err, best_err)
        best_ratio = torch.where(better, torch.full_like(best_ratio, r), best_ratio)
    return best_ratio, best_err.float()
