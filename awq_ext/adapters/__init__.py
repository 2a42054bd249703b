"""Model knowledge as data: which modules are blocks, embeddings, and scale groups, per model_type."""
from __future__ import annotations

from awq_ext.adapters.base import Adapter, GroupSpec, select_linears
from awq_ext.adapters.gemma import GEMMA, GEMMA2
from awq_ext.adapters.llama import LLAMA
from awq_ext.adapters.opt import OPT

ADAPTERS: tuple[Adapter, ...] = (LLAMA, GEMMA, GEMMA2, OPT)
_BY_TYPE = {t: a for a in ADAPTERS for t in a.model_types}


def supported_model_types() -> list[str]:
    return sorted(_BY_TYPE)


def get_adapter(model) -> Adapter:
    """The adapter for a transformers model, keyed by model.config.model_type."""
    config = getattr(model, "config", None)
    model_type = getattr(config, "model_type", None)
    adapter = _BY_TYPE.get(model_type)
    if adapter is None:
        arch = (getattr(config, "architectures", None) or [type(model).__name__])[0]
        raise ValueError(f"unsupported architecture {arch} (model_type={model_type!r}); supported model_type "
                         f"values: {', '.join(supported_model_types())}")
    if adapter.check is not None:
        adapter.check(config)
    return adapter


__all__ = ["ADAPTERS", "Adapter", "GroupSpec", "get_adapter", "select_linears", "supported_model_types"]
