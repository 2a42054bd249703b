"""Int4Linear: an nn.Linear replacement whose weight is packed INT4 in the kernel layout."""
from __future__ import annotations

import torch
from torch import nn

from awq_ext import ops


class Int4Linear(nn.Module):
    """y = x @ dequant(W)^T + bias through awq_ext.ops.int4_linear (CPU and CUDA).

    Buffers (kernel layout, see csrc/include/awq/core.h):
      qweight int32 [out, in/8], scales [out, in/group] (compute dtype), zeros uint8 [out, in/group],
      bias [out] (compute dtype) or None.
    Inputs of another float dtype are cast to the compute dtype and the output cast back.
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True, group_size: int = 128,
                 dtype: torch.dtype = torch.float16, device: torch.device | str | None = None):
        super().__init__()
        g = in_features if group_size == -1 else group_size
        if in_features % 8 != 0:
            raise ValueError(f"in_features={in_features} must be a multiple of 8 for INT4 packing")
        if g <= 0 or in_features % g != 0:
            raise ValueError(f"group_size={group_size} must divide in_features={in_features}")
        self.in_features = in_features
        self.out_features = out_features
        self.group_size = group_size
        groups = in_features // g
        self.register_buffer("qweight", torch.zeros(out_features, in_features // 8, dtype=torch.int32, device=device))
        self.register_buffer("scales", torch.zeros(out_features, groups, dtype=dtype, device=device))
        self.register_buffer("zeros", torch.zeros(out_features, groups, dtype=torch.uint8, device=device))
        if bias:
            self.register_buffer("bias", torch.zeros(out_features, dtype=dtype, device=device))
        else:
            self.bias = None

    @classmethod
    def from_linear(cls, linear: nn.Linear, group_size: int, zero_point: bool = True,
                    clip: torch.Tensor | None = None, dtype: torch.dtype | None = None) -> "Int4Linear":
        """Quantize a float nn.Linear (optionally with per-group clip ratios [out, in/group])."""
        w = linear.weight.detach()
        dtype = dtype or w.dtype
        mod = cls(linear.in_features, linear.out_features, linear.bias is not None, group_size,
                  dtype=dtype, device=w.device)
        qweight, scales, zeros = ops.quantize_int4(w.to(dtype).contiguous(), group_size, zero_point, clip)
        mod.qweight.copy_(qweight)
        mod.scales.copy_(scales)
        mod.zeros.copy_(zeros)
        if linear.bias is not None:
            mod.bias.copy_(linear.bias.detach().to(dtype))
        return mod

    def dequantized_weight(self) -> torch.Tensor:
        return ops.dequantize_int4(self.qweight, self.scales, self.zeros)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dt = self.scales.dtype
        y = ops.int4_linear(x.to(dt), self.qweight, self.scales, self.zeros, self.bias)
        return y if x.dtype == dt else y.to(x.dtype)

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"bias={self.bias is not None}, group_size={self.group_size}, dtype={self.scales.dtype}")
