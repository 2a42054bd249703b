"""Typed wrappers and fake (meta) implementations of the awq_ext ops.

The ops themselves are registered in C++ (csrc/torch/ops.cpp) under the ``torch.ops.awq_ext``
namespace with CPU and, where built, CUDA implementations. The fakes below give torch.compile and
FakeTensor the output shapes without running a kernel. Nothing here touches CUDA at import.
"""
from __future__ import annotations

import torch

from awq_ext import _C  # noqa: F401  (loading the extension registers the ops)

_ops = torch.ops.awq_ext


def _groups(k: int, group_size: int) -> int:
    return 1 if group_size == -1 else k // group_size


def act_stats_(x: torch.Tensor, abs_sum: torch.Tensor, abs_max: torch.Tensor, count: torch.Tensor) -> None:
    """Accumulate per-channel sum|x| and max|x| of x [..., K] into fp32 [K] buffers, tokens into count."""
    _ops.act_stats_(x, abs_sum, abs_max, count)


def pseudo_quantize(w: torch.Tensor, bits: int, group_size: int, zero_point: bool,
                    scale: torch.Tensor | None = None, clip: torch.Tensor | None = None) -> torch.Tensor:
    """Grouped quantize-dequantize of w [N, K]: Q(w * scale) / scale, optional clip ratios [N, G]."""
    return _ops.pseudo_quantize(w, bits, group_size, zero_point, scale, clip)


def pseudo_quantize_error(w: torch.Tensor, scales: torch.Tensor, bits: int, group_size: int, zero_point: bool,
                          channel_weight: torch.Tensor | None = None) -> torch.Tensor:
    """Pseudo-quantization error of w [N, K] under C candidate per-input-channel scalings.

    scales: fp32 [C, K], one candidate scaling per row; channel_weight: optional fp32 [K] (e.g. mean
    x^2 per input channel from calibration, which makes the error a diagonal estimate of the output
    error; None = all ones). Returns err fp32 [C] with

        err[c] = sum_{n, k} channel_weight[k] * (pseudo_quantize(w, bits, group_size, zero_point,
                                                                 scales[c])[n, k] - w[n, k]) ** 2

    where the pseudo-quantized values are exactly the ``pseudo_quantize`` op's (same dtype rounding),
    differences in fp32, sums in fp32 on CUDA (deterministic order) and fp64 on the CPU. No [C, N, K]
    or [N, K] tensor is materialized: on the GPU W is read once per block of up to 24 candidates.
    """
    return _ops.pseudo_quantize_error(w, scales, bits, group_size, zero_point, channel_weight)


def quantize_int4(w: torch.Tensor, group_size: int, zero_point: bool, clip: torch.Tensor | None = None):
    """w [N, K] -> (qweight int32 [N, K/8], scales [N, G] in w.dtype, zeros uint8 [N, G])."""
    return _ops.quantize_int4(w, group_size, zero_point, clip)


def dequantize_int4(qweight: torch.Tensor, scales: torch.Tensor, zeros: torch.Tensor) -> torch.Tensor:
    """Kernel layout -> W [N, K] in scales.dtype."""
    return _ops.dequantize_int4(qweight, scales, zeros)


def pack_awq(qweight: torch.Tensor, zeros: torch.Tensor):
    """Kernel layout -> AutoAWQ "gemm" layout (qweight int32 [K, N/8], qzeros int32 [G, N/8])."""
    return _ops.pack_awq(qweight, zeros)


def unpack_awq(qweight_awq: torch.Tensor, qzeros_awq: torch.Tensor):
    """AutoAWQ "gemm" layout -> kernel layout (qweight int32 [N, K/8], zeros uint8 [N, G])."""
    return _ops.unpack_awq(qweight_awq, qzeros_awq)


def int4_linear(x: torch.Tensor, qweight: torch.Tensor, scales: torch.Tensor, zeros: torch.Tensor,
                bias: torch.Tensor | None = None) -> torch.Tensor:
    """y [..., N] = x [..., K] @ dequant(W)^T (+ bias), fp32 accumulation."""
    return _ops.int4_linear(x, qweight, scales, zeros, bias)


def clip_search(w: torch.Tensor, x: torch.Tensor, bits: int, group_size: int, zero_point: bool,
                n_grid: int = 20, max_shrink: float = 0.5):
    """Best clip ratio per (row, group) of w [N, K] by output error over x [T, K]: (ratio, err) [N, G]."""
    return _ops.clip_search(w, x, bits, group_size, zero_point, n_grid, max_shrink)


# ---- fake implementations (shapes and dtypes only) -------------------------------------------
@torch.library.register_fake("awq_ext::act_stats_")
def _act_stats_fake(x, abs_sum, abs_max, count):
    return None


@torch.library.register_fake("awq_ext::pseudo_quantize")
def _pseudo_quantize_fake(w, bits, group_size, zero_point, scale=None, clip=None):
    return torch.empty_like(w)


@torch.library.register_fake("awq_ext::pseudo_quantize_error")
def _pseudo_quantize_error_fake(w, scales, bits, group_size, zero_point, channel_weight=None):
    return w.new_empty((scales.shape[0],), dtype=torch.float32)


@torch.library.register_fake("awq_ext::quantize_int4")
def _quantize_int4_fake(w, group_size, zero_point, clip=None):
    n, k = w.shape
    g = _groups(k, group_size)
    return (w.new_empty((n, k // 8), dtype=torch.int32), w.new_empty((n, g)),
            w.new_empty((n, g), dtype=torch.uint8))


@torch.library.register_fake("awq_ext::dequantize_int4")
def _dequantize_int4_fake(qweight, scales, zeros):
    return scales.new_empty((qweight.shape[0], qweight.shape[1] * 8))


@torch.library.register_fake("awq_ext::pack_awq")
def _pack_awq_fake(qweight, zeros):
    n, kw = qweight.shape
    return (qweight.new_empty((kw * 8, n // 8)), qweight.new_empty((zeros.shape[1], n // 8)))


@torch.library.register_fake("awq_ext::unpack_awq")
def _unpack_awq_fake(qweight_awq, qzeros_awq):
    k, nw = qweight_awq.shape
    return (qweight_awq.new_empty((nw * 8, k // 8)),
            qweight_awq.new_empty((nw * 8, qzeros_awq.shape[0]), dtype=torch.uint8))


@torch.library.register_fake("awq_ext::int4_linear")
def _int4_linear_fake(x, qweight, scales, zeros, bias=None):
    return x.new_empty((*x.shape[:-1], qweight.shape[0]))


@torch.library.register_fake("awq_ext::clip_search")
def _clip_search_fake(w, x, bits, group_size, zero_point, n_grid=20, max_shrink=0.5):
    n, k = w.shape
    g = _groups(k, group_size)
    return (w.new_empty((n, g), dtype=torch.float32), w.new_empty((n, g), dtype=torch.float32))
