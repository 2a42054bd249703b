"""End to end AWQ on tiny random models of every supported family (CPU, seconds)."""
from __future__ import annotations

import copy
import warnings

import pytest
import torch
from torch import nn

transformers = pytest.importorskip("transformers")

from awq_ext.adapters import get_adapter, supported_model_types  # noqa: E402
from awq_ext.algorithm import apply_scale, capture_block_inputs  # noqa: E402
from awq_ext.api import quantize, quantize_with_report, round_to_nearest  # noqa: E402
from awq_ext.config import AWQConfig  # noqa: E402
from awq_ext.nn import Int4Linear  # noqa: E402

VOCAB, HIDDEN, INTER, LAYERS, SEQ = 96, 64, 128, 2, 32
# the paper's scale form (mean|x|^alpha) for the per-family checks; duo scaling (the default) below
CONFIG = AWQConfig(group_size=32, n_samples=8, seqlen=SEQ, search_tokens=128, clip_tokens=64, duo_scaling=False)


def _common(**kw):
    base = dict(vocab_size=VOCAB, hidden_size=HIDDEN, intermediate_size=INTER, num_hidden_layers=LAYERS,
                num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=128)
    base.update(kw)
    return base


FAMILIES = {
    "llama": lambda: transformers.LlamaConfig(**_common()),
    "llama-gqa": lambda: transformers.LlamaConfig(**_common(num_key_value_heads=2)),
    "mistral": lambda: transformers.MistralConfig(**_common(num_key_value_heads=2)),
    "qwen2": lambda: transformers.Qwen2Config(**_common()),
    "qwen3": lambda: transformers.Qwen3Config(**_common(head_dim=16)),
    "gemma": lambda: transformers.GemmaConfig(**_common(head_dim=16)),
    "gemma2": lambda: transformers.Gemma2Config(**_common(head_dim=16)),
    "gemma3": lambda: transformers.Gemma3TextConfig(**_common(head_dim=16, sliding_window=16,
                                                              layer_types=["sliding_attention", "full_attention"])),
    "opt": lambda: transformers.OPTConfig(vocab_size=VOCAB, hidden_size=HIDDEN, ffn_dim=INTER,
                                          num_hidden_layers=LAYERS, num_attention_heads=4,
                                          max_position_embeddings=128, word_embed_proj_dim=HIDDEN),
}


def _norm_weights(block: nn.Module):
    return [m for n, m in block.named_modules() if "norm" in n.lower() and hasattr(m, "weight")]


def make_model(family: str, outliers: bool = True, seed: int = 0) -> nn.Module:
    """A random model; with outliers, a few hidden channels get large activations (as real LLMs do)."""
    torch.manual_seed(seed)
    cfg = FAMILIES[family]()
    cfg._attn_implementation = "eager" if family.startswith("gemma") else "sdpa"
    model = transformers.AutoModelForCausalLM.from_config(cfg).eval()
    with torch.no_grad():
        for p in model.parameters():  # random init of norms is all ones / zeros: perturb everything
            p.add_(torch.randn_like(p) * 0.02)
        if outliers:
            ch = torch.tensor([3, 17, 40])
            for block in get_adapter(model).get_blocks(model):
                for norm in _norm_weights(block):
                    if norm.weight.shape[0] == HIDDEN:
                        norm.weight[ch] += 8.0
    return model


def calib_tokens(n: int = 8, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, VOCAB, (n, SEQ), generator=g)


def rel_err(a, b) -> float:
    return ((a.double() - b.double()).norm() / b.double().norm()).item()


def linears_of(model):
    return {n: m for n, m in get_adapter(model).get_blocks(model).named_modules() if isinstance(m, nn.Linear)}


# ---- end to end ------------------------------------------------------------------------------------
@pytest.mark.parametrize("family", list(FAMILIES))
def test_end_to_end(family):
    _end_to_end(family, CONFIG)


@pytest.mark.parametrize("family", ["llama", "qwen2", "opt"])
def test_end_to_end_duo_scaling(family):
    _end_to_end(family, CONFIG.replace(duo_scaling=True))


def _end_to_end(family, config):
    model = make_model(family)
    targets = set(linears_of(model))
    ids = calib_tokens(4, seed=7)
    with torch.no_grad():
        ref = model(ids).logits
    rtn = round_to_nearest(copy.deepcopy(model), config)
    model, reports = quantize_with_report(model, config, calib_tokens(), measure_rtn=True, progress=False)

    blocks = get_adapter(model).get_blocks(model)
    swapped = {n for n, m in blocks.named_modules() if isinstance(m, Int4Linear)}
    assert swapped == targets
    assert not any(type(m) is nn.Linear for m in blocks.modules())
    assert type(model.get_output_embeddings()) is nn.Linear  # lm_head stays float
    assert isinstance(model.get_input_embeddings(), nn.Embedding)

    with torch.no_grad():
        out, out_rtn = model(ids).logits, rtn(ids).logits
    assert torch.isfinite(out).all()
    err, err_rtn = rel_err(out, ref), rel_err(out_rtn, ref)
    # 4-bit random weights move tiny logits by 3-27 % (RTN); AWQ must stay close and do better
    assert err < 0.3, f"AWQ logits rel err {err:.3f}"
    assert err < err_rtn, f"AWQ {err:.4f} vs RTN {err_rtn:.4f}"

    assert len(reports) == LAYERS
    for r in reports:
        for g in r.groups:
            assert g.loss_awq <= g.loss_rtn
        assert r.block_loss < r.block_loss_rtn, f"{r.prefix}: AWQ {r.block_loss:.3e} vs RTN {r.block_loss_rtn:.3e}"


def test_scaling_beats_rtn_on_outliers():
    """With outlier channels, the searched scales cut the attention / MLP loss well below RTN."""
    model = make_model("llama")
    _, reports = quantize_with_report(model, CONFIG, calib_tokens(), measure_rtn=True, progress=False)
    total_awq = sum(r.block_loss for r in reports)
    total_rtn = sum(r.block_loss_rtn for r in reports)
    assert total_awq < 0.8 * total_rtn
    qkv = [g for r in reports for g in r.groups if g.name == "self_attn.qkv"]
    assert all(g.alpha is not None and g.loss_awq < 0.8 * g.loss_rtn for g in qkv)


def test_deterministic():
    a = quantize(make_model("llama"), CONFIG, calib_tokens())
    b = quantize(make_model("llama"), CONFIG, calib_tokens())
    for (na, ma), (_, mb) in zip(a.named_modules(), b.named_modules()):
        if isinstance(ma, Int4Linear):
            assert torch.equal(ma.qweight, mb.qweight), na
            assert torch.equal(ma.scales, mb.scales), na


def test_v_o_scaling_only_when_shapes_match():
    mha = get_adapter(make_model("llama"))
    model = make_model("llama")
    plan = mha.plan(get_adapter(model).get_blocks(model)[0], 0, CONFIG)
    assert "self_attn.o" in [g.name for g in plan.groups]
    model = make_model("llama-gqa")
    plan = get_adapter(model).plan(get_adapter(model).get_blocks(model)[0], 0, CONFIG)
    assert "self_attn.o" not in [g.name for g in plan.groups]
    assert "self_attn.o_proj" in plan.linears  # still quantized


# ---- adapters: folding a scale leaves the float function unchanged -----------------------------------
@pytest.mark.parametrize("family", list(FAMILIES))
@torch.no_grad()
def test_apply_scale_is_exact(family):
    model = make_model(family).double()
    ids = calib_tokens(2, seed=3)
    ref = model(ids).logits
    adapter = get_adapter(model)
    for i, block in enumerate(adapter.get_blocks(model)):
        for g in adapter.plan(block, i, CONFIG).groups:
            k = next(iter(g.linears.values())).in_features
            apply_scale(g, torch.rand(k, dtype=torch.float64) * 4 + 0.25)
    # float64 model, but the norms compute in float32: allow that rounding, nothing more
    assert rel_err(model(ids).logits, ref) < 1e-5


@pytest.mark.parametrize("family", ["llama", "gemma3", "opt"])
@torch.no_grad()
def test_captured_inputs_reproduce_hidden_states(family):
    """Per-block kwargs (Gemma 3 alternates sliding / global layers) give the model's own hidden states."""
    model = make_model(family)
    adapter = get_adapter(model)
    ids = calib_tokens(2, seed=5)
    want = model(ids, output_hidden_states=True).hidden_states
    blocks = adapter.get_blocks(model)
    got = capture_block_inputs(lambda b: model(input_ids=b, use_cache=False), blocks, [ids])
    h = got.hidden[0]
    torch.testing.assert_close(h, want[0])
    for i, block in enumerate(blocks[:-1]):
        out = block(h, **got.kwargs[i][0])
        h = out[0] if isinstance(out, tuple) else out
        torch.testing.assert_close(h, want[i + 1], rtol=1e-5, atol=1e-5)


# ---- calibration data forms ----------------------------------------------------------------------------
class CharTokenizer:
    """Stands in for a tokenizer: one token per character."""

    def __call__(self, text, add_special_tokens=False):
        enc = lambda s: [ord(c) % VOCAB for c in s]  # noqa: E731
        return {"input_ids": [enc(t) for t in text] if isinstance(text, list) else enc(text)}


def test_calibration_forms():
    text = ["The quick brown fox jumps over the lazy dog. " * 4] * 4
    q = quantize(make_model("llama"), CONFIG, text, tokenizer=CharTokenizer())
    assert isinstance(get_adapter(q).get_blocks(q)[0].mlp.down_proj, Int4Linear)
    batches = [{"input_ids": calib_tokens(2, seed=s), "attention_mask": torch.ones(2, SEQ, dtype=torch.long)}
               for s in range(3)]
    quantize(make_model("llama"), CONFIG, batches)
    quantize(make_model("llama"), CONFIG, iter([calib_tokens(2, seed=s) for s in range(3)]))
    quantize(make_model("llama"), CONFIG, calib_tokens().reshape(-1))  # a 1-D stream


# ---- errors ---------------------------------------------------------------------------------------------
def test_unknown_architecture():
    cfg = transformers.GPT2Config(vocab_size=VOCAB, n_embd=HIDDEN, n_layer=1, n_head=4)
    model = transformers.GPT2LMHeadModel(cfg)
    with pytest.raises(ValueError, match="unsupported architecture") as e:
        quantize(model, CONFIG, calib_tokens())
    for t in ("llama", "qwen2", "qwen3", "gemma", "gemma2", "opt", "mistral"):
        assert t in str(e.value) and t in supported_model_types()


@pytest.mark.parametrize("calib", [torch.empty(0, SEQ, dtype=torch.long), [], [torch.empty(0, SEQ, dtype=torch.long)],
                                   torch.empty(0, dtype=torch.long)])
def test_empty_calibration(calib):
    with pytest.raises(ValueError, match="empty|too short|n_samples, seqlen"):
        quantize(make_model("llama"), CONFIG, calib)


def test_too_short_text():
    with pytest.raises(ValueError, match="too short"):
        quantize(make_model("llama"), CONFIG, ["tiny"], tokenizer=CharTokenizer())


def test_text_needs_tokenizer():
    with pytest.raises(ValueError, match="tokenizer"):
        quantize(make_model("llama"), CONFIG, ["some text"])
    with pytest.raises(ValueError, match="tokenizer"):
        quantize(make_model("llama"), CONFIG, None)


def test_nan_activations_name_the_layer():
    model = make_model("llama")
    with torch.no_grad():
        get_adapter(model).get_blocks(model)[1].post_attention_layernorm.weight[5] = float("nan")
    with pytest.raises(ValueError, match=r"model\.layers\.1\.mlp\.(gate|up)_proj"):
        quantize(model, CONFIG, calib_tokens())


def test_meta_model():
    with torch.device("meta"):
        model = transformers.LlamaForCausalLM(FAMILIES["llama"]())
    with pytest.raises(ValueError, match="meta"):
        quantize(model, CONFIG, calib_tokens())


def test_bits_unsupported():
    with pytest.raises(ValueError, match="bits=3"):
        quantize(make_model("llama"), CONFIG.replace(bits=3), calib_tokens())


def _indivisible_model():
    torch.manual_seed(0)
    cfg = transformers.LlamaConfig(**_common(intermediate_size=80))  # down_proj in_features 80, group 32
    return transformers.LlamaForCausalLM(cfg).eval()


def test_indivisible_error():
    with pytest.raises(ValueError, match=r"model\.layers\.0\.mlp\.down_proj: in_features=80"):
        quantize(_indivisible_model(), CONFIG, calib_tokens())


def test_indivisible_keep():
    model = _indivisible_model()
    ids = calib_tokens(2, seed=9)
    with torch.no_grad():
        ref = model(ids).logits
    with pytest.warns(UserWarning, match="kept in float"):
        quantize(model, CONFIG.replace(indivisible="keep"), calib_tokens())
    block = get_adapter(model).get_blocks(model)[0]
    assert type(block.mlp.down_proj) is nn.Linear
    assert isinstance(block.mlp.up_proj, Int4Linear)
    with torch.no_grad():
        assert rel_err(model(ids).logits, ref) < 0.3


def test_modules_to_not_convert():
    model = make_model("llama")
    ids = calib_tokens(2, seed=9)
    with torch.no_grad():
        ref = model(ids).logits
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        quantize(model, CONFIG.replace(modules_to_not_convert=("k_proj", "layers.1.mlp")), calib_tokens())
    blocks = get_adapter(model).get_blocks(model)
    assert type(blocks[0].self_attn.k_proj) is nn.Linear
    assert isinstance(blocks[0].self_attn.q_proj, Int4Linear)
    assert all(type(m) is nn.Linear for m in blocks[1].mlp.modules() if isinstance(m, (nn.Linear, Int4Linear)))
    with torch.no_grad():
        assert rel_err(model(ids).logits, ref) < 0.3


# ---- command line ---------------------------------------------------------------------------------------
def test_cli_bench(capsys):
    from awq_ext.cli import main

    assert main(["-q", "bench", "--device", "cpu", "--shapes", "64x128", "--m", "1", "17", "--iters", "2",
                 "--group-size", "32"]) == 0
    out = capsys.readouterr().out
    assert "| 64 x 128 | 17 |" in out


def test_cli_reports_bad_input(capsys):
    from awq_ext.cli import main

    assert main(["-q", "quantize", "--model", "/nonexistent/model", "--bits", "3"]) == 2
    assert "bits=3" in capsys.readouterr().err


def test_decode_speed_helper():
    from awq_ext.cli import decode_tokens_per_second

    model = quantize(make_model("llama"), CONFIG, calib_tokens())
    assert decode_tokens_per_second(model, torch.device("cpu"), new_tokens=4, prompt_len=4) > 0
