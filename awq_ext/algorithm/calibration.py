"""Capture what the model feeds its blocks, without running any block.

The model's own forward runs once per calibration batch with only its embedding path on the compute
device. A forward pre-hook on every block records the block's args and kwargs (attention masks,
position embeddings, ...); the blocks' forwards are swapped for the identity while this runs, and the
last block's hook raises a private exception that stops the forward before the final norm and the
output head. Kwargs are recorded for every block, not only the first: some models give each layer
its own mask or rotary embedding (Gemma 2/3 alternate sliding-window and global layers).
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn


class _StopCapture(Exception):
    """Raised by the last block's hook once its inputs are recorded."""


@dataclass
class BlockInputs:
    """hidden: block 0's input per batch ([b, s, d] each); kwargs[i][j]: block i's kwargs for batch j."""

    hidden: list[torch.Tensor]
    kwargs: list[list[dict[str, Any]]]


def _identity_forward(*args, **kwargs):
    return args[0] if args else kwargs["hidden_states"]


def capture_block_inputs(run_model: Callable[[Any], Any], blocks: Sequence[nn.Module],
                         batches: Iterable[Any],
                         store: Callable[[torch.Tensor], torch.Tensor] | None = None) -> BlockInputs:
    """Run run_model(batch) for each batch and record the inputs of every block.

    The caller puts the embedding path on the compute device first; blocks may stay anywhere since
    none of them runs.
    store: applied to block 0's hidden state of each batch as it is recorded (e.g. a copy to host
    memory, so that the inputs of all batches never sit on the compute device together).
    """
    hidden: list[torch.Tensor] = []
    kwargs: list[list[dict[str, Any]]] = [[] for _ in blocks]
    last = len(blocks) - 1

    def make_hook(i):
        def hook(module, args, kw):
            if i == 0:
                h = args[0] if args else kw["hidden_states"]
                hidden.append(h if store is None else store(h))
            kwargs[i].append({k: v for k, v in kw.items() if k != "hidden_states"})
            if i == last:
                raise _StopCapture
        return hook

    handles = [b.register_forward_pre_hook(make_hook(i), with_kwargs=True) for i, b in enumerate(blocks)]
    for b in blocks:
        b.forward = _identity_forward  # instance attribute shadows the class method
    try:
        with torch.no_grad():
            for batch in batches:
                try:
                    run_model(batch)
                except _StopCapture:
                    continue
                raise RuntimeError("the model's forward returned without reaching its last block; "
                                   "the adapter's block list does not match the model")
    finally:
        for h in handles:
            h.remove()
        for b in blocks:
            del b.forward
    if not hidden:
        raise ValueError("calibration data is empty: no batch reached the first block")
    return BlockInputs(hidden, kwargs)


def sample_tokens(batch_tokens: Sequence[int], n: int | None, generator: torch.Generator) -> list[torch.Tensor]:
    """Pick min(n, total) distinct token positions over batches of batch_tokens[j] tokens each.

    Returns, per batch, the sorted flat indices (into x.reshape(-1, d)) of that batch's picks.
    n None picks everything.
    """
    total = sum(batch_tokens)
    if n is None or n >= total:
        return [torch.arange(t) for t in batch_tokens]
    flat = torch.randperm(total, generator=generator)[:n].sort().values
    out, start = [], 0
    for t in batch_tokens:
        lo, hi = torch.searchsorted(flat, torch.tensor([start, start + t]))
        out.append(flat[lo:hi] - start)
        start += t
    return out


def sample_batches(batch_tokens: Sequence[int], n: int | None, generator: torch.Generator) -> list[int]:
    """Whole batches, in a seeded random order, until they hold at least min(n, total) tokens.

    Attention mixes tokens of a sequence, so its loss needs whole sequences; a batch is the unit
    because the recorded kwargs (masks) are per batch. Returns sorted batch indices.
    """
    order = torch.randperm(len(batch_tokens), generator=generator).tolist()
    if n is None:
        return sorted(order)
    picked, have = [], 0
    for j in order:
        if have >= n:
            break
        picked.append(j)
        have += batch_tokens[j]
    return sorted(picked)
