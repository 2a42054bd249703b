"""Checkpoints in the AutoAWQ "gemm" format: round trips, an independent from-the-spec writer,
error messages, atomic saves, and a fuzz test of the loader."""
import json
import pickle
import struct
import tempfile
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

transformers = pytest.importorskip("transformers")
from transformers import AutoModelForCausalLM, LlamaConfig  # noqa: E402

from awq_ext import AWQConfig, Int4Linear, reference  # noqa: E402
from awq_ext.io import (CheckpointError, TensorParallelShapeWarning, load_quantized,  # noqa: E402
                        save_quantized)
from conftest import DEVICES, rel_err  # noqa: E402


# ---- models ----------------------------------------------------------------------------------
def tiny_config(hidden=64, inter=192, layers=2, heads=4, kv=2, vocab=256, tie=True, bias=False):
    return LlamaConfig(vocab_size=vocab, hidden_size=hidden, intermediate_size=inter,
                       num_hidden_layers=layers, num_attention_heads=heads, num_key_value_heads=kv,
                       max_position_embeddings=64, tie_word_embeddings=tie, attention_bias=bias)


def float_model(cfg, dtype):
    # built through from_config(dtype=...) so rotary inv_freq stays fp32, as in a real checkpoint
    return AutoModelForCausalLM.from_config(cfg, dtype=dtype).eval()


def quantized_model(cfg, group_size, dtype=torch.float16, skip=()):
    """Random tiny Llama whose decoder linears are Int4Linear.from_linear (lm_head stays float)."""
    model = float_model(cfg, dtype)
    with torch.no_grad():
        for p in model.parameters():  # biases and norms too: no zeros or ones left
            p.normal_(0, 0.05)
    for name, mod in list(model.named_modules()):
        for child_name, child in list(mod.named_children()):
            full = f"{name}.{child_name}"
            if isinstance(child, torch.nn.Linear) and child_name != "lm_head" and not any(s in full for s in skip):
                setattr(mod, child_name, Int4Linear.from_linear(child, group_size))
    return model


def save_quiet(*args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TensorParallelShapeWarning)
        return save_quantized(*args, **kwargs)


def shard_keys(folder: Path) -> dict[str, str]:
    from safetensors import safe_open

    out = {}
    for f in sorted(folder.glob("*.safetensors")):
        with safe_open(str(f), "pt") as h:
            out.update({k: f.name for k in h.keys()})
    return out


# ---- an independent writer, from the format description only (no awq_ext) ---------------------
# nibble i of a word holds output channel 8c + SPEC_ORDER[i] (AutoAWQ "gemm" format description)
SPEC_ORDER = (0, 2, 4, 6, 1, 3, 5, 7)
NP_TO_ST = {np.dtype(np.float16): "F16", np.dtype(np.float32): "F32", np.dtype(np.int32): "I32",
            np.dtype(np.int64): "I64"}


def spec_pack(codes: np.ndarray) -> np.ndarray:
    """codes [R, C] in 0..15 -> int32 [R, C/8], packed along C."""
    r, c = codes.shape
    g = codes.reshape(r, c // 8, 8).astype(np.uint32)  # [R, C] -> [R, C/8, 8]
    word = np.zeros((r, c // 8), np.uint32)
    for i, e in enumerate(SPEC_ORDER):
        word |= (g[:, :, e] & 0xF) << np.uint32(4 * i)
    return word.view(np.int32)


def write_safetensors(path: Path, tensors: dict[str, np.ndarray]) -> None:
    """The container by hand: u64 little-endian header size, JSON header, raw little-endian data."""
    header, blobs, off = {}, [], 0
    for name, a in tensors.items():
        b = np.ascontiguousarray(a).astype(a.dtype.newbyteorder("<")).tobytes()
        header[name] = {"dtype": NP_TO_ST[a.dtype], "shape": list(a.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    header["__metadata__"] = {"format": "pt"}
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        f.writelines(blobs)


def linear_shapes(cfg):
    """{suffix: (K, N)} of one Llama decoder layer."""
    h, i, hd = cfg.hidden_size, cfg.intermediate_size, cfg.hidden_size // cfg.num_attention_heads
    q, kv = cfg.num_attention_heads * hd, cfg.num_key_value_heads * hd
    return {"self_attn.q_proj": (h, q), "self_attn.k_proj": (h, kv), "self_attn.v_proj": (h, kv),
            "self_attn.o_proj": (q, h), "mlp.gate_proj": (h, i), "mlp.up_proj": (h, i), "mlp.down_proj": (i, h)}


def write_spec_checkpoint(folder: Path, cfg, group_size: int, seed: int = 0, old_style=False, n_files=1):
    """Random INT4 checkpoint straight from the format description. Returns (expected W^T fp32 [K, N]
    per quantized linear, plain tensors), both as numpy."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    tensors, expected, plain = {}, {}, {}
    h, v = cfg.hidden_size, cfg.vocab_size
    plain["model.embed_tokens.weight"] = (rng.standard_normal((v, h)) * 0.5).astype(np.float16)
    for layer in range(cfg.num_hidden_layers):
        p = f"model.layers.{layer}"
        for norm in ("input_layernorm", "post_attention_layernorm"):
            plain[f"{p}.{norm}.weight"] = (1 + 0.1 * rng.standard_normal(h)).astype(np.float16)
        for suffix, (k, n) in linear_shapes(cfg).items():
            g = k if group_size == -1 else group_size
            q = rng.integers(0, 16, (k, n), dtype=np.uint8)
            z = rng.integers(0, 16, (k // g, n), dtype=np.uint8)
            s = rng.uniform(0.002, 0.05, (k // g, n)).astype(np.float16)
            name = f"{p}.{suffix}"
            tensors[f"{name}.qweight"] = spec_pack(q)
            tensors[f"{name}.qzeros"] = spec_pack(z)
            tensors[f"{name}.scales"] = s
            zz, ss = np.repeat(z, g, axis=0), np.repeat(s, g, axis=0)  # [K/g, N] -> [K, N]
            expected[name] = (q.astype(np.float32) - zz) * ss.astype(np.float32)  # exact in fp32
    plain["model.norm.weight"] = (1 + 0.1 * rng.standard_normal(h)).astype(np.float16)
    if not cfg.tie_word_embeddings:
        plain["lm_head.weight"] = (rng.standard_normal((v, h)) * 0.5).astype(np.float16)
    tensors.update(plain)

    names = list(tensors)
    if n_files == 1:
        write_safetensors(folder / "model.safetensors", tensors)
    else:
        files = [f"model-{i + 1:05d}-of-{n_files:05d}.safetensors" for i in range(n_files)]
        wmap = {name: files[j % n_files] for j, name in enumerate(names)}
        for f in files:
            write_safetensors(folder / f, {n: tensors[n] for n in names if wmap[n] == f})
        (folder / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": wmap}))

    hf = cfg.to_dict()
    hf["architectures"] = ["LlamaForCausalLM"]
    hf["dtype"] = "float16"
    if old_style:
        (folder / "quant_config.json").write_text(json.dumps(
            {"zero_point": True, "q_group_size": group_size, "w_bit": 4, "version": "GEMM"}))
    else:
        hf["quantization_config"] = {"quant_method": "awq", "bits": 4, "group_size": group_size,
                                     "zero_point": True, "version": "gemm", "modules_to_not_convert": None}
    (folder / "config.json").write_text(json.dumps(hf))
    return expected, plain


def assert_matches_spec(model, expected, plain):
    for name, wt in expected.items():
        mod = model.get_submodule(name)
        assert isinstance(mod, Int4Linear), name
        deq = reference.dequantize_int4(mod.qweight, mod.scales.half(), mod.zeros)  # [N, K], fp16
        assert torch.equal(deq.t(), torch.from_numpy(wt.astype(np.float16))), name
    sd = model.state_dict()
    for name, a in plain.items():
        assert torch.equal(sd[name].cpu().half(), torch.from_numpy(a)), name


# ---- round trips -----------------------------------------------------------------------------
@pytest.mark.parametrize("group_size,dtype,shard", [(32, torch.float16, "5GB"), (64, torch.bfloat16, "30KB"),
                                                    (-1, torch.float16, "30KB"), (32, torch.bfloat16, 20000)])
def test_round_trip_bit_identical(tmp_path, group_size, dtype, shard, monkeypatch):
    cfg = tiny_config()
    model = quantized_model(cfg, group_size, dtype)
    assert model.lm_head.weight is model.model.embed_tokens.weight  # tied, as in SmolLM2
    ids = torch.randint(0, cfg.vocab_size, (2, 9))
    with torch.no_grad():
        want = model(ids).logits
    out = save_quiet(model, tmp_path / "ckpt", AWQConfig(group_size=group_size), max_shard_size=shard)

    def no_pickle(*a, **k):
        raise AssertionError("the loader must not unpickle")
    monkeypatch.setattr(torch, "load", no_pickle)
    monkeypatch.setattr(pickle, "load", no_pickle)
    monkeypatch.setattr(pickle, "loads", no_pickle)
    loaded = load_quantized(out, dtype=dtype)

    assert not loaded.training
    assert loaded.lm_head.weight is loaded.model.embed_tokens.weight
    assert "lm_head.weight" not in shard_keys(out)  # tied weight stored once
    before, after = model.state_dict(), loaded.state_dict()
    assert before.keys() == after.keys()
    for key in before:
        assert before[key].dtype == after[key].dtype and torch.equal(before[key], after[key]), key
    for a, b in zip(model.buffers(), loaded.buffers()):  # includes the rebuilt rotary inv_freq
        assert torch.equal(a, b)
    with torch.no_grad():
        assert torch.equal(loaded(ids).logits, want)
    qc = json.loads((out / "config.json").read_text())["quantization_config"]
    assert qc == {"quant_method": "awq", "bits": 4, "group_size": group_size, "zero_point": True,
                  "version": "gemm", "modules_to_not_convert": None}


def test_files_follow_the_gemm_layout(tmp_path):
    """What lands on disk is the AutoAWQ layout of the in-memory kernel layout."""
    from safetensors.torch import load_file

    model = quantized_model(tiny_config(), 32)
    out = save_quiet(model, tmp_path / "c", AWQConfig(group_size=32))
    sd = load_file(str(out / "model.safetensors"))
    q = model.model.layers[1].mlp.down_proj
    qw, qz = reference.pack_awq(q.qweight, q.zeros)
    p = "model.layers.1.mlp.down_proj"
    assert torch.equal(sd[f"{p}.qweight"], qw) and sd[f"{p}.qweight"].shape == (192, 64 // 8)
    assert torch.equal(sd[f"{p}.qzeros"], qz) and sd[f"{p}.qzeros"].shape == (192 // 32, 64 // 8)
    assert sd[f"{p}.scales"].dtype == torch.float16 and torch.equal(sd[f"{p}.scales"], q.scales.t())
    assert not any(k.endswith(".zeros") for k in sd)


def test_sharding_and_index(tmp_path):
    model = quantized_model(tiny_config(layers=3), 32)
    limit = 40_000
    out = save_quiet(model, tmp_path / "c", AWQConfig(group_size=32), max_shard_size=limit)
    index = json.loads((out / "model.safetensors.index.json").read_text())
    stored = shard_keys(out)
    assert index["weight_map"] == stored and len(set(stored.values())) > 2
    assert not (out / "model.safetensors").exists()
    from safetensors import safe_open
    total = 0
    for f in sorted(out.glob("*.safetensors")):
        with safe_open(str(f), "pt") as h:
            sizes = [h.get_tensor(k).numel() * h.get_tensor(k).element_size() for k in h.keys()]
            assert sum(sizes) <= limit or len(h.keys()) <= 4, f.name  # only one oversized group alone
            total += sum(sizes)
    assert index["metadata"]["total_size"] == total
    for name in (n for n, m in model.named_modules() if isinstance(m, Int4Linear)):
        assert len({stored[f"{name}.{s}"] for s in ("qweight", "qzeros", "scales")}) == 1
    loaded = load_quantized(out)
    ids = torch.randint(0, 256, (1, 5))
    with torch.no_grad():
        assert torch.equal(loaded(ids).logits, model(ids).logits)


def test_untied_bias_and_float_layers(tmp_path):
    """Untied lm_head, linears with bias (attention_bias), some linears kept in float."""
    cfg = tiny_config(tie=False, bias=True)
    model = quantized_model(cfg, 64, skip=("layers.1.mlp",))
    assert model.model.layers[0].self_attn.q_proj.bias is not None
    assert isinstance(model.model.layers[1].mlp.up_proj, torch.nn.Linear)
    tok = _FakeTokenizer()
    out = save_quiet(model, tmp_path / "c", AWQConfig(group_size=64, modules_to_not_convert=("layers.1.mlp",)),
                     tokenizer=tok)
    assert (out / "tokenizer.json").read_text() == "{}"
    keys = shard_keys(out)
    assert "lm_head.weight" in keys and "model.layers.1.mlp.up_proj.weight" in keys
    assert keys.keys() >= {"model.layers.0.self_attn.q_proj.bias", "model.layers.0.self_attn.q_proj.qweight"}
    loaded = load_quantized(out)
    assert isinstance(loaded.model.layers[1].mlp.up_proj, torch.nn.Linear)
    assert loaded.lm_head.weight is not loaded.model.embed_tokens.weight
    ids = torch.randint(0, 256, (1, 6))
    with torch.no_grad():
        assert torch.equal(loaded(ids).logits, model(ids).logits)


def test_quantized_tied_lm_head_is_untied_in_config(tmp_path):
    cfg = tiny_config()
    model = quantized_model(cfg, 32)
    model.lm_head = Int4Linear.from_linear(model.lm_head, 32)
    out = save_quiet(model, tmp_path / "c", AWQConfig(group_size=32))
    assert json.loads((out / "config.json").read_text())["tie_word_embeddings"] is False
    loaded = load_quantized(out)
    assert isinstance(loaded.lm_head, Int4Linear)
    ids = torch.randint(0, 256, (1, 4))
    with torch.no_grad():
        assert torch.equal(loaded(ids).logits, model(ids).logits)


def test_load_with_other_dtype(tmp_path):
    model = quantized_model(tiny_config(), 32, torch.float16)
    out = save_quiet(model, tmp_path / "c", AWQConfig(group_size=32))
    loaded = load_quantized(out, dtype="bfloat16")
    q0, q1 = model.model.layers[0].self_attn.o_proj, loaded.model.layers[0].self_attn.o_proj
    assert q1.scales.dtype == torch.bfloat16 and torch.equal(q1.scales, q0.scales.bfloat16())
    assert torch.equal(q1.qweight, q0.qweight) and torch.equal(q1.zeros, q0.zeros)
    assert loaded.model.embed_tokens.weight.dtype == torch.bfloat16


@pytest.mark.parametrize("device", DEVICES)
def test_load_to_device(tmp_path, device):
    if device == "cuda":
        from conftest import cuda_has_kernels
        if not cuda_has_kernels():
            pytest.skip("built without CUDA kernels")
    model = quantized_model(tiny_config(), 32)
    out = save_quiet(model, tmp_path / "c", AWQConfig(group_size=32))
    loaded = load_quantized(out, device=device)
    assert all(t.device.type == device for t in list(loaded.parameters()) + list(loaded.buffers()))
    ids = torch.randint(0, 256, (1, 5))
    with torch.no_grad():
        got, want = loaded(ids.to(device)).logits, model(ids).logits
    assert rel_err(got, want) < 1e-2


# ---- checkpoints written by the independent packer ---------------------------------------------
@pytest.mark.parametrize("group_size,old_style,n_files", [(32, False, 1), (64, True, 1), (-1, False, 3)])
def test_spec_checkpoint_matches_reference(tmp_path, group_size, old_style, n_files):
    cfg = tiny_config()
    expected, plain = write_spec_checkpoint(tmp_path / "c", cfg, group_size, old_style=old_style, n_files=n_files)
    model = load_quantized(tmp_path / "c")
    assert model.config.quantization_config["group_size"] == group_size
    assert_matches_spec(model, expected, plain)

    # end to end against a float model holding the same (dequantized) weights, in fp32
    ref = float_model(cfg, torch.float32)
    sd = {k: torch.from_numpy(v).float() for k, v in plain.items()}
    sd.update({f"{k}.weight": torch.from_numpy(v).float().t() for k, v in expected.items()})
    ref.load_state_dict(sd, strict=False)
    q32 = load_quantized(tmp_path / "c", dtype=torch.float32)
    ids = torch.randint(0, cfg.vocab_size, (2, 7))
    with torch.no_grad():
        assert rel_err(q32(ids).logits, ref(ids).logits) < 1e-5


# ---- error messages ----------------------------------------------------------------------------
@pytest.fixture
def spec_ckpt(tmp_path):
    folder = tmp_path / "spec"
    write_spec_checkpoint(folder, tiny_config(), 32)
    return folder


def _rewrite(folder: Path, edit):
    from safetensors.numpy import load_file

    f = folder / "model.safetensors"
    tensors = load_file(str(f))
    edit(tensors)
    write_safetensors(f, tensors)


def _edit_config(folder: Path, **qc):
    cfg = json.loads((folder / "config.json").read_text())
    cfg["quantization_config"].update(qc)
    (folder / "config.json").write_text(json.dumps(cfg))


Q = "model.layers.0.self_attn.q_proj"


def test_error_truncated(spec_ckpt):
    f = spec_ckpt / "model.safetensors"
    data = f.read_bytes()
    f.write_bytes(data[:-100])
    with pytest.raises(CheckpointError, match=r"model\.safetensors: not a readable safetensors file"):
        load_quantized(spec_ckpt)


def test_error_garbage_header(spec_ckpt):
    f = spec_ckpt / "model.safetensors"
    data = bytearray(f.read_bytes())
    data[8:16] = b"\x00garbage"
    f.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="model.safetensors"):
        load_quantized(spec_ckpt)


@pytest.mark.parametrize("key", [f"{Q}.scales", f"{Q}.qzeros"])
def test_error_missing_quant_tensor(spec_ckpt, key):
    _rewrite(spec_ckpt, lambda t: t.pop(key))
    with pytest.raises(CheckpointError, match=f"missing tensor {key}"):
        load_quantized(spec_ckpt)


def test_error_missing_plain_tensor(spec_ckpt):
    _rewrite(spec_ckpt, lambda t: t.pop("model.norm.weight"))
    with pytest.raises(CheckpointError, match=r"missing tensors: model\.norm\.weight"):
        load_quantized(spec_ckpt)


def test_error_index_names_missing_tensor(tmp_path):
    write_spec_checkpoint(tmp_path / "c", tiny_config(), 32, n_files=2)
    index = json.loads((tmp_path / "c/model.safetensors.index.json").read_text())
    index["weight_map"]["model.layers.9.mlp.up_proj.qweight"] = "model-00001-of-00002.safetensors"
    (tmp_path / "c/model.safetensors.index.json").write_text(json.dumps(index))
    with pytest.raises(CheckpointError, match=r"model-00001-of-00002\.safetensors: missing tensor "
                                              r"model\.layers\.9\.mlp\.up_proj\.qweight"):
        load_quantized(tmp_path / "c")


@pytest.mark.parametrize("key,shape,msg", [
    (f"{Q}.scales", (2, 56), r"tensor model\.layers\.0\.self_attn\.q_proj\.scales has shape \[2, 56\], "
                             r"expected \[groups, 64\]"),
    (f"{Q}.qweight", (64, 16), r"q_proj\.qweight has shape \[64, 16\], expected \[64, 8\]"),
    ("model.norm.weight", (32,), r"model\.norm\.weight has shape \[32\], the model expects \[64\]"),
])
def test_error_wrong_shape(spec_ckpt, key, shape, msg):
    def edit(t):
        t[key] = np.ones(shape, t[key].dtype)
    _rewrite(spec_ckpt, edit)
    with pytest.raises(CheckpointError, match=msg) as info:
        load_quantized(spec_ckpt)
    assert str(spec_ckpt / "model.safetensors") in str(info.value)  # names the file


@pytest.mark.parametrize("key,dtype,msg", [
    (f"{Q}.qweight", np.float32, r"q_proj\.qweight has dtype F32, expected I32"),
    (f"{Q}.qzeros", np.int64, r"q_proj\.qzeros has dtype I64, expected I32"),
    (f"{Q}.scales", np.int32, r"q_proj\.scales has dtype I32, expected F16 or BF16 or F32"),
    ("model.embed_tokens.weight", np.int32, r"embed_tokens\.weight has dtype I32, the model expects float16"),
])
def test_error_wrong_dtype(spec_ckpt, key, dtype, msg):
    def edit(t):
        t[key] = t[key].astype(dtype)
    _rewrite(spec_ckpt, edit)
    with pytest.raises(CheckpointError, match=msg) as info:
        load_quantized(spec_ckpt)
    assert str(spec_ckpt / "model.safetensors") in str(info.value)  # names the file


def test_error_unknown_keys(spec_ckpt):
    def edit(t):
        t["model.layers.0.mystery.weight"] = np.zeros(4, np.float16)
        t["model.norm.qweight"] = np.zeros((8, 8), np.int32)
    _rewrite(spec_ckpt, edit)
    with pytest.raises(CheckpointError, match=r"unknown tensor model\.norm\.qweight .* not a Linear"):
        load_quantized(spec_ckpt)
    _rewrite(spec_ckpt, lambda t: t.pop("model.norm.qweight"))
    with pytest.raises(CheckpointError, match=r"unknown tensors .*model\.layers\.0\.mystery\.weight in "
                                              r"\S*/spec/model\.safetensors"):
        load_quantized(spec_ckpt)


def test_stale_buffers_of_old_checkpoints_are_ignored(spec_ckpt):
    """Older transformers saved rotary inv_freq per layer; like transformers, the loader skips it."""
    def edit(t):
        t["model.layers.0.self_attn.rotary_emb.inv_freq"] = np.ones(8, np.float32)
    _rewrite(spec_ckpt, edit)
    inv_freq = load_quantized(spec_ckpt).model.rotary_emb.inv_freq
    assert torch.equal(inv_freq, float_model(tiny_config(), torch.float16).model.rotary_emb.inv_freq)


@pytest.mark.parametrize("change,msg", [
    ({"bits": 8}, r"bits=8; only 4-bit"),
    ({"version": "gemv"}, r"version='gemv'; only the 'gemm' layout"),
    ({"quant_method": "gptq"}, r"quant_method='gptq'"),
    ({"group_size": 64}, r"group_size=64 disagrees with tensor model\.layers\.\d+\.\S+\.qzeros \[\d+, \d+\] "
                         r".*implied by the tensors: 32"),
    ({"group_size": 48}, r"group_size=48 disagrees"),
    ({"group_size": "128"}, r"group_size='128' must be a positive int or -1"),
    ({"zero_point": "yes"}, r"zero_point='yes'"),
])
def test_error_bad_config(spec_ckpt, change, msg):
    _edit_config(spec_ckpt, **change)
    with pytest.raises(CheckpointError, match=msg) as info:
        load_quantized(spec_ckpt)
    assert "config.json" in str(info.value)


def test_error_no_quant_config_and_bad_files(spec_ckpt, tmp_path):
    cfg = json.loads((spec_ckpt / "config.json").read_text())
    del cfg["quantization_config"]
    (spec_ckpt / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match="no quantization_config .* not an AWQ checkpoint"):
        load_quantized(spec_ckpt)
    (spec_ckpt / "config.json").write_text("{not json")
    with pytest.raises(CheckpointError, match=r"config\.json: cannot read JSON"):
        load_quantized(spec_ckpt)
    (tmp_path / "pickled").mkdir()
    (tmp_path / "pickled/config.json").write_text(json.dumps(
        {**tiny_config().to_dict(), "quantization_config": {"bits": 4, "group_size": 32, "version": "gemm"}}))
    (tmp_path / "pickled/pytorch_model.bin").write_bytes(b"\x80\x04")
    with pytest.raises(CheckpointError, match="pickled weights"):
        load_quantized(tmp_path / "pickled")
    with pytest.raises(CheckpointError, match="not a checkpoint folder"):
        load_quantized(tmp_path / "nowhere")


# ---- atomic saves ----------------------------------------------------------------------------
class _FakeTokenizer:
    def __init__(self, fail=False):
        self.fail = fail

    def save_pretrained(self, folder):
        if self.fail:
            raise RuntimeError("tokenizer exploded")
        Path(folder, "tokenizer.json").write_text("{}")


def test_failed_save_leaves_nothing(tmp_path, monkeypatch):
    model = quantized_model(tiny_config(), 32)
    parent = tmp_path / "p"
    parent.mkdir()
    with pytest.raises(RuntimeError, match="tokenizer exploded"):
        save_quiet(model, parent / "c", AWQConfig(group_size=32), tokenizer=_FakeTokenizer(fail=True))
    assert list(parent.iterdir()) == []

    import safetensors.torch
    real, calls = safetensors.torch.save_file, []

    def flaky(*a, **k):
        calls.append(1)
        if len(calls) == 2:
            raise OSError("disk full")
        return real(*a, **k)
    monkeypatch.setattr(safetensors.torch, "save_file", flaky)
    with pytest.raises(OSError, match="disk full"):
        save_quiet(model, parent / "c", AWQConfig(group_size=32), max_shard_size="20KB")
    assert list(parent.iterdir()) == []


def test_existing_folder_and_overwrite(tmp_path):
    model = quantized_model(tiny_config(), 32)
    out = save_quiet(model, tmp_path / "c", AWQConfig(group_size=32))
    stamp = (out / "config.json").read_bytes()
    with pytest.raises(FileExistsError, match="overwrite=True"):
        save_quiet(model, out, AWQConfig(group_size=32))
    # a failing overwrite keeps the old checkpoint
    with pytest.raises(RuntimeError):
        save_quiet(model, out, AWQConfig(group_size=32), tokenizer=_FakeTokenizer(fail=True), overwrite=True)
    assert (out / "config.json").read_bytes() == stamp
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c"]
    other = quantized_model(tiny_config(), 32)
    save_quiet(other, out, AWQConfig(group_size=32), overwrite=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c"]
    loaded = load_quantized(out)
    assert torch.equal(loaded.model.layers[0].mlp.up_proj.qweight, other.model.layers[0].mlp.up_proj.qweight)


def test_save_argument_errors(tmp_path):
    model = quantized_model(tiny_config(), 32)
    with pytest.raises(ValueError, match=r"Int4Linear\.group_size=32 disagrees with config\.group_size=64"):
        save_quantized(model, tmp_path / "a", AWQConfig(group_size=64))
    with pytest.raises(ValueError, match="bits=3"):
        save_quantized(model, tmp_path / "a", AWQConfig(bits=3, group_size=32))
    with pytest.raises(ValueError, match="max_shard_size='5 parsecs'"):
        save_quantized(model, tmp_path / "a", AWQConfig(group_size=32), max_shard_size="5 parsecs")
    assert not (tmp_path / "a").exists()


# ---- tensor-parallel shape warning -----------------------------------------------------------
def test_tensor_parallel_warning(tmp_path):
    # hidden 64, group 32: in/4 = 16 is not a whole number of groups, so tp=4 and tp=8 cannot split
    with pytest.warns(TensorParallelShapeWarning, match=r"tp=4: 14 layers.*in=64: in/4 is not a multiple "
                                                        r"of group_size 32") as rec:
        save_quantized(quantized_model(tiny_config(), 32), tmp_path / "a", AWQConfig(group_size=32))
    assert "tp=2" not in str(rec[0].message)
    # every K/tp a multiple of 32 and every N/tp a multiple of 8 for tp = 2, 4, 8: silent
    cfg = tiny_config(hidden=256, inter=512, heads=4, kv=2)
    with warnings.catch_warnings():
        warnings.simplefilter("error", TensorParallelShapeWarning)
        save_quantized(quantized_model(cfg, 32), tmp_path / "b", AWQConfig(group_size=32))


# ---- fuzz --------------------------------------------------------------------------------------
@st.composite
def fuzz_cases(draw):
    heads = draw(st.sampled_from([2, 4]))
    head_dim = draw(st.sampled_from([8, 16, 32]))
    hidden = heads * head_dim
    kv = draw(st.sampled_from([h for h in (1, 2, 4) if heads % h == 0]))
    inter = draw(st.sampled_from([32, 64, 96, 160, 192]))
    group = draw(st.sampled_from([g for g in (32, 64, 128, -1)
                                  if g == -1 or (hidden % g == 0 and inter % g == 0 and (heads * head_dim) % g == 0)]))
    cfg = tiny_config(hidden=hidden, inter=inter, layers=draw(st.integers(1, 2)), heads=heads, kv=kv,
                      vocab=draw(st.sampled_from([64, 128])), tie=draw(st.booleans()))
    mode = draw(st.sampled_from(["none", "truncate", "header_byte", "header_len", "config_group", "tail"]))
    return cfg, group, mode, draw(st.integers(0, 2**31 - 1)), draw(st.integers(1, 2))


@settings(max_examples=40, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(fuzz_cases())
def test_fuzz_loader(case):
    """Random shapes / group sizes / corruptions: either it loads and matches what was written,
    or it raises CheckpointError -- never another exception."""
    cfg, group, mode, seed, n_files = case
    rng = np.random.default_rng(seed)
    with tempfile.TemporaryDirectory() as d:
        folder = Path(d) / "c"
        expected, plain = write_spec_checkpoint(folder, cfg, group, seed=seed, n_files=n_files)
        files = sorted(folder.glob("*.safetensors"))
        victim = files[int(rng.integers(len(files)))]
        data = bytearray(victim.read_bytes())
        hlen = struct.unpack("<Q", bytes(data[:8]))[0]
        if mode == "truncate":
            data = data[: int(rng.integers(0, len(data)))]
        elif mode == "header_byte":
            pos = 8 + int(rng.integers(hlen))
            data[pos] = (data[pos] + int(rng.integers(1, 256))) % 256
        elif mode == "header_len":
            data[:8] = struct.pack("<Q", int(rng.integers(0, 2 * len(data))))
        elif mode == "tail":
            data += bytes(int(rng.integers(1, 64)))
        elif mode == "config_group":
            _edit_config(folder, group_size=int(rng.choice([16, 32, 64, 128, 256, -1])))
        victim.write_bytes(bytes(data))
        try:
            model = load_quantized(folder)
        except CheckpointError:
            return
        assert_matches_spec(model, expected, plain)
