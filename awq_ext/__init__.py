"""awq_ext: activation-aware weight quantization (AWQ) with hand-written INT4 kernels."""
from awq_ext.api import quantize, quantize_with_report, round_to_nearest
from awq_ext.config import AWQConfig
from awq_ext.io import load_quantized, save_quantized
from awq_ext.nn import Int4Linear

__version__ = "0.1.0"


def build_info() -> dict:
    """Facts about the compiled extension: CUDA kernels present, CUDA version and archs, OpenMP."""
    from awq_ext import _C

    return dict(_C.build_info())


__all__ = ["AWQConfig", "Int4Linear", "build_info", "load_quantized", "quantize", "quantize_with_report",
           "round_to_nearest", "save_quantized", "__version__"]
