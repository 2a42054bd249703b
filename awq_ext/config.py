"""AWQConfig: every knob of a quantization run, frozen and validated at construction."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

#: version of the config schema; bump when a field changes meaning
CONFIG_FORMAT_VERSION = 1

SUPPORTED_GROUP_SIZES = (32, 64, 128, -1)


@dataclass(frozen=True)
class AWQConfig:
    """Activation-aware weight quantization settings.

    bits / group_size / zero_point: the quantization grid. group_size -1 means one group per row.
        Packed INT4 checkpoints and kernels need bits == 4.
    n_grid: points of the scale search, alpha = i / n_grid for i in [0, n_grid).
    duo_scaling: search s = mean|x|^alpha / mean|w|^(1-alpha) (weight-aware, the default, as in AutoAWQ)
        instead of s = mean|x|^alpha (the paper's original form).
    clip / clip_n_grid / clip_max_shrink / clip_tokens: per-group clip search over ratios
        1 - i / clip_n_grid, i < clip_max_shrink * clip_n_grid, measured on clip_tokens sampled tokens.
    search_tokens: at most this many calibration tokens enter the scale-search loss (None: all).
    n_samples / seqlen: default calibration set size (samples x tokens).
    modules_to_not_convert: names (substrings) of linears to keep in float.
    indivisible: what to do with a linear whose in_features is not a multiple of group_size:
        "error" raises, "keep" keeps it in float and warns.
    seed: seeds token sampling, so a run is deterministic.
    """

    bits: int = 4
    group_size: int = 128
    zero_point: bool = True
    version: str = "gemm"
    n_grid: int = 20
    duo_scaling: bool = True
    clip: bool = True
    clip_n_grid: int = 20
    clip_max_shrink: float = 0.5
    clip_tokens: int = 512
    search_tokens: int | None = 8192
    n_samples: int = 128
    seqlen: int = 512
    modules_to_not_convert: tuple[str, ...] = field(default_factory=tuple)
    indivisible: str = "error"
    seed: int = 0
    format_version: int = CONFIG_FORMAT_VERSION

    def __post_init__(self):
        if not 2 <= self.bits <= 8:
            raise ValueError(f"bits={self.bits} must be in 2..8")
        if self.group_size not in SUPPORTED_GROUP_SIZES:
            raise ValueError(f"group_size={self.group_size} must be one of {SUPPORTED_GROUP_SIZES}")
        if self.version != "gemm":
            raise ValueError(f"version={self.version!r}: only 'gemm' is supported")
        if self.n_grid < 1:
            raise ValueError(f"n_grid={self.n_grid} must be >= 1")
        if self.clip_n_grid < 1 or not 0.0 < self.clip_max_shrink < 1.0:
            raise ValueError(f"clip_n_grid={self.clip_n_grid} must be >= 1 and "
                             f"clip_max_shrink={self.clip_max_shrink} in (0, 1)")
        if self.clip_tokens < 1:
            raise ValueError(f"clip_tokens={self.clip_tokens} must be >= 1")
        if self.search_tokens is not None and self.search_tokens < 1:
            raise ValueError(f"search_tokens={self.search_tokens} must be >= 1 or None")
        if self.n_samples < 1 or self.seqlen < 1:
            raise ValueError(f"n_samples={self.n_samples} and seqlen={self.seqlen} must be >= 1")
        if self.indivisible not in ("error", "keep"):
            raise ValueError(f"indivisible={self.indivisible!r} must be 'error' or 'keep'")
        if isinstance(self.modules_to_not_convert, list):
            object.__setattr__(self, "modules_to_not_convert", tuple(self.modules_to_not_convert))

    def to_quantization_config(self) -> dict:
        """The transformers / AutoAWQ `quantization_config` entry of config.json."""
        return {
            "quant_method": "awq",
            "bits": self.bits,
            "group_size": self.group_size,
            "zero_point": self.zero_point,
            "version": self.version,
            "modules_to_not_convert": list(self.modules_to_not_convert) or None,
        }

    def replace(self, **changes) -> "AWQConfig":
        return dataclasses.replace(self, **changes)
