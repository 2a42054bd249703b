"""Per-group clip search and the swap of nn.Linear for Int4Linear."""
from __future__ import annotations

import torch
from torch import nn

from awq_ext import ops
from awq_ext.config import AWQConfig
from awq_ext.nn import Int4Linear


@torch.no_grad()
def search_clip(linear: nn.Linear, x: torch.Tensor, config: AWQConfig) -> torch.Tensor:
    """Best clip ratio per (row, group), fp32 [N, G], for the linear's current weight over tokens x [T, K]."""
    w = linear.weight.data.contiguous()
    ratio, _ = ops.clip_search(w, x.to(device=w.device, dtype=w.dtype).contiguous(), config.bits,
                               config.group_size, config.zero_point, config.clip_n_grid, config.clip_max_shrink)
    return ratio


def replace_module(root: nn.Module, name: str, new: nn.Module) -> None:
    """Set root.<name> (a dotted path) to new."""
    parent_name, _, attr = name.rpartition(".")
    parent = root.get_submodule(parent_name) if parent_name else root
    setattr(parent, attr, new)


@torch.no_grad()
def quantize_linear(linear: nn.Linear, config: AWQConfig, clip: torch.Tensor | None) -> Int4Linear:
    return Int4Linear.from_linear(linear, config.group_size, config.zero_point, clip=clip)
