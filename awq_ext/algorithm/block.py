"""AWQ on one transformer block: statistics, scale search, scaling, clip search, quantization.

The steps, for a block whose inputs (hidden states and kwargs, per calibration batch) are known:
  1. one float forward over every batch, with hooks that accumulate mean|x| of each linear's input
     (awq_ext.ops.act_stats_), keep a seeded sample of each linear's input tokens for the clip search
     and of each group's inspected-module input for the scale search, and keep the float outputs;
  2. for each scale group, the grid search of its scale on the float block (scale.search_scale);
  3. all scales folded into the block (exact in float arithmetic);
  4. per linear: clip search on its sampled inputs (divided by its scale), quantize, pack, swap in an
     Int4Linear;
  5. the quantized block run on every batch: its outputs are the next block's inputs, and their MSE
     against the float outputs is the block's loss.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from awq_ext import ops
from awq_ext.algorithm.calibration import sample_batches, sample_tokens
from awq_ext.algorithm.clip import quantize_linear, replace_module, search_clip
from awq_ext.algorithm.plan import BlockPlan, ScaleGroup
from awq_ext.algorithm.scale import apply_scale, search_scale
from awq_ext.config import AWQConfig


@dataclass
class GroupReport:
    name: str
    alpha: float | None  # None: round-to-nearest kept (no scale beat it)
    loss_rtn: float   # inspected-module MSE, round-to-nearest weights
    loss_awq: float   # the same with the chosen scale


@dataclass
class BlockReport:
    prefix: str
    groups: list[GroupReport] = field(default_factory=list)
    block_loss: float = float("nan")      # MSE of the quantized block's output vs the float block's
    block_loss_rtn: float | None = None   # same for round-to-nearest weights (when measured)
    seconds: float = 0.0
    step_seconds: dict[str, float] = field(default_factory=dict)  # float pass, search, clip+quantize, next


#: tokens per forward of an inspected module inside the scale-search loss
LOSS_CHUNK_TOKENS = 2048


def _first(out):
    """Blocks and attention modules may return a tuple whose first item is the hidden state."""
    return out[0] if isinstance(out, (tuple, list)) else out


def _sq_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a.float() - b.float()).pow(2).sum().item()


class _Recorder:
    """Forward pre-hooks collecting, for the batch being run, what the later steps need."""

    def __init__(self, plan: BlockPlan, config: AWQConfig, clip_idx, search_idx, search_batches):
        self.plan, self.config = plan, config
        self.clip_idx, self.search_idx, self.search_batches = clip_idx, search_idx, set(search_batches)
        self.batch = 0
        self.stats: dict[str, tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = {}
        self.clip_x: dict[str, list[torch.Tensor]] = {}
        self.search_in: dict[int, list[Any]] = {i: [] for i in range(len(plan.groups))}
        self.handles = []
        linears = dict(plan.linears)
        for g in plan.groups:
            linears.update(g.linears)
        for name, lin in linears.items():
            self.handles.append(lin.register_forward_pre_hook(self._linear_hook(name)))
        for i, g in enumerate(plan.groups):
            self.handles.append(g.inspect.register_forward_pre_hook(self._inspect_hook(i, g), with_kwargs=True))

    def _linear_hook(self, name):
        clip = self.config.clip and name in self.plan.linears and name not in self.plan.no_clip

        def hook(module, args):
            x = args[0]
            k = x.shape[-1]
            if name not in self.stats:
                dev = x.device
                self.stats[name] = (torch.zeros(k, device=dev), torch.zeros(k, device=dev),
                                    torch.zeros(1, dtype=torch.long, device=dev))
            ops.act_stats_(x, *self.stats[name])
            if clip:
                x2 = x.reshape(-1, k)  # x [..., K] -> [T, K]
                self.clip_x.setdefault(name, []).append(x2[self.clip_idx[self.batch].to(x.device)])
        return hook

    def _inspect_hook(self, i: int, g: ScaleGroup):
        def hook(module, args, kwargs):
            if g.tokenwise:
                x = args[0] if args else next(iter(kwargs.values()))
                x2 = x.reshape(-1, x.shape[-1])  # x [..., K] -> [T, K]
                self.search_in[i].append(x2[self.search_idx[self.batch].to(x.device)])
            elif self.batch in self.search_batches:
                self.search_in[i].append((args, dict(kwargs)))
        return hook

    def remove(self):
        for h in self.handles:
            h.remove()


def _loss_fn(group: ScaleGroup, inputs: list[Any]):
    """Closure computing the inspected module's MSE vs its float output (taken now, weights float)."""
    if group.tokenwise:
        x = torch.cat(inputs, 0)  # [T, K]
        lin = group.inspect
        if (isinstance(lin, nn.Linear) and any(group.linears[n] is lin for n in group.quantized)
                and x.shape[0] > lin.in_features):
            return _gram_loss(lin, x)
        # in chunks of tokens: the inspected module's intermediates (an MLP's [T, 4d] activations)
        # then never exist for all sampled tokens at once
        chunks = x.split(LOSS_CHUNK_TOKENS)
        refs = [_first(group.inspect(c)) for c in chunks]
        numel = sum(r.numel() for r in refs)

        def loss():
            return sum(_sq_err(_first(group.inspect(c)), r) for c, r in zip(chunks, refs)) / numel
        return loss
    refs = [_first(group.inspect(*a, **kw)) for a, kw in inputs]
    numel = sum(r.numel() for r in refs)

    def loss():
        return sum(_sq_err(_first(group.inspect(*a, **kw)), r) for (a, kw), r in zip(inputs, refs)) / numel
    return loss


def _gram_loss(lin: nn.Linear, x: torch.Tensor):
    """Output MSE of a single linear through the Gram matrix of its inputs.

    With D = W' - W [N, K] and G = x^T x [K, K]:  ||x W'^T - x W^T||^2 = sum_n D_n G D_n^T, the bias
    cancelling. Costs N K^2 per candidate instead of T N K: cheaper once T > K (down_proj, o_proj).
    """
    g = x.float().t() @ x.float()          # [K, K]
    w0 = lin.weight.data.float()
    denom = x.shape[0] * lin.out_features

    def loss():
        d = lin.weight.data.float() - w0   # [N, K]
        return ((d @ g) * d).sum().item() / denom
    return loss


def to_host(t: torch.Tensor, host: torch.device) -> torch.Tensor:
    """Copy a GPU activation to pinned host memory without waiting: stream order keeps the later
    copy back (non_blocking too) behind it, and the host never reads it in between."""
    if t.device == host:
        return t
    out = torch.empty(t.shape, dtype=t.dtype, device=host, pin_memory=True)
    return out.copy_(t, non_blocking=True)


def module_device(module: nn.Module) -> torch.device:
    """Device of a module's first parameter (or buffer); CPU for an empty module."""
    for t in module.parameters():
        return t.device
    for t in module.buffers():
        return t.device
    return torch.device("cpu")


def _check_finite(name: str, t: torch.Tensor, what: str):
    if not torch.isfinite(t).all():
        raise ValueError(f"non-finite values (NaN/Inf) in the {what} of {name}: the float model "
                         "overflows on the calibration data (try float32 or bfloat16)")


@torch.no_grad()
def quantize_block(block: nn.Module, plan: BlockPlan, hidden: list[torch.Tensor], kwargs: list[dict],
                   config: AWQConfig, generator: torch.Generator, measure_rtn: bool = False
                   ) -> tuple[list[torch.Tensor], BlockReport]:
    """Quantize block in place (its linears become Int4Linear); return the next inputs and a report."""
    report = BlockReport(plan.prefix)
    # On a GPU only the batch in flight lives there: inputs, float outputs and next inputs of every
    # batch stay on the host, so the block's peak is its weights plus one batch's working set.
    dev = module_device(block)
    host = torch.device("cpu") if dev.type == "cuda" else dev
    tokens = [h.shape[0] * h.shape[1] if h.dim() == 3 else h.reshape(-1, h.shape[-1]).shape[0] for h in hidden]
    clip_idx = sample_tokens(tokens, config.clip_tokens, generator)
    search_idx = sample_tokens(tokens, config.search_tokens, generator)
    search_batches = sample_batches(tokens, config.search_tokens, generator)

    clock = [time.perf_counter()]

    def lap(step: str):
        now = time.perf_counter()
        report.step_seconds[step] = report.step_seconds.get(step, 0.0) + now - clock[0]
        clock[0] = now

    # 1. float pass
    rec = _Recorder(plan, config, clip_idx, search_idx, search_batches)
    float_out = []
    try:
        for j, (h, kw) in enumerate(zip(hidden, kwargs)):
            rec.batch = j
            float_out.append(to_host(_first(block(h.to(dev, non_blocking=True), **kw)), host))
    finally:
        rec.remove()
    for name, (asum, amax, _) in rec.stats.items():  # max() may skip NaN; the sum keeps it
        _check_finite(plan.prefix + name, asum + amax, "input activations")
    for out in float_out:
        _check_finite(plan.prefix.rstrip("."), out, "float output")

    lap("float")
    if measure_rtn:
        report.block_loss_rtn = _rtn_block_loss(block, plan, hidden, kwargs, float_out, config, dev)
        lap("rtn")

    # 2. scale search, every group on the float block
    results = []
    for i, g in enumerate(plan.groups):
        abs_sum, _, count = rec.stats[next(iter(g.linears))]
        x_mean = abs_sum / count.clamp_min(1).float()
        res = search_scale(g, x_mean, _loss_fn(g, rec.search_in[i]), config)
        results.append(res)
        report.groups.append(GroupReport(g.name, res.alpha, res.loss_rtn, res.loss_best))
    rec.search_in.clear()
    lap("search")

    # 3. fold the scales in; remember each linear's input scale for its clip inputs
    in_scale: dict[str, torch.Tensor] = {}
    for g, res in zip(plan.groups, results):
        if res.scale is None:
            continue
        apply_scale(g, res.scale)
        for name in g.linears:
            in_scale[name] = res.scale if name not in in_scale else in_scale[name] * res.scale

    # 4. clip, quantize, swap
    for name, lin in plan.linears.items():
        clip = None
        if name in rec.clip_x:
            x = torch.cat(rec.clip_x.pop(name), 0)
            if name in in_scale:
                x = x.float() / in_scale[name].to(x.device)
            clip = search_clip(lin, x, config)
        replace_module(block, name, quantize_linear(lin, config, clip))
    lap("clip+quantize")

    # 5. the quantized block produces the next inputs
    err, numel, nxt = 0.0, 0, []
    for h, kw, ref in zip(hidden, kwargs, float_out):
        out = _first(block(h.to(dev, non_blocking=True), **kw))
        err += _sq_err(out, ref.to(dev, non_blocking=True))
        numel += ref.numel()
        nxt.append(to_host(out, host))
    report.block_loss = err / max(numel, 1)
    lap("next")
    return nxt, report


def _rtn_block_loss(block, plan: BlockPlan, hidden, kwargs, float_out, config: AWQConfig,
                    dev: torch.device) -> float:
    """Output MSE of the block with round-to-nearest weights (no scale, no clip); block restored."""
    saved = {n: lin.weight.data for n, lin in plan.linears.items()}
    try:
        for lin in plan.linears.values():
            lin.weight.data = ops.pseudo_quantize(lin.weight.data.contiguous(), config.bits, config.group_size,
                                                  config.zero_point)
        err = sum(_sq_err(_first(block(h.to(dev, non_blocking=True), **kw)), ref.to(dev, non_blocking=True))
                  for h, kw, ref in zip(hidden, kwargs, float_out))
    finally:
        for n, lin in plan.linears.items():
            lin.weight.data = saved[n]
    return err / max(sum(r.numel() for r in float_out), 1)
