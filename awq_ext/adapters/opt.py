"""OPT: pre-LayerNorm blocks (LayerNorm with bias), fc1 -> ReLU -> fc2, out_proj.

relu(x / s) = relu(x) / s for s > 0, so fc1's rows can take fc2's scale. Post-LN variants
(do_layer_norm_before=False, OPT-350m) normalize after the linears and cannot absorb a scale.
"""
from awq_ext.adapters.base import Adapter, GroupSpec
from awq_ext.algorithm.plan import PREV_LINEAR, PREV_NORM


def _check(config) -> None:
    if not getattr(config, "do_layer_norm_before", True):
        raise ValueError("OPT with do_layer_norm_before=False (post-LayerNorm, e.g. OPT-350m) is not supported: "
                         "its LayerNorms follow the linears and cannot absorb AWQ's scales")
    if getattr(config, "activation_function", "relu") != "relu":
        raise ValueError(f"OPT with activation_function={config.activation_function!r} is not supported: "
                         "fc1 -> fc2 scaling needs ReLU")


OPT = Adapter(
    name="opt",
    model_types=("opt",),
    blocks="model.decoder.layers",
    embed=("model.decoder.embed_tokens", "model.decoder.embed_positions", "model.decoder.project_in"),
    groups=(
        GroupSpec("self_attn.qkv", "self_attn_layer_norm", PREV_NORM,
                  ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"), "self_attn", tokenwise=False),
        GroupSpec("self_attn.out", "self_attn.v_proj", PREV_LINEAR, ("self_attn.out_proj",), "self_attn.out_proj",
                  tokenwise=True),
        GroupSpec("fc1", "final_layer_norm", PREV_NORM, ("fc1",), "fc1", tokenwise=True),
        GroupSpec("fc2", "fc1", PREV_LINEAR, ("fc2",), "fc2", tokenwise=True),
    ),
    no_clip=("self_attn.q_proj", "self_attn.k_proj"),
    check=_check,
)
