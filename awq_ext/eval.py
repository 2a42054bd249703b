"""Perplexity on a token stream, with non-overlapping fixed windows.

The stream's first n_tokens tokens are cut into windows of `window` tokens (stride = window, the
remainder dropped). Each window is scored on its own, without context from the previous one:
position t predicts token t + 1, so a window contributes window - 1 predictions.
perplexity = exp(mean negative log-likelihood over all predictions), computed in float32.
Defaults: window 512 and the first 16,384 tokens of the evaluation split (32 windows); see data.py.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F

DEFAULT_WINDOW = 512
DEFAULT_EVAL_TOKENS = 16384


@dataclass
class PerplexityResult:
    perplexity: float
    tokens: int         # predicted tokens
    windows: int
    seconds: float

    @property
    def tokens_per_second(self) -> float:
        return (self.tokens + self.windows) / self.seconds if self.seconds > 0 else float("nan")


def model_device(model) -> torch.device:
    for p in model.parameters():
        return p.device
    return torch.device("cpu")


@torch.no_grad()
def perplexity(model, tokens: torch.Tensor, window: int = DEFAULT_WINDOW, n_tokens: int | None = None,
               batch_size: int = 4, device: torch.device | str | None = None) -> PerplexityResult:
    """Perplexity of a causal LM (called as model(input_ids=...).logits) on tokens int64 [T]."""
    tokens = tokens.reshape(-1)
    if n_tokens is not None:
        tokens = tokens[:n_tokens]
    n_windows = tokens.numel() // window
    if n_windows == 0:
        raise ValueError(f"{tokens.numel()} tokens is fewer than one window of {window}")
    device = torch.device(device) if device is not None else model_device(model)
    windows = tokens[: n_windows * window].reshape(n_windows, window)  # [T] -> [n_windows, window]
    nll, count = 0.0, 0
    if device.type == "cuda":
        # untimed warm-up forward: lazy kernel loading, cuBLAS handles and an idle GPU's clock ramp
        # would otherwise be charged to whichever model is evaluated first
        model(input_ids=windows[:batch_size].to(device), use_cache=False)
        torch.cuda.synchronize(device)
    t0 = time.perf_counter()
    for start in range(0, n_windows, batch_size):
        ids = windows[start:start + batch_size].to(device)
        logits = model(input_ids=ids, use_cache=False).logits          # [b, window, vocab]
        pred = logits[:, :-1].float().reshape(-1, logits.shape[-1])    # [b * (window-1), vocab]
        nll += F.cross_entropy(pred, ids[:, 1:].reshape(-1), reduction="sum").item()
        count += ids[:, 1:].numel()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return PerplexityResult(math.exp(nll / count), count, n_windows, time.perf_counter() - t0)


def text_tokens(tokenizer, text: str) -> torch.Tensor:
    """User text -> token stream int64 [T] (no special tokens)."""
    return torch.tensor(tokenizer(text, add_special_tokens=False)["input_ids"], dtype=torch.long)
