"""Save and load INT4 checkpoints in the AutoAWQ "gemm" format (safetensors + config.json).

On disk, per quantized linear ``<name>`` (in_features K, out_features N, group size g, G = K / g):

  <name>.qweight  int32 [K, N/8]   word (k, c): nibble i holds W^T[k, 8c + NIBBLE_ORDER[i]]
  <name>.qzeros   int32 [G, N/8]   zero points 0..15, packed like qweight
  <name>.scales   fp16  [G, N]
  <name>.bias     [N] (model dtype), when the linear has one

  W^T[k, n] = (q[k, n] - z[k // g, n]) * s[k // g, n]

In memory, Int4Linear keeps the kernel layout (qweight int32 [N, K/8] packed along K, scales [N, G]
in the compute dtype, zeros uint8 [N, G]); the conversion happens once, here, in both directions.

config.json is the model's config plus ``quantization_config`` (quant_method "awq", bits,
group_size, zero_point, version "gemm", modules_to_not_convert). The loader also reads the older
AutoAWQ ``quant_config.json`` (w_bit, q_group_size, zero_point, version). Nothing is unpickled.
"""
from __future__ import annotations

import contextlib
import json
import math
import os
import re
import shutil
import uuid
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from awq_ext import ops
from awq_ext.config import AWQConfig
from awq_ext.nn import Int4Linear

__all__ = ["CheckpointError", "TensorParallelShapeWarning", "save_quantized", "load_quantized"]

CONFIG_NAME = "config.json"
AUTOAWQ_QUANT_CONFIG_NAME = "quant_config.json"
WEIGHTS_NAME = "model.safetensors"
WEIGHTS_INDEX_NAME = "model.safetensors.index.json"
#: tensor-parallel degrees checked at save time
TP_DEGREES = (2, 4, 8)
#: INT4 codes per int32 word
PACK = 8

_QUANT_SUFFIXES = ("qweight", "qzeros", "scales")

# safetensors header dtype names -> torch dtypes
_ST_DTYPES = {
    "F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
    "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8,
    "BOOL": torch.bool,
}
_COMPUTE_DTYPES = (torch.float16, torch.bfloat16, torch.float32)


class CheckpointError(ValueError):
    """A checkpoint on disk is unreadable, incomplete, or disagrees with its own config or the model."""


class TensorParallelShapeWarning(UserWarning):
    """A quantized layer's shapes do not split evenly for a common tensor-parallel degree."""


# ============================================================================================
# save
# ============================================================================================
@dataclass
class _Group:
    """Tensors written together (one quantized linear's tensors never straddle two shards)."""
    names: list[str]
    nbytes: int
    make: Callable[[], dict[str, torch.Tensor]]


def save_quantized(model: nn.Module, out_dir: str | os.PathLike, config: AWQConfig, tokenizer=None,
                   max_shard_size: int | str = "5GB", overwrite: bool = False) -> Path:
    """Write ``model`` (its linears already swapped for Int4Linear) as an AutoAWQ "gemm" checkpoint.

    Shards hold at most ``max_shard_size`` bytes of tensor data each ("5GB" = 5e9, "4GiB" = 4 * 2**30,
    or an int); more than one shard adds model.safetensors.index.json. Everything is written to a
    temporary folder next to ``out_dir`` and renamed into place at the end, so an interrupted save
    leaves no partial checkpoint. An existing ``out_dir`` is an error unless ``overwrite``.
    Returns the checkpoint folder.
    """
    if config.bits != 4:
        raise ValueError(f"config.bits={config.bits}: the AutoAWQ gemm format stores 4-bit weights only")
    if getattr(model, "config", None) is None or not hasattr(model.config, "to_json_string"):
        raise ValueError("model has no transformers config (model.config); save_quantized writes "
                         "config.json from it")
    limit = _parse_size(max_shard_size)
    out = Path(os.path.abspath(out_dir))
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out} already exists; pass overwrite=True to replace it")

    dtype = _model_dtype(model)
    quantized = {n: m for n, m in model.named_modules() if isinstance(m, Int4Linear)}
    for name, mod in quantized.items():
        if mod.group_size != config.group_size:
            raise ValueError(f"{name}: Int4Linear.group_size={mod.group_size} disagrees with "
                             f"config.group_size={config.group_size}")
        if mod.out_features % PACK != 0:
            raise ValueError(f"{name}: out_features={mod.out_features} must be a multiple of {PACK} "
                             f"for the AutoAWQ layout (qweight [K, N/8])")
    _warn_tensor_parallel(quantized)

    groups, untie_quantized = _plan_groups(model, quantized, dtype)
    shards = _split_shards(groups, limit)
    hf_config = _config_dict(model, config, dtype, untie_quantized)

    out.parent.mkdir(parents=True, exist_ok=True)
    # a hidden sibling on the same filesystem, so the final rename is atomic; mkdir (not mkdtemp)
    # so the checkpoint gets the usual umask permissions instead of 0700
    tmp = out.with_name(f".{out.name}.tmp-{uuid.uuid4().hex[:12]}")
    tmp.mkdir()
    try:
        _write_shards(tmp, shards, config)
        _write_json(tmp / CONFIG_NAME, hf_config)
        gen = getattr(model, "generation_config", None)
        if gen is not None and hasattr(gen, "save_pretrained"):
            gen.save_pretrained(str(tmp))
        if tokenizer is not None:
            tokenizer.save_pretrained(str(tmp))
        # on disk before it becomes visible under its final name
        for f in tmp.iterdir():
            if f.is_file():
                _fsync_file(f)
        _fsync_dir(tmp)
        _publish(tmp, out, overwrite)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def _parse_size(size: int | str) -> int:
    """"5GB" -> 5 * 10**9, "4GiB" -> 4 * 2**30, ints pass through (as transformers reads them)."""
    if isinstance(size, int) and not isinstance(size, bool):
        value = size
    else:
        m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([KMGT]?I?B)?\s*", str(size).upper())
        if m is None:
            raise ValueError(f"max_shard_size={size!r}: expected an int or a size like '5GB' / '500MiB'")
        unit = m.group(2) or "B"
        base = 1024 if "I" in unit else 1000
        value = int(float(m.group(1)) * base ** " KMGT".index(unit[0] if unit != "B" else " "))
    if value <= 0:
        raise ValueError(f"max_shard_size={size!r} must be positive")
    return value


def _model_dtype(model: nn.Module) -> torch.dtype:
    dt = getattr(model, "dtype", None)
    if isinstance(dt, torch.dtype) and dt.is_floating_point:
        return dt
    for t in list(model.parameters()) + list(model.buffers()):
        if t.is_floating_point():
            return t.dtype
    return torch.float16


def _warn_tensor_parallel(quantized: dict[str, Int4Linear]) -> None:
    """Column-parallel splits N (each rank needs whole int32 words: N/tp % 8 == 0); row-parallel
    splits K (each rank needs whole groups: K/tp % g == 0). Which way a runtime splits a given
    linear depends on the model, so both rules are checked. Per-channel scales (group_size -1) have
    one group per row: a K split replicates them, which is left to the runtime."""
    bad: dict[int, list[str]] = {}
    for name, mod in quantized.items():
        n, k = mod.out_features, mod.in_features
        g = k if mod.group_size == -1 else mod.group_size
        for tp in TP_DEGREES:
            why = []
            if n % (PACK * tp) != 0:
                why.append(f"out={n}: out/{tp} is not a multiple of {PACK}")
            if mod.group_size != -1 and k % (g * tp) != 0:
                why.append(f"in={k}: in/{tp} is not a multiple of group_size {g}")
            if why:
                bad.setdefault(tp, []).append(f"{name} ({'; '.join(why)})")
    if not bad:
        return
    lines = []
    for tp, layers in sorted(bad.items()):
        more = f" and {len(layers) - 3} more" if len(layers) > 3 else ""
        lines.append(f"tp={tp}: {len(layers)} layers, e.g. {', '.join(layers[:3])}{more}")
    warnings.warn("quantized layers will not split for tensor parallelism at " + "; ".join(lines),
                  TensorParallelShapeWarning, stacklevel=3)


def _tied_mapping(model: nn.Module) -> dict[str, str]:
    """{target: source} of the weights transformers ties (e.g. lm_head.weight -> embed_tokens)."""
    fn = getattr(model, "get_expanded_tied_weights_keys", None)
    if fn is None:
        return {}
    try:
        return dict(fn(all_submodels=True))
    except TypeError:
        return dict(fn())


def _owner(key: str) -> tuple[str, str]:
    return tuple(key.rsplit(".", 1)) if "." in key else ("", key)


def _plan_groups(model: nn.Module, quantized: dict[str, Int4Linear], dtype: torch.dtype):
    """Tensors to write, in state_dict order, with byte counts known before anything is converted.

    Returns (groups, untie) where untie says the saved config must stop tying weights because one
    side of a tied pair is now a quantized linear.
    """
    sd = model.state_dict()
    tied = _tied_mapping(model)
    untie = any(_owner(t)[0] in quantized or _owner(s)[0] in quantized for t, s in tied.items())

    # one copy of every storage: a declared tie target is dropped (as transformers does); other
    # aliases are written as separate copies, which safetensors needs and loads correctly
    by_storage: dict[tuple, list[str]] = {}
    for key, t in sd.items():
        if _owner(key)[0] in quantized:
            continue
        if t.device.type != "meta" and t.numel() > 0:
            by_storage.setdefault((t.device, t.untyped_storage().data_ptr()), []).append(key)
    drop, copy = set(), set()
    for keys in by_storage.values():
        if len(keys) < 2:
            continue
        keep = [k for k in keys if k not in tied or tied[k] not in keys]
        drop.update(k for k in keys if k not in keep)
        copy.update(keep[1:])

    groups: list[_Group] = []
    emitted = set()
    for key in sd:
        owner = _owner(key)[0]
        if owner in quantized:
            if owner not in emitted:
                emitted.add(owner)
                groups.append(_quant_group(owner, quantized[owner], dtype))
            continue
        if key in drop:
            continue
        t = sd[key]
        out_dt = dtype if t.is_floating_point() else t.dtype
        groups.append(_Group([key], t.numel() * out_dt.itemsize,
                             _plain_maker(key, t, out_dt, clone=key in copy)))
    return groups, untie


def _plain_maker(key: str, t: torch.Tensor, dt: torch.dtype, clone: bool):
    def make():
        v = t.detach().to("cpu", dt).contiguous()
        return {key: v.clone() if clone else v}
    return make


def _quant_group(name: str, mod: Int4Linear, dtype: torch.dtype) -> _Group:
    n, k = mod.out_features, mod.in_features
    groups = mod.scales.shape[1]
    names = [f"{name}.{s}" for s in _QUANT_SUFFIXES]
    nbytes = 4 * k * n // PACK + 4 * groups * n // PACK + 2 * groups * n
    if mod.bias is not None:
        names.append(f"{name}.bias")
        nbytes += n * dtype.itemsize

    def make():
        qweight, qzeros = ops.pack_awq(mod.qweight.detach().cpu().contiguous(),
                                       mod.zeros.detach().cpu().contiguous())
        scales = mod.scales.detach().cpu().t().contiguous()  # [N, G] -> [G, N]
        scales16 = scales.half()
        if not torch.isfinite(scales16).all():
            raise ValueError(f"{name}.scales: values outside the fp16 range (max |s| = "
                             f"{scales.float().abs().max().item():.4g}); the gemm format stores fp16 scales")
        lossy = int((scales16.to(scales.dtype) != scales).sum())
        if lossy:
            warnings.warn(f"{name}.scales: {lossy} of {scales.numel()} values change when rounded "
                          f"from {scales.dtype} to fp16", stacklevel=4)
        out = {names[0]: qweight, names[1]: qzeros, names[2]: scales16}
        if mod.bias is not None:
            out[names[3]] = mod.bias.detach().to("cpu", dtype).contiguous()
        return out

    return _Group(names, nbytes, make)


def _split_shards(groups: list[_Group], limit: int) -> list[list[_Group]]:
    """Greedy, in order; a group larger than the limit gets a shard of its own."""
    shards: list[list[_Group]] = [[]]
    size = 0
    for g in groups:
        if shards[-1] and size + g.nbytes > limit:
            shards.append([])
            size = 0
        shards[-1].append(g)
        size += g.nbytes
    return shards


def _shard_name(i: int, n: int) -> str:
    return WEIGHTS_NAME if n == 1 else f"model-{i + 1:05d}-of-{n:05d}.safetensors"


def _write_shards(folder: Path, shards: list[list[_Group]], config: AWQConfig) -> None:
    from safetensors.torch import save_file

    # the quantization settings also travel in every shard's header, so a lone shard is self-describing
    meta = {"format": "pt", "quantization_config": json.dumps(config.to_quantization_config())}
    weight_map: dict[str, str] = {}
    total = 0
    for i, shard in enumerate(shards):
        fname = _shard_name(i, len(shards))
        tensors: dict[str, torch.Tensor] = {}
        for g in shard:
            tensors.update(g.make())
        save_file(tensors, str(folder / fname), metadata=meta)
        for key, t in tensors.items():
            weight_map[key] = fname
            total += t.numel() * t.element_size()
        del tensors
    if len(shards) > 1:
        _write_json(folder / WEIGHTS_INDEX_NAME, {"metadata": {"total_size": total},
                                                   "weight_map": dict(sorted(weight_map.items()))})


def _config_dict(model: nn.Module, config: AWQConfig, dtype: torch.dtype, untie: bool) -> dict:
    d = json.loads(model.config.to_json_string(use_diff=True))
    # serving engines pick the model class from "architectures", as transformers' save_pretrained sets it
    if hasattr(model, "can_generate"):
        d["architectures"] = [type(model).__name__]
    d["quantization_config"] = config.to_quantization_config()
    # "dtype" for current transformers, "torch_dtype" for older readers (current ones map it to
    # dtype, logging a deprecation notice once)
    d["dtype"] = d["torch_dtype"] = str(dtype).removeprefix("torch.")
    if untie:
        d["tie_word_embeddings"] = False
    return d


def _write_json(path: Path, obj) -> None:
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=2, sort_keys=True)
        f.write("\n")


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):  # not every filesystem lets a directory be fsynced
        _fsync_file(path)


def _publish(tmp: Path, out: Path, overwrite: bool) -> None:
    """Rename the finished folder into place; an old checkpoint is moved aside first and removed
    only once the new one is in place."""
    if not out.exists():
        os.rename(tmp, out)
        _fsync_dir(out.parent)
        return
    if not overwrite:
        raise FileExistsError(f"{out} already exists; pass overwrite=True to replace it")
    old = out.with_name(f".{out.name}.old-{uuid.uuid4().hex[:8]}")
    os.rename(out, old)
    try:
        os.rename(tmp, out)
    except BaseException:
        os.rename(old, out)
        raise
    _fsync_dir(out.parent)
    if old.is_dir():
        shutil.rmtree(old, ignore_errors=True)
    else:
        old.unlink(missing_ok=True)


# ============================================================================================
# load
# ============================================================================================
@dataclass(frozen=True)
class _QuantSpec:
    bits: int
    group_size: int
    zero_point: bool
    version: str
    modules_to_not_convert: tuple[str, ...]
    source: str  # file the settings came from, for messages


@dataclass
class _Entry:
    """One tensor as the safetensors header describes it (nothing read yet)."""
    file: str      # shard name, the key of the open handles
    path: Path     # full path, for messages
    dtype: str
    shape: tuple[int, ...]


def load_quantized(path: str | os.PathLike, device: str | torch.device = "cpu",
                   dtype: torch.dtype | str | None = None) -> nn.Module:
    """Load an AutoAWQ "gemm" checkpoint (ours or another tool's) as a model with Int4Linear layers.

    The model is built on the meta device from config.json, the linears that have ``qweight``
    tensors in the checkpoint become Int4Linear, tensors are read with safetensors and repacked
    to the kernel layout once, then assigned. ``dtype`` is the compute dtype (default: the
    config's, else fp16). Problems with the files raise CheckpointError naming file and tensor.
    Returns the model in eval mode.
    """
    from safetensors import safe_open

    root = Path(path)
    if not root.is_dir():
        raise CheckpointError(f"{root}: not a checkpoint folder")
    spec = _read_quant_spec(root)
    hf_config = _read_hf_config(root)
    dtype = _resolve_dtype(dtype, hf_config)
    device = torch.device(device)

    files, weight_map = _weight_map(root)
    with contextlib.ExitStack() as stack:
        handles = {}
        for fname in files:
            fpath = root / fname
            try:
                handles[fname] = stack.enter_context(safe_open(str(fpath), framework="pt", device="cpu"))
            except Exception as e:
                raise CheckpointError(f"{fpath}: not a readable safetensors file ({e})") from e
        entries = _read_headers(root, handles, weight_map)

        model = _build_meta_model(hf_config, dtype)
        quantized = _swap_quantized(model, entries, spec, dtype)
        tied = _tied_mapping(model)
        _check_tie_against_quantized(tied, quantized)
        expected = model.state_dict()
        missing = _check_keys(model, expected, entries, tied)

        sd = {}
        for key, meta in expected.items():
            if key in missing:
                continue
            if _owner(key)[0] in quantized:
                continue
            e = entries[key]
            _check_plain(key, e, meta)
            sd[key] = _read(root, handles, key, e).to(device=device, dtype=meta.dtype)
        for name, mod in quantized.items():
            sd.update(_read_quantized(root, handles, entries, name, mod, dtype, device))

        result = model.load_state_dict(sd, strict=False, assign=True)
        del sd
    if result.unexpected_keys or set(result.missing_keys) - missing:
        raise CheckpointError(f"{root}: state dict mismatch after loading: missing "
                              f"{sorted(set(result.missing_keys) - missing)[:5]}, unexpected "
                              f"{sorted(result.unexpected_keys)[:5]}")
    _tie(model, missing)
    _materialize_non_persistent_buffers(model, device)
    leftover = [n for n, t in list(model.named_parameters()) + list(model.named_buffers()) if t.is_meta]
    if leftover:
        raise CheckpointError(f"{root}: no data for {leftover[:5]} (checkpoint lacks them and they "
                              "are not tied to a loaded tensor)")
    if getattr(model.config, "quantization_config", None) is None:
        model.config.quantization_config = _spec_to_dict(spec)
    return model.eval()


# ---- config ----------------------------------------------------------------------------------
def _read_json(path: Path) -> dict:
    try:
        with open(path, encoding="utf-8") as f:
            obj = json.load(f)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{path}: cannot read JSON ({e})") from e
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path}: expected a JSON object, got {type(obj).__name__}")
    return obj


def _read_quant_spec(root: Path) -> _QuantSpec:
    cfg_path = root / CONFIG_NAME
    if not cfg_path.is_file():
        raise CheckpointError(f"{root}: no {CONFIG_NAME}")
    qc = _read_json(cfg_path).get("quantization_config")
    source = f"{cfg_path} quantization_config"
    if qc is None:
        old = root / AUTOAWQ_QUANT_CONFIG_NAME
        if not old.is_file():
            raise CheckpointError(f"{cfg_path} has no quantization_config and {root} has no "
                                  f"{AUTOAWQ_QUANT_CONFIG_NAME}: not an AWQ checkpoint")
        qc, source = _read_json(old), str(old)
    if not isinstance(qc, dict):
        raise CheckpointError(f"{source}: expected an object, got {type(qc).__name__}")

    def get(*names, default=None):
        for n in names:
            if n in qc:
                return qc[n]
        if default is None:
            raise CheckpointError(f"{source}: missing {names[0]!r}")
        return default

    method = qc.get("quant_method", "awq")
    if str(method).lower() != "awq":
        raise CheckpointError(f"{source}: quant_method={method!r}, expected 'awq'")
    bits = get("bits", "w_bit")
    if bits != 4 or isinstance(bits, bool):
        raise CheckpointError(f"{source}: bits={bits!r}; only 4-bit AWQ checkpoints are supported")
    version = get("version", default="gemm")
    if not isinstance(version, str) or version.lower() != "gemm":
        raise CheckpointError(f"{source}: version={version!r}; only the 'gemm' layout is supported "
                              "(gemv / marlin / exllama layouts pack differently)")
    group_size = get("group_size", "q_group_size")
    if not isinstance(group_size, int) or isinstance(group_size, bool) or not (
            group_size == -1 or group_size > 0):
        raise CheckpointError(f"{source}: group_size={group_size!r} must be a positive int or -1")
    zero_point = get("zero_point", default=True)
    if not isinstance(zero_point, bool):
        raise CheckpointError(f"{source}: zero_point={zero_point!r} must be true or false")
    skip = qc.get("modules_to_not_convert") or ()
    if not isinstance(skip, (list, tuple)) or not all(isinstance(s, str) for s in skip):
        raise CheckpointError(f"{source}: modules_to_not_convert={skip!r} must be a list of names")
    return _QuantSpec(4, group_size, zero_point, "gemm", tuple(skip), source)


def _spec_to_dict(spec: _QuantSpec) -> dict:
    return {"quant_method": "awq", "bits": spec.bits, "group_size": spec.group_size,
            "zero_point": spec.zero_point, "version": spec.version,
            "modules_to_not_convert": list(spec.modules_to_not_convert) or None}


def _read_hf_config(root: Path):
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(str(root), local_files_only=True)
    except Exception as e:
        raise CheckpointError(f"{root / CONFIG_NAME}: transformers cannot read it ({e})") from e


def _resolve_dtype(dtype, hf_config) -> torch.dtype:
    if dtype is None:
        dtype = getattr(hf_config, "dtype", None) or getattr(hf_config, "torch_dtype", None) or torch.float16
    if isinstance(dtype, str):
        dtype = getattr(torch, dtype.removeprefix("torch."), None)
    if dtype not in _COMPUTE_DTYPES:
        raise ValueError(f"dtype={dtype!r}: the compute dtype must be one of {_COMPUTE_DTYPES}")
    return dtype


def _build_meta_model(hf_config, dtype: torch.dtype) -> nn.Module:
    from transformers import AutoModelForCausalLM

    try:
        with torch.device("meta"):
            return AutoModelForCausalLM.from_config(hf_config, dtype=dtype)
    except Exception as e:
        raise CheckpointError(f"transformers cannot build a causal LM from this config "
                              f"(model_type={getattr(hf_config, 'model_type', None)!r}): {e}") from e


# ---- files -----------------------------------------------------------------------------------
def _weight_map(root: Path) -> tuple[list[str], dict[str, str] | None]:
    """(shard files, {tensor name: shard file}) from the index, or ([model.safetensors], None)."""
    index = root / WEIGHTS_INDEX_NAME
    if index.is_file():
        wm = _read_json(index).get("weight_map")
        if not isinstance(wm, dict) or not wm or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in wm.items()):
            raise CheckpointError(f"{index}: 'weight_map' must map tensor names to file names")
        for fname in set(wm.values()):
            if Path(fname).name != fname:
                raise CheckpointError(f"{index}: shard {fname!r} is not a plain file name")
            if not (root / fname).is_file():
                raise CheckpointError(f"{index} lists {fname}, which does not exist in {root}")
        return sorted(set(wm.values())), dict(wm)
    if (root / WEIGHTS_NAME).is_file():
        return [WEIGHTS_NAME], None
    if list(root.glob("*.bin")) or list(root.glob("*.pt")):
        raise CheckpointError(f"{root}: only pickled weights (*.bin / *.pt) found; this loader reads "
                              "safetensors only, never pickles")
    raise CheckpointError(f"{root}: no {WEIGHTS_NAME} and no {WEIGHTS_INDEX_NAME}")


def _read_headers(root: Path, handles: dict, weight_map: dict[str, str] | None) -> dict[str, _Entry]:
    """Names, dtypes and shapes of every tensor, checked against the index; no data is read."""
    entries: dict[str, _Entry] = {}
    for fname, f in handles.items():
        fpath = root / fname
        try:
            for key in f.keys():
                sl = f.get_slice(key)
                entry = _Entry(fname, fpath, sl.get_dtype(), tuple(int(d) for d in sl.get_shape()))
                if key in entries:
                    raise CheckpointError(f"tensor {key} is in both {entries[key].path} and {fpath}")
                if weight_map and weight_map.get(key) != fname:
                    raise CheckpointError(f"{fpath}: tensor {key} is not listed for this file in "
                                          f"{WEIGHTS_INDEX_NAME}")
                entries[key] = entry
        except CheckpointError:
            raise
        except Exception as e:
            raise CheckpointError(f"{fpath}: cannot read the safetensors header ({e})") from e
    for key, fname in (weight_map or {}).items():
        if key not in entries:
            raise CheckpointError(f"{root / fname}: missing tensor {key} (listed in {WEIGHTS_INDEX_NAME})")
    return entries


def _read(root: Path, handles: dict, key: str, e: _Entry) -> torch.Tensor:
    try:
        return handles[e.file].get_tensor(key)
    except Exception as err:
        raise CheckpointError(f"{e.path}: cannot read tensor {key} ({err})") from err


# ---- model surgery and checks ----------------------------------------------------------------
def _swap_quantized(model: nn.Module, entries: dict[str, _Entry], spec: _QuantSpec,
                    dtype: torch.dtype) -> dict[str, Int4Linear]:
    """Replace every nn.Linear that has ``<name>.qweight`` in the checkpoint by a meta Int4Linear."""
    quantized = {}
    for key in sorted(entries):
        if not key.endswith(".qweight"):
            continue
        name = key[: -len(".qweight")]
        try:
            lin = model.get_submodule(name)
        except AttributeError:
            lin = None
        if not isinstance(lin, nn.Linear):
            what = "no module" if lin is None else f"a {type(lin).__name__}"
            raise CheckpointError(f"unknown tensor {key} in {entries[key].path}: the model has {what} "
                                  f"at {name}, not a Linear")
        k, n = lin.in_features, lin.out_features
        _check_quant_tensors(name, entries, spec, k, n)
        g = spec.group_size
        mod = Int4Linear(k, n, bias=lin.bias is not None, group_size=g, dtype=dtype, device="meta")
        parent, leaf = _owner(name)
        setattr(model.get_submodule(parent) if parent else model, leaf, mod)
        quantized[name] = mod
    return quantized


def _check_quant_tensors(name: str, entries: dict[str, _Entry], spec: _QuantSpec, k: int, n: int) -> None:
    for s in _QUANT_SUFFIXES:
        if f"{name}.{s}" not in entries:
            raise CheckpointError(f"missing tensor {name}.{s}: {name}.qweight is in "
                                  f"{entries[name + '.qweight'].path} but its {s} is in no shard")
    qw, qz, sc = (entries[f"{name}.{s}"] for s in _QUANT_SUFFIXES)
    for key, e, ok in ((f"{name}.qweight", qw, ("I32",)), (f"{name}.qzeros", qz, ("I32",)),
                       (f"{name}.scales", sc, ("F16", "BF16", "F32"))):
        if e.dtype not in ok:
            raise CheckpointError(f"{e.path}: tensor {key} has dtype {e.dtype}, expected "
                                  f"{' or '.join(ok)}")
    if n % PACK != 0 or k % PACK != 0:
        raise CheckpointError(f"{name}: Linear({k} -> {n}) cannot hold INT4 weights: in_features and "
                              f"out_features must be multiples of {PACK}")
    if qw.shape != (k, n // PACK):
        raise CheckpointError(f"{qw.path}: tensor {name}.qweight has shape {list(qw.shape)}, expected "
                              f"{[k, n // PACK]} for Linear(in={k}, out={n})")
    if len(qz.shape) != 2 or qz.shape[1] != n // PACK:
        raise CheckpointError(f"{qz.path}: tensor {name}.qzeros has shape {list(qz.shape)}, expected "
                              f"[groups, {n // PACK}] for Linear(in={k}, out={n})")
    if len(sc.shape) != 2 or sc.shape[1] != n:
        raise CheckpointError(f"{sc.path}: tensor {name}.scales has shape {list(sc.shape)}, expected "
                              f"[groups, {n}] for Linear(in={k}, out={n})")
    if qz.shape[0] != sc.shape[0]:
        raise CheckpointError(f"{name}: qzeros has {qz.shape[0]} group rows but scales has {sc.shape[0]}")
    g = k if spec.group_size == -1 else spec.group_size
    if k % g != 0 or qz.shape[0] != k // g:
        derived = f"{k // qz.shape[0]}" if qz.shape[0] and k % qz.shape[0] == 0 else "none"
        raise CheckpointError(f"{spec.source}: group_size={spec.group_size} disagrees with tensor "
                              f"{name}.qzeros {list(qz.shape)} in {qz.path} (in_features={k}: "
                              f"{'expected ' + str(k // g) + ' group rows' if k % g == 0 else 'does not divide'}; "
                              f"group size implied by the tensors: {derived})")


def _check_tie_against_quantized(tied: dict[str, str], quantized: dict[str, Int4Linear]) -> None:
    for target, source in tied.items():
        for key in (target, source):
            if _owner(key)[0] in quantized:
                raise CheckpointError(f"config ties {target} to {source} (tie_word_embeddings), but "
                                      f"the checkpoint stores {_owner(key)[0]} quantized; set "
                                      "tie_word_embeddings to false in config.json")


def _ignore_unexpected_regex(model: nn.Module):
    pats = set(getattr(model, "_keys_to_ignore_on_load_unexpected", None) or ())
    # Buffers that older checkpoints stored but current transformers recomputes (transformers
    # skips them for the same reason): rotary inv_freq and position_ids.
    names = [n for n, _ in model.named_buffers()]
    if any(n.endswith("rotary_emb.inv_freq") for n in names):
        pats.add(r"rotary_emb\.inv_freq")
    if any(n.endswith("position_ids") for n in names):
        pats.add(r"(^|\.)position_ids$")
    return re.compile("|".join(f"({p})" for p in pats)) if pats else None


def _check_keys(model: nn.Module, expected: dict, entries: dict[str, _Entry], tied: dict[str, str]) -> set[str]:
    """Every checkpoint tensor must be used; every model tensor must be in the checkpoint or be one
    side of a tied pair whose other side is. Returns the keys tying will fill."""
    quant_keys = {f"{_owner(k)[0]}.{s}" for k in expected if k.endswith(".qweight") for s in _QUANT_SUFFIXES}
    # Int4Linear's kernel-layout buffers have AutoAWQ counterparts on disk
    disk_names = {k: k for k in expected}
    for k in list(disk_names):
        owner, leaf = _owner(k)
        if leaf == "zeros" and f"{owner}.qweight" in expected:
            disk_names[k] = f"{owner}.qzeros"
    wanted = set(disk_names.values()) | quant_keys
    ignore = _ignore_unexpected_regex(model)
    unknown = sorted(k for k in entries if k not in wanted and not (ignore and ignore.search(k)))
    if unknown:
        more = f" (and {len(unknown) - 5} more)" if len(unknown) > 5 else ""
        raise CheckpointError("unknown tensors the model has no place for: " + ", ".join(
            f"{k} in {entries[k].path}" for k in unknown[:5]) + more)
    missing = {k for k, d in disk_names.items() if d not in entries}
    partners = {}
    for t, s in tied.items():
        partners.setdefault(t, set()).add(s)
        partners.setdefault(s, set()).add(t)
    unresolved = sorted(k for k in missing if not (partners.get(k, set()) - missing))
    if unresolved:
        more = f" (and {len(unresolved) - 5} more)" if len(unresolved) > 5 else ""
        raise CheckpointError("missing tensors: " + ", ".join(disk_names[k] for k in unresolved[:5]) + more)
    return missing


def _check_plain(key: str, e: _Entry, meta: torch.Tensor) -> None:
    if e.shape != tuple(meta.shape):
        raise CheckpointError(f"{e.path}: tensor {key} has shape {list(e.shape)}, the model "
                              f"expects {list(meta.shape)}")
    st = _ST_DTYPES.get(e.dtype)
    if st is None or st.is_floating_point != meta.is_floating_point() or (
            not meta.is_floating_point() and st != meta.dtype):
        raise CheckpointError(f"{e.path}: tensor {key} has dtype {e.dtype}, the model expects "
                              f"{str(meta.dtype).removeprefix('torch.')}")


def _read_quantized(root: Path, handles: dict, entries: dict[str, _Entry], name: str, mod: Int4Linear,
                    dtype: torch.dtype, device: torch.device) -> dict[str, torch.Tensor]:
    """AutoAWQ -> kernel layout, once: qweight [K, N/8] -> [N, K/8], qzeros [G, N/8] -> zeros
    uint8 [N, G], scales [G, N] -> [N, G] in the compute dtype."""
    qw_awq = _read(root, handles, f"{name}.qweight", entries[f"{name}.qweight"])
    qz_awq = _read(root, handles, f"{name}.qzeros", entries[f"{name}.qzeros"])
    scales = _read(root, handles, f"{name}.scales", entries[f"{name}.scales"])
    qweight, zeros = ops.unpack_awq(qw_awq.contiguous(), qz_awq.contiguous())
    out = {f"{name}.qweight": qweight.to(device), f"{name}.zeros": zeros.to(device),
           f"{name}.scales": scales.t().contiguous().to(device=device, dtype=dtype)}  # [G, N] -> [N, G]
    if mod.bias is not None:
        key = f"{name}.bias"
        e = entries[key]
        _check_plain(key, e, mod.bias)
        out[key] = _read(root, handles, key, e).to(device=device, dtype=dtype)
    return out


def _tie(model: nn.Module, missing: set[str]) -> None:
    """transformers' own tying: fills each missing side of a tied pair from the side that was loaded."""
    tie = getattr(model, "tie_weights", None)
    if tie is None or not missing:
        return
    try:
        tie(missing_keys=set(missing))
    except TypeError:
        tie()


def _materialize_non_persistent_buffers(model: nn.Module, device: torch.device) -> None:
    """Buffers that are not saved (rotary inv_freq, ...) are still meta after the build. transformers
    recomputes them in the model's own _init_weights, as from_pretrained does; they are filled with
    a sentinel first so a buffer that _init_weights does not know is caught instead of left as garbage."""
    for mod_name, mod in model.named_modules():
        names = [b for b in mod._non_persistent_buffers_set
                 if isinstance(getattr(mod, b, None), torch.Tensor) and getattr(mod, b).is_meta]
        if not names:
            continue
        for b in names:
            buf = getattr(mod, b)
            fill = math.nan if buf.is_floating_point() else (
                False if buf.dtype == torch.bool else torch.iinfo(buf.dtype).min)
            mod.register_buffer(b, torch.full(buf.shape, fill, dtype=buf.dtype, device=device),
                                persistent=False)
        init = _init_owner(model, mod_name)
        if init is not None:
            with torch.no_grad():
                init(mod)
        for b in names:
            buf = getattr(mod, b)
            if buf.dtype == torch.bool:
                continue
            bad = buf.isnan().any() if buf.is_floating_point() else (buf == torch.iinfo(buf.dtype).min).any()
            if bad:
                raise CheckpointError(f"cannot rebuild non-persistent buffer {mod_name}.{b} "
                                      f"({type(mod).__name__}): transformers' _init_weights does not set it")


def _init_owner(model: nn.Module, mod_name: str):
    """_init_weights of the innermost transformers PreTrainedModel that contains the module."""
    parts = mod_name.split(".") if mod_name else []
    owner = model if hasattr(model, "_init_weights") else None
    cur = model
    for p in parts:
        cur = getattr(cur, p, None)
        if cur is None:
            break
        if hasattr(cur, "_init_weights") and hasattr(cur, "config"):
            owner = cur
    return owner._init_weights if owner is not None else None
