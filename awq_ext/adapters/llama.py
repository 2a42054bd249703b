"""Llama family (Llama 2/3, SmolLM2, Mistral) and Qwen2/2.5/3: pre-norm RMSNorm blocks.

Qwen2 adds biases to q/k/v (a bias is unaffected by input scaling, and v_proj's bias is divided with
its rows for v -> o); Qwen3 adds per-head q/k norms inside attention, which the attention-level
loss simply includes.
"""
from awq_ext.adapters.base import Adapter, GroupSpec
from awq_ext.algorithm.plan import PREV_LINEAR, PREV_NORM

LLAMA_GROUPS = (
    GroupSpec("self_attn.qkv", "input_layernorm", PREV_NORM,
              ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"), "self_attn", tokenwise=False),
    GroupSpec("self_attn.o", "self_attn.v_proj", PREV_LINEAR, ("self_attn.o_proj",), "self_attn.o_proj",
              tokenwise=True),
    GroupSpec("mlp.gate_up", "post_attention_layernorm", PREV_NORM, ("mlp.gate_proj", "mlp.up_proj"), "mlp",
              tokenwise=True),
    # down(act(gate) * up): up's output scales linearly into down's input
    GroupSpec("mlp.down", "mlp.up_proj", PREV_LINEAR, ("mlp.down_proj",), "mlp.down_proj", tokenwise=True),
)

LLAMA = Adapter(
    name="llama",
    model_types=("llama", "mistral", "qwen2", "qwen3"),
    blocks="model.layers",
    embed=("model.embed_tokens", "model.rotary_emb"),
    groups=LLAMA_GROUPS,
    no_clip=("self_attn.q_proj", "self_attn.k_proj"),
)
