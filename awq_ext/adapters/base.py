"""Adapter: one architecture's layer names as data, and their resolution into BlockPlans."""
from __future__ import annotations

import logging
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field

from torch import nn

from awq_ext.algorithm.plan import PREV_LINEAR, BlockPlan, ScaleGroup
from awq_ext.config import AWQConfig

log = logging.getLogger("awq_ext")


@dataclass(frozen=True)
class GroupSpec:
    """(previous op, linears sharing the scale, module whose output measures the loss), by name.

    Names are relative to a block. A group whose previous op is a linear applies only when that
    linear's out_features equals the group's in_features (e.g. v_proj -> o_proj is skipped under
    grouped-query attention, where v_proj is narrower than o_proj's input).
    """

    name: str
    prev: str
    prev_kind: str
    linears: tuple[str, ...]
    inspect: str
    tokenwise: bool


@dataclass(frozen=True)
class Adapter:
    """Where a model keeps its blocks, what runs before them, and how each block's linears group.

    blocks: dotted path of the ModuleList of blocks, from the *ForCausalLM model.
    embed: modules the forward runs before block 0 (embeddings, positional / rotary embeddings);
        paths absent from a given model are ignored.
    no_clip: linears whose clip search is skipped (q/k projections: their error is seen through a
        softmax, and llm-awq found clipping them does not help).
    check: optional validation of the model config (raises ValueError for unsupported variants).
    """

    name: str
    model_types: tuple[str, ...]
    blocks: str
    embed: tuple[str, ...]
    groups: tuple[GroupSpec, ...]
    no_clip: tuple[str, ...] = ()
    check: Callable[[object], None] | None = field(default=None, compare=False)

    def get_blocks(self, model: nn.Module) -> nn.ModuleList:
        try:
            return model.get_submodule(self.blocks)
        except AttributeError as e:
            raise ValueError(f"{type(model).__name__} has no {self.blocks!r}: the {self.name} adapter expects "
                             "a *ForCausalLM model") from e

    def embed_modules(self, model: nn.Module) -> list[nn.Module]:
        out = []
        for path in self.embed:
            try:
                m = model.get_submodule(path)
            except AttributeError:
                continue
            if m is not None:
                out.append(m)
        return out

    def plan(self, block: nn.Module, index: int, config: AWQConfig) -> BlockPlan:
        prefix = f"{self.blocks}.{index}."
        quantize = select_linears(block, prefix, config)
        groups = []
        for spec in self.groups:
            prev = block.get_submodule(spec.prev)
            linears = {n: block.get_submodule(n) for n in spec.linears}
            if spec.prev_kind == PREV_LINEAR and any(prev.out_features != lin.in_features for lin in linears.values()):
                log.debug("%s%s: %s out_features=%d does not match the input of %s: no scaling", prefix,
                          spec.name, spec.prev, prev.out_features, ", ".join(spec.linears))
                continue
            quantized = tuple(n for n in spec.linears if n in quantize)
            if not quantized:
                continue
            groups.append(ScaleGroup(spec.name, prev, spec.prev_kind, linears, quantized,
                                     block.get_submodule(spec.inspect), spec.tokenwise))
        return BlockPlan(prefix, groups, quantize, frozenset(self.no_clip))


def select_linears(block: nn.Module, prefix: str, config: AWQConfig) -> dict[str, nn.Linear]:
    """The block's nn.Linear modules to quantize, honouring modules_to_not_convert and indivisible."""
    out = {}
    for name, mod in block.named_modules():
        if type(mod) is not nn.Linear:
            continue
        full = prefix + name
        if any(skip in full for skip in config.modules_to_not_convert):
            continue
        k = mod.in_features
        g = k if config.group_size == -1 else config.group_size
        if k % g != 0 or k % 8 != 0:
            msg = (f"{full}: in_features={k} is not a multiple of group_size={config.group_size}"
                   + (" (and of 8, which INT4 packing needs)" if k % 8 else ""))
            if config.indivisible == "error":
                raise ValueError(msg + "; set AWQConfig(indivisible='keep') to keep such layers in float, "
                                 "or list them in modules_to_not_convert")
            warnings.warn(msg + ": kept in float", stacklevel=2)
            continue
        out[name] = mod
    return out
