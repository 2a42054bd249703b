"""The AWQ algorithm on plain modules: no transformers imports, no layer names (see adapters/)."""
from awq_ext.algorithm.block import BlockReport, GroupReport, quantize_block
from awq_ext.algorithm.calibration import BlockInputs, capture_block_inputs
from awq_ext.algorithm.pipeline import format_block_report, quantize_blocks
from awq_ext.algorithm.plan import PREV_LINEAR, PREV_NORM, PREV_NORM_PLUS_ONE, BlockPlan, ScaleGroup
from awq_ext.algorithm.scale import ScaleResult, apply_scale, candidate_scale, search_scale

__all__ = [
    "BlockInputs", "BlockPlan", "BlockReport", "GroupReport", "PREV_LINEAR", "PREV_NORM", "PREV_NORM_PLUS_ONE",
    "ScaleGroup", "ScaleResult", "apply_scale", "candidate_scale", "capture_block_inputs",
    "format_block_report", "quantize_block", "quantize_blocks", "search_scale",
]
