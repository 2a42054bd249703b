"""What the algorithm is told about one transformer block: modules, never names of model classes.

An adapter (awq_ext/adapters) turns a block of a known architecture into a BlockPlan; everything in
awq_ext/algorithm works on these objects alone.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from torch import nn

#: how a scale s folds into the op that produces the linears' input (its output divided by s)
PREV_LINEAR = "linear"          # a linear: output rows (and bias) divided by s
PREV_NORM = "norm"              # y = norm(x) * w (+ b): w and b divided by s
PREV_NORM_PLUS_ONE = "norm+1"   # y = norm(x) * (1 + w) (Gemma): w -> (1 + w) / s - 1
PREV_KINDS = (PREV_LINEAR, PREV_NORM, PREV_NORM_PLUS_ONE)


@dataclass
class ScaleGroup:
    """Linears that read the same input, the op producing it, and the module measuring the loss.

    name: label for logs, e.g. "self_attn.qkv".
    prev / prev_kind: the op whose output is the linears' input, and how a scale folds into it.
    linears: every linear reading that input (name -> module). All of them get their input columns
        multiplied by the scale, quantized or not, so the float function of the block is unchanged.
    quantized: the names among `linears` that will be quantized (pseudo-quantized in the search).
    inspect: the module whose output measures the loss; its first input is the linears' input.
    tokenwise: inspect treats tokens independently (an MLP, a linear), so the search may use any
        subset of tokens; False (attention) means the search needs whole sequences.
    """

    name: str
    prev: nn.Module
    prev_kind: str
    linears: dict[str, nn.Linear]
    quantized: tuple[str, ...]
    inspect: nn.Module
    tokenwise: bool

    def __post_init__(self):
        if self.prev_kind not in PREV_KINDS:
            raise ValueError(f"prev_kind={self.prev_kind!r} must be one of {PREV_KINDS}")


@dataclass
class BlockPlan:
    """One block: its scale groups (in search order) and every linear to quantize.

    prefix: the block's name in the model ("model.layers.3."), for messages.
    linears: linears to quantize, name relative to the block -> module.
    no_clip: names of linears whose clip search is skipped (q/k projections, as llm-awq does).
    """

    prefix: str
    groups: list[ScaleGroup]
    linears: dict[str, nn.Linear]
    no_clip: frozenset[str] = field(default_factory=frozenset)
