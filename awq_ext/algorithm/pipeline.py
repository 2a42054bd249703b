"""AWQ over a whole model, one block on the compute device at a time."""
from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from awq_ext.algorithm.block import BlockReport, to_host, module_device, quantize_block
from awq_ext.algorithm.calibration import capture_block_inputs
from awq_ext.algorithm.plan import BlockPlan
from awq_ext.config import AWQConfig

log = logging.getLogger("awq_ext")


def format_block_report(r: BlockReport) -> str:
    parts = []
    for g in r.groups:
        how = "rtn kept" if g.alpha is None else f"alpha={g.alpha:.2f}"
        parts.append(f"{g.name} {g.loss_rtn:.3e}->{g.loss_awq:.3e} ({how})")
    rtn = "" if r.block_loss_rtn is None else f" (rtn {r.block_loss_rtn:.3e})"
    steps = " ".join(f"{k} {v:.1f}" for k, v in r.step_seconds.items())
    return (f"{r.prefix.rstrip('.')}: " + "; ".join(parts) + f" | block mse {r.block_loss:.3e}{rtn} "
            f"[{r.seconds:.1f}s: {steps}]")


def quantize_blocks(blocks: Sequence[nn.Module], plan_fn: Callable[[int, nn.Module], BlockPlan],
                    embed_modules: Sequence[nn.Module], run_model: Callable[[Any], Any],
                    batches: Iterable[Any], config: AWQConfig, device: torch.device,
                    measure_rtn: bool = False, progress: bool | None = None,
                    measure_memory: bool = False) -> list[BlockReport]:
    """Quantize every block in place; returns one report per block.

    run_model(batch) runs the model's forward on one calibration batch (already on `device`); only
    embed_modules are moved to `device` for it, and each block visits `device` only while it is
    quantized, then returns to where it was.
    progress: tqdm bar over blocks (None: only on a terminal).
    measure_memory: on CUDA, each report's step_peak_bytes holds the peak allocated bytes of each step
        (block 0's also the capture of the block inputs); resets the device's peak-memory statistics.
    """
    homes = [module_device(m) for m in embed_modules]
    for m in embed_modules:
        m.to(device)
    # block inputs wait on the host while another block runs (see quantize_block), from capture on
    host = torch.device("cpu")
    store = (lambda h: to_host(h, host)) if torch.device(device).type == "cuda" else None
    try:
        inputs = capture_block_inputs(run_model, blocks, batches, store)
    finally:
        for m, home in zip(embed_modules, homes):
            m.to(home)
    hidden = inputs.hidden
    inputs.hidden = []
    capture_peak = None
    if measure_memory and torch.device(device).type == "cuda":
        capture_peak = torch.cuda.max_memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
    total_tokens = sum(h.numel() // h.shape[-1] for h in hidden)
    if total_tokens == 0:
        raise ValueError("calibration data is empty: 0 tokens reached the first block")
    log.info("calibration: %d batches, %d tokens; scale search on <= %s tokens, clip on <= %d tokens",
             len(hidden), total_tokens, config.search_tokens, config.clip_tokens)

    generator = torch.Generator().manual_seed(config.seed)
    reports = []
    bar = tqdm(total=len(blocks), desc="AWQ", unit="block", disable=(None if progress is None else not progress))
    try:
        for i, block in enumerate(blocks):
            t0 = time.perf_counter()
            home = module_device(block)
            block.to(device)
            plan = plan_fn(i, block)
            hidden, report = quantize_block(block, plan, hidden, inputs.kwargs[i], config, generator, measure_rtn,
                                            measure_memory)
            del plan
            block.to(home)
            inputs.kwargs[i] = []
            if capture_peak is not None and i == 0:
                report.step_peak_bytes = {"capture": capture_peak, **report.step_peak_bytes}
            report.seconds = time.perf_counter() - t0
            reports.append(report)
            log.info("%s", format_block_report(report))
            bar.set_postfix(mse=f"{report.block_loss:.2e}")
            bar.update(1)
    finally:
        bar.close()
    return reports
