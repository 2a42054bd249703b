"""Gemma 1/2/3 (text): RMSNorm computes norm(x) * (1 + w), so a scale folds as w -> (1 + w) / s - 1.

Gemma 1 feeds the MLP from post_attention_layernorm. Gemma 2/3 normalize the attention output with
post_attention_layernorm (no linear reads it) and feed the MLP from pre_feedforward_layernorm.
Gemma 3 adds q/k norms inside attention, covered by the attention-level loss.
"""
from awq_ext.adapters.base import Adapter, GroupSpec
from awq_ext.algorithm.plan import PREV_LINEAR, PREV_NORM_PLUS_ONE


def _groups(mlp_norm: str) -> tuple[GroupSpec, ...]:
    return (
        GroupSpec("self_attn.qkv", "input_layernorm", PREV_NORM_PLUS_ONE,
                  ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"), "self_attn", tokenwise=False),
        GroupSpec("self_attn.o", "self_attn.v_proj", PREV_LINEAR, ("self_attn.o_proj",), "self_attn.o_proj",
                  tokenwise=True),
        GroupSpec("mlp.gate_up", mlp_norm, PREV_NORM_PLUS_ONE, ("mlp.gate_proj", "mlp.up_proj"), "mlp",
                  tokenwise=True),
        GroupSpec("mlp.down", "mlp.up_proj", PREV_LINEAR, ("mlp.down_proj",), "mlp.down_proj", tokenwise=True),
    )


_EMBED = ("model.embed_tokens", "model.rotary_emb", "model.rotary_emb_local")
_NO_CLIP = ("self_attn.q_proj", "self_attn.k_proj")

GEMMA = Adapter(name="gemma", model_types=("gemma",), blocks="model.layers", embed=_EMBED,
                groups=_groups("post_attention_layernorm"), no_clip=_NO_CLIP)

GEMMA2 = Adapter(name="gemma2", model_types=("gemma2", "gemma3_text"), blocks="model.layers", embed=_EMBED,
                 groups=_groups("pre_feedforward_layernorm"), no_clip=_NO_CLIP)
