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

On a GPU the device holds the block, one batch's working set and the small clip samples; everything
sized by the calibration set waits in pinned host memory: the block's inputs, float outputs and next
inputs, and the scale-search samples, which come back one group at a time for that group's search.
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
    # with measure_memory on CUDA: peak bytes allocated on the device during each step ("load": since
    # the previous block's last step, i.e. moving blocks; block 0's report also has "capture")
    step_peak_bytes: dict[str, int] = field(default_factory=dict)


#: tokens per forward of an inspected module inside the scale-search loss
LOSS_CHUNK_TOKENS = 2048


def _first(out):
    """Blocks and attention modules may return a tuple whose first item is the hidden state."""
    return out[0] if isinstance(out, (tuple, list)) else out


def _sq_err(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Sum of squared differences, fp32 on a's device (no host sync). b is promoted inside the
    subtraction and the square is taken in place: two fp32 temporaries of a's size, not four."""
    return (a.float() - b).pow_(2).sum()


def _map_tensors(obj, fn):
    """fn applied to every tensor inside nested tuples, lists and dicts (module args and kwargs)."""
    if isinstance(obj, torch.Tensor):
        return fn(obj)
    if isinstance(obj, tuple) and hasattr(obj, "_fields"):  # namedtuple
        return type(obj)(*(_map_tensors(x, fn) for x in obj))
    if isinstance(obj, (tuple, list)):
        return type(obj)(_map_tensors(x, fn) for x in obj)
    if isinstance(obj, dict):
        return {k: _map_tensors(v, fn) for k, v in obj.items()}
    return obj


def _cat_on(pieces: list[torch.Tensor], dev: torch.device) -> torch.Tensor:
    """torch.cat(pieces) on dev, each piece copied straight into its rows (no second copy on dev)."""
    if all(p.device == dev for p in pieces):
        return torch.cat(pieces, 0)
    rows = sum(p.shape[0] for p in pieces)
    out = torch.empty((rows,) + tuple(pieces[0].shape[1:]), dtype=pieces[0].dtype, device=dev)
    start = 0
    for p in pieces:
        out[start:start + p.shape[0]].copy_(p, non_blocking=True)
        start += p.shape[0]
    return out


class _Recorder:
    """Forward pre-hooks collecting, for the batch being run, what the later steps need."""

    def __init__(self, plan: BlockPlan, config: AWQConfig, clip_idx, search_idx, search_batches,
                 dev: torch.device, host: torch.device):
        self.plan, self.config, self.dev, self.host = plan, config, dev, host
        # index tensors on the device once: a copy per hook call would stall the host on every batch
        self.clip_idx = [t.to(dev) for t in clip_idx]
        self.search_idx = [t.to(dev) for t in search_idx]
        self.search_batches = set(search_batches)
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
                self.clip_x.setdefault(name, []).append(x2[self.clip_idx[self.batch]])
        return hook

    def _inspect_hook(self, i: int, g: ScaleGroup):
        def hook(module, args, kwargs):
            # search samples wait on the host (pinned, asynchronous copy) until their group's search
            if g.tokenwise:
                x = args[0] if args else next(iter(kwargs.values()))
                x2 = x.reshape(-1, x.shape[-1])  # x [..., K] -> [T, K]
                self.search_in[i].append(to_host(x2[self.search_idx[self.batch]], self.host))
            elif self.batch in self.search_batches:
                self.search_in[i].append((_map_tensors(args, self._park), _map_tensors(dict(kwargs), self._park)))
        return hook

    def _park(self, t: torch.Tensor) -> torch.Tensor:
        return to_host(t, self.host) if t.device == self.dev else t

    def take_search_inputs(self, i: int, dev: torch.device):
        """Group i's search inputs, back on dev (and dropped here): x [T, K] for a tokenwise group,
        else the recorded (args, kwargs) of whole batches."""
        inputs = self.search_in.pop(i)
        if self.plan.groups[i].tokenwise:
            return _cat_on(inputs, dev)
        if dev == self.host:
            return inputs

        def back(t: torch.Tensor) -> torch.Tensor:  # what _park sent to the host (pinned) returns
            return t.to(dev, non_blocking=True) if t.device == self.host and t.is_pinned() else t
        return [(_map_tensors(a, back), _map_tensors(kw, back)) for a, kw in inputs]

    def remove(self):
        for h in self.handles:
            h.remove()


def _loss_fn(group: ScaleGroup, inputs: torch.Tensor | list[Any]):
    """Closure computing the inspected module's MSE vs its float output (taken now, weights float).

    inputs: x [T, K] for a tokenwise group, else a list of (args, kwargs) of the inspected module.
    """
    if group.tokenwise:
        x = inputs  # [T, K]
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
            return _sum_f64(_sq_err(_first(group.inspect(c)), r) for c, r in zip(chunks, refs)) / numel
        return loss
    refs = [_first(group.inspect(*a, **kw)) for a, kw in inputs]
    numel = sum(r.numel() for r in refs)

    def loss():
        return _sum_f64(_sq_err(_first(group.inspect(*a, **kw)), r) for (a, kw), r in zip(inputs, refs)) / numel
    return loss


def _sum_f64(parts) -> float:
    """Sum of fp32 scalars in fp64 on their device, one host sync: the same numbers as summing their
    .item()s in Python, without a sync per part."""
    total = None
    for p in parts:
        total = p.double() if total is None else total + p.double()
    return 0.0 if total is None else total.item()


def _gram_loss(lin: nn.Linear, x: torch.Tensor):
    """Output MSE of a single linear through the Gram matrix of its inputs.

    With D = W' - W [N, K] and G = x^T x [K, K]:  ||x W'^T - x W^T||^2 = sum_n D_n G D_n^T, the bias
    cancelling. Costs N K^2 per candidate instead of T N K: cheaper once T > K (down_proj, o_proj).
    """
    xf = x.float()
    g = xf.t() @ xf                        # [K, K]
    del xf
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
    """t: values, or an already reduced boolean (all finite)."""
    ok = t if t.dtype == torch.bool else torch.isfinite(t).all()
    if not ok:
        raise ValueError(f"non-finite values (NaN/Inf) in the {what} of {name}: the float model "
                         "overflows on the calibration data (try float32 or bfloat16)")


@torch.no_grad()
def quantize_block(block: nn.Module, plan: BlockPlan, hidden: list[torch.Tensor], kwargs: list[dict],
                   config: AWQConfig, generator: torch.Generator, measure_rtn: bool = False,
                   measure_memory: bool = False) -> tuple[list[torch.Tensor], BlockReport]:
    """Quantize block in place (its linears become Int4Linear); return the next inputs and a report.

    measure_memory: on CUDA, record each step's peak allocated bytes in report.step_peak_bytes; this
    resets the device's peak-memory statistics at every step.
    The float nn.Linear modules swapped out of the block are left on the meta device: their device
    memory is freed before the last pass.
    """
    report = BlockReport(plan.prefix)
    # On a GPU only the batch in flight lives there: inputs, float outputs and next inputs of every
    # batch stay on the host, so the block's peak is its weights plus one batch's working set.
    dev = module_device(block)
    host = torch.device("cpu") if dev.type == "cuda" else dev
    measure_memory = measure_memory and dev.type == "cuda"
    tokens = [h.shape[0] * h.shape[1] if h.dim() == 3 else h.reshape(-1, h.shape[-1]).shape[0] for h in hidden]
    clip_idx = sample_tokens(tokens, config.clip_tokens, generator)
    search_idx = sample_tokens(tokens, config.search_tokens, generator)
    search_batches = sample_batches(tokens, config.search_tokens, generator)

    clock = [time.perf_counter()]

    def peak(step: str):
        if measure_memory:
            report.step_peak_bytes[step] = max(report.step_peak_bytes.get(step, 0),
                                               torch.cuda.max_memory_allocated(dev))
            torch.cuda.reset_peak_memory_stats(dev)

    def lap(step: str):
        now = time.perf_counter()
        report.step_seconds[step] = report.step_seconds.get(step, 0.0) + now - clock[0]
        clock[0] = now
        peak(step)

    peak("load")

    # 1. float pass
    rec = _Recorder(plan, config, clip_idx, search_idx, search_batches, dev, host)
    float_out = []
    finite = torch.ones((), dtype=torch.bool, device=dev)
    try:
        for j, (h, kw) in enumerate(zip(hidden, kwargs)):
            rec.batch = j
            out = _first(block(h.to(dev, non_blocking=True), **kw))
            finite &= torch.isfinite(out).all()  # checked on the device: no host pass over the outputs
            float_out.append(to_host(out, host))
            del out
    finally:
        rec.remove()
    for name, (asum, amax, _) in rec.stats.items():  # max() may skip NaN; the sum keeps it
        _check_finite(plan.prefix + name, asum + amax, "input activations")
    _check_finite(plan.prefix.rstrip("."), finite, "float output")

    lap("float")
    if measure_rtn:
        report.block_loss_rtn = _rtn_block_loss(block, plan, hidden, kwargs, float_out, config, dev)
        lap("rtn")

    # 2. scale search, every group on the float block; a group's search inputs come to the device
    # for its search only
    results = []
    for i, g in enumerate(plan.groups):
        abs_sum, _, count = rec.stats[next(iter(g.linears))]
        x_mean = abs_sum / count.clamp_min(1).float()
        res = search_scale(g, x_mean, _loss_fn(g, rec.take_search_inputs(i, dev)), config)
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

    # 4. clip, quantize, swap; the float linear leaves the device (nothing reads it any more)
    for name, lin in plan.linears.items():
        clip = None
        if name in rec.clip_x:
            x = torch.cat(rec.clip_x.pop(name), 0)
            if name in in_scale:
                x = x.float() / in_scale[name].to(x.device)
            clip = search_clip(lin, x, config)
            del x
        replace_module(block, name, quantize_linear(lin, config, clip))
        lin.to("meta")
    lap("clip+quantize")

    # 5. the quantized block produces the next inputs
    err, numel, nxt = [], 0, []
    for h, kw, ref in zip(hidden, kwargs, float_out):
        out = _first(block(h.to(dev, non_blocking=True), **kw))
        err.append(_sq_err(out, ref.to(dev, non_blocking=True)))
        numel += ref.numel()
        nxt.append(to_host(out, host))
        del out
    report.block_loss = _sum_f64(err) / max(numel, 1)
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
        err = _sum_f64(_sq_err(_first(block(h.to(dev, non_blocking=True), **kw)), ref.to(dev, non_blocking=True))
                       for h, kw, ref in zip(hidden, kwargs, float_out))
    finally:
        for n, lin in plan.linears.items():
            lin.weight.data = saved[n]
    return err / max(sum(r.numel() for r in float_out), 1)
