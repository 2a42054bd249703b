"""quantize(): AWQ on a transformers causal LM, swapping its block linears for Int4Linear."""
from __future__ import annotations

import warnings
from collections.abc import Iterable
from typing import Any

import torch
from torch import nn

from awq_ext.adapters import get_adapter
from awq_ext.algorithm import BlockReport, quantize_blocks
from awq_ext.algorithm.clip import quantize_linear, replace_module
from awq_ext.config import AWQConfig

#: calibration batches built here from token tensors or text hold about this many tokens
BATCH_TOKENS = 4096

CalibData = list[str] | torch.Tensor | Iterable[Any] | None


def quantize(model: nn.Module, config: AWQConfig, calib_data: CalibData = None, tokenizer=None,
             device: torch.device | str | None = None) -> nn.Module:
    """Quantize model in place with AWQ and return it; its block linears become awq_ext.nn.Int4Linear.

    calib_data:
      None: config.n_samples x config.seqlen tokens of the built-in Wikipedia text (needs tokenizer);
      a list of strings: joined, tokenized with tokenizer, cut into config.seqlen-token samples
        (at most config.n_samples);
      an int64 token tensor [n, seqlen] (or a 1-D stream, cut into config.seqlen windows);
      an iterable of batches: token tensors [b, s] or dicts with "input_ids" (and "attention_mask").
    device: where each block is quantized (one at a time; the rest of the model stays where it is).
      None: CUDA if available, else the model's device.
    """
    return quantize_with_report(model, config, calib_data, tokenizer, device)[0]


def quantize_with_report(model: nn.Module, config: AWQConfig, calib_data: CalibData = None, tokenizer=None,
                         device: torch.device | str | None = None, measure_rtn: bool = False,
                         progress: bool | None = None, measure_memory: bool = False
                         ) -> tuple[nn.Module, list[BlockReport]]:
    """quantize(), also returning per-block reports (group losses before/after scaling, block MSE).

    measure_rtn: also measure each block's output MSE with round-to-nearest weights (one more
    forward per block).
    measure_memory: on CUDA, record the peak GPU memory allocated during each step of each block in
    BlockReport.step_peak_bytes (resets torch.cuda's peak-memory statistics as it goes).
    """
    _check_model(model, config)
    adapter = get_adapter(model)
    device = _resolve_device(model, device)
    batches = _calibration_batches(calib_data, tokenizer, config)
    model.eval()

    def run_model(batch):
        ids, mask = batch
        kwargs = {"attention_mask": mask.to(device)} if mask is not None else {}
        return model(input_ids=ids.to(device), use_cache=False, **kwargs)

    reports = quantize_blocks(
        adapter.get_blocks(model), lambda i, block: adapter.plan(block, i, config), adapter.embed_modules(model),
        run_model, batches, config, device, measure_rtn=measure_rtn, progress=progress,
        measure_memory=measure_memory)
    return model, reports


@torch.no_grad()
def round_to_nearest(model: nn.Module, config: AWQConfig) -> nn.Module:
    """Baseline: swap the same linears as quantize() for Int4Linear with plain round-to-nearest weights."""
    _check_model(model, config)
    adapter = get_adapter(model)
    for i, block in enumerate(adapter.get_blocks(model)):
        for name, lin in adapter.plan(block, i, config).linears.items():
            replace_module(block, name, quantize_linear(lin, config, None))
    return model


# ---- checks and calibration data ---------------------------------------------------------------
def check_config(config: AWQConfig) -> None:
    """What AWQConfig allows but quantize() cannot do (packing into Int4Linear needs 4 bits)."""
    if config.bits != 4:
        raise ValueError(f"bits={config.bits}: the INT4 kernels and packing need bits == 4")


def _check_model(model: nn.Module, config: AWQConfig) -> None:
    check_config(config)
    if any(p.is_meta for p in model.parameters()):
        raise ValueError("the model has parameters on the meta device (no data); load real weights first, "
                         "e.g. from_pretrained(...) without device_map='meta' / init_empty_weights")


def _resolve_device(model: nn.Module, device) -> torch.device:
    if device is not None:
        return torch.device(device)
    if torch.cuda.is_available():
        return torch.device("cuda", torch.cuda.current_device())
    return next(model.parameters()).device


def _batches_from_tokens(tokens: torch.Tensor, config: AWQConfig) -> list[tuple[torch.Tensor, None]]:
    if tokens.dtype not in (torch.int64, torch.int32):
        raise ValueError(f"calibration tokens must be an integer tensor, got {tokens.dtype}")
    if tokens.dim() == 1:
        n = tokens.numel() // config.seqlen
        if n == 0:
            raise ValueError(f"calibration data too short: {tokens.numel()} tokens, fewer than "
                             f"seqlen={config.seqlen}")
        tokens = tokens[: n * config.seqlen].reshape(n, config.seqlen)  # [T] -> [n, seqlen]
    if tokens.dim() != 2 or tokens.numel() == 0:
        raise ValueError(f"calibration tokens must be [n_samples, seqlen] with n_samples, seqlen >= 1; "
                         f"got shape {tuple(tokens.shape)}")
    tokens = tokens.long()
    per = max(1, BATCH_TOKENS // tokens.shape[1])
    return [(tokens[i:i + per], None) for i in range(0, tokens.shape[0], per)]


def _calibration_batches(calib_data: CalibData, tokenizer, config: AWQConfig) -> list:
    """Normalize calibration data into a list of (input_ids [b, s], attention_mask [b, s] or None)."""
    if calib_data is None or (isinstance(calib_data, (list, tuple)) and calib_data
                              and all(isinstance(x, str) for x in calib_data)):
        if tokenizer is None:
            what = "the built-in calibration text (calib_data=None)" if calib_data is None else "text calibration data"
            raise ValueError(f"{what} needs a tokenizer: quantize(model, config, calib_data, tokenizer=...)")
        from awq_ext import data

        if calib_data is None:
            return _batches_from_tokens(data.calibration_samples(tokenizer, config.n_samples, config.seqlen), config)
        stream = data.token_stream(tokenizer, list(calib_data), config.n_samples * config.seqlen)
        n = stream.numel() // config.seqlen
        if n == 0:
            raise ValueError(f"calibration data too short: the texts hold {stream.numel()} tokens, fewer than one "
                             f"sample of seqlen={config.seqlen} tokens")
        if n < config.n_samples:
            warnings.warn(f"calibration texts give {n} samples of {config.seqlen} tokens, "
                          f"fewer than n_samples={config.n_samples}", stacklevel=3)
        return _batches_from_tokens(stream[: n * config.seqlen], config)
    if isinstance(calib_data, torch.Tensor):
        return _batches_from_tokens(calib_data, config)
    if isinstance(calib_data, str):
        raise ValueError("calib_data is a single string; pass a list of strings")
    batches = []
    for b in calib_data:
        if isinstance(b, dict):
            ids, mask = b["input_ids"], b.get("attention_mask")
        elif isinstance(b, torch.Tensor):
            ids, mask = b, None
        else:
            raise ValueError(f"calibration batch of type {type(b).__name__}: expected a token tensor [b, s] "
                             "or a dict with 'input_ids'")
        ids = ids.unsqueeze(0) if ids.dim() == 1 else ids
        if ids.numel() == 0:
            continue
        batches.append((ids.long(), None if mask is None else (mask.unsqueeze(0) if mask.dim() == 1 else mask)))
    if not batches:
        raise ValueError("calibration data is empty: no batch holds a token")
    return batches
