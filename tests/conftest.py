import zlib

import pytest
import torch

DTYPES = [torch.float16, torch.bfloat16, torch.float32]


def _devices():
    devs = ["cpu"]
    # nothing touches CUDA at import unless a GPU is really there
    devs.append(pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(),
                                                              reason="no CUDA device")))
    return devs


DEVICES = _devices()


@pytest.fixture(autouse=True)
def _seed(request):
    # fresh but reproducible inputs per test
    torch.manual_seed(zlib.crc32(request.node.nodeid.encode()))


def rel_err(a: torch.Tensor, ref: torch.Tensor) -> float:
    a, ref = a.double().cpu(), ref.double().cpu()
    return ((a - ref).norm() / ref.norm().clamp_min(1e-30)).item()


def cuda_has_kernels() -> bool:
    import awq_ext

    return bool(awq_ext.build_info()["cuda"])
