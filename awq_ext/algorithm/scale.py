"""AWQ's per-channel scale: grid search, then folding into the previous op.

For a group of linears reading x [T, K] with weights W [N, K], a per-input-channel scale s [K] keeps
the float function (x / s) (W * s)^T = x W^T but changes what quantization rounds: channels with
large activations get larger weights and so smaller relative rounding error. The search tries
s = mean|x|^alpha (optionally / mean|w|^(1 - alpha)) on a grid of alpha and keeps the s whose
pseudo-quantized weights Q(W s) / s give the smallest error at the output of an inspected module.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from awq_ext import ops
from awq_ext.algorithm.plan import PREV_LINEAR, PREV_NORM, PREV_NORM_PLUS_ONE, ScaleGroup
from awq_ext.config import AWQConfig


@dataclass
class ScaleResult:
    scale: torch.Tensor | None  # fp32 [K], normalized; None: no candidate beat round-to-nearest
    alpha: float | None         # grid point of the chosen candidate (None with scale None)
    loss_rtn: float       # inspected-module MSE with round-to-nearest weights
    loss_best: float      # the same with the chosen scale (<= loss_rtn)


#: fp32 elements of a weight converted at a time (32 MiB) when a scale is folded in: no fp32 copy of
#: a whole weight (gate of a 7B block: 172 MiB, twice, besides the fp16 result)
CHUNK_ELEMS = 1 << 23


def _row_chunks(w: torch.Tensor) -> list[torch.Tensor]:
    """Views of w [N, K] in slices of whole rows, about CHUNK_ELEMS elements each."""
    return list(w.split(max(1, CHUNK_ELEMS // max(1, w[0].numel()))))


def weight_magnitude(weights: list[torch.Tensor], group_size: int) -> torch.Tensor:
    """Mean over rows of |w| normalized by its group's max: the per-channel weight size duo scaling uses.

    One fp32 copy of the stacked weights, worked on in place (gate+up of a 7B block: 344 MiB, where
    cat, abs and the division as separate tensors held three times that at once).
    """
    n, k = sum(x.shape[0] for x in weights), weights[0].shape[1]
    w = torch.empty(n, k, dtype=torch.float32, device=weights[0].device)  # [N_total, K]
    start = 0
    for x in weights:
        w[start:start + x.shape[0]].copy_(x)
        start += x.shape[0]
    g = k if group_size == -1 else group_size
    wg = w.abs_().reshape(n, k // g, g)                          # [N, K] -> [N, G, g]
    wg.div_(wg.amax(-1, keepdim=True).clamp_min(1e-8))
    return wg.reshape(n, k).mean(0)                              # [K]


def candidate_scale(x_mean: torch.Tensor, w_mean: torch.Tensor | None, alpha: float) -> torch.Tensor:
    """s = x^alpha (/ w^(1 - alpha)), divided by sqrt(max s * min s) so that it is centred around 1."""
    s = x_mean.pow(alpha)
    if w_mean is not None:
        s = s / (w_mean.pow(1.0 - alpha) + 1e-4)
    s = s.clamp_min(1e-4)
    return s / (s.max() * s.min()).sqrt()


def search_scale(group: ScaleGroup, x_mean: torch.Tensor, loss_fn: Callable[[], float],
                 config: AWQConfig) -> ScaleResult:
    """Grid search of the group's scale.

    x_mean: fp32 [K] mean |x| of the group's input over the calibration tokens.
    loss_fn: runs the inspected module on the search tokens with the group's current weights and
        returns the MSE against its float output.
    The quantized linears' weights are swapped for pseudo-quantized copies during the search and
    restored afterwards; the block is unchanged on return.
    """
    lins = [group.linears[n] for n in group.quantized]
    originals = [lin.weight.data for lin in lins]
    w_mean = weight_magnitude(originals, config.group_size) if config.duo_scaling else None
    x_mean = x_mean.to(device=originals[0].device, dtype=torch.float32)

    def loss_with(scale: torch.Tensor | None) -> float:
        for lin, w in zip(lins, originals):
            lin.weight.data = w  # frees the previous candidate before the next one is allocated
            lin.weight.data = ops.pseudo_quantize(w, config.bits, config.group_size, config.zero_point, scale=scale)
        return loss_fn()

    try:
        loss_rtn = loss_with(None)
        best = ScaleResult(None, None, loss_rtn, loss_rtn)
        for i in range(config.n_grid):
            alpha = i / config.n_grid
            if i == 0 and w_mean is None:
                continue  # x^0 normalized is all ones: the round-to-nearest point measured above
            s = candidate_scale(x_mean, w_mean, alpha)
            loss = loss_with(s)
            if loss < best.loss_best:
                best = ScaleResult(s, alpha, loss_rtn, loss)
    finally:
        for lin, w in zip(lins, originals):
            lin.weight.data = w
    return best


@torch.no_grad()
def apply_scale(group: ScaleGroup, scale: torch.Tensor) -> None:
    """Fold s into the group: prev op's output divided by s, every linear's input columns times s.

    Arithmetic runs in fp32 and is rounded once to each parameter's dtype.
    """
    prev = group.prev
    s = scale.float()

    def set_(p: nn.Parameter, v: torch.Tensor):
        p.data.copy_(v.to(p.dtype))

    def set_rows_(w: torch.Tensor, fn):
        """w [N, K] <- fn(fp32 rows, row slice), one slice of rows at a time (elementwise: the same
        numbers as on the whole weight)."""
        start = 0
        for part in _row_chunks(w.data):
            stop = start + part.shape[0]
            part.copy_(fn(part.float(), slice(start, stop)).to(w.dtype))
            start = stop

    s_prev = s.to(prev.weight.device)
    if group.prev_kind == PREV_LINEAR:
        set_rows_(prev.weight, lambda w, r: w / s_prev[r].unsqueeze(1))  # rows of W [out, in]
        if prev.bias is not None:
            set_(prev.bias, prev.bias.float() / s_prev)
    elif group.prev_kind == PREV_NORM:
        set_(prev.weight, prev.weight.float() / s_prev)
        if getattr(prev, "bias", None) is not None:
            set_(prev.bias, prev.bias.float() / s_prev)
    elif group.prev_kind == PREV_NORM_PLUS_ONE:
        set_(prev.weight, (1.0 + prev.weight.float()) / s_prev - 1.0)
        if getattr(prev, "bias", None) is not None:
            set_(prev.bias, prev.bias.float() / s_prev)
    for lin in group.linears.values():
        s_lin = s.to(lin.weight.device).unsqueeze(0)
        set_rows_(lin.weight, lambda w, r: w * s_lin)  # columns of W [out, in]
