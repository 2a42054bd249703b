"""CUDA int4_linear in the GEMM regime (M > 16) against the oracle.

Two kernels sit behind it: on compute capability 9.0 (H100/H200) the wgmma kernel of
int4_gemm_sm90.cu for 17 <= M <= 4096 with N % 64 == 0 and K % 64 == 0 (shapes N = 192, 320 below: half a
256- or 128-row tile, K = 1152: 18 k-blocks, group size 96 puts group boundaries inside k-blocks),
otherwise the mma.sync kernel of int4_gemm.cu (N = 136, 264; K = 1056 with a 32-wide k tail).
Rule: err(kernel, fp64) <= 2 * err(torch at the same dtype, fp64), errors as relative L2 norms.
Skips cleanly without a GPU.
"""
import pytest
import torch

from awq_ext import reference
from conftest import rel_err

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")

MS = [17, 64, 65, 255, 256, 1000]
DTYPES = [torch.float16, torch.bfloat16]
# (N, K, group sizes): K = 1056 is 8 k-blocks of 128 plus a 32-wide tail (mma.sync kernel);
# N = 192, 320 with K = 1152 reach the wgmma kernel on H100/H200
SHAPES = [(264, 1152, (32, 64, 128)), (136, 1056, (32,)), (192, 1152, (32, 64, 128)), (320, 1152, (96,))]


def _check(x, qweight, scales, zeros, bias):
    from awq_ext import ops

    dev = torch.device("cuda")
    y = ops.int4_linear(*(t.to(dev) if t is not None else None for t in (x, qweight, scales, zeros, bias)))
    torch.cuda.synchronize()
    assert y.shape == (*x.shape[:-1], qweight.shape[0]) and y.dtype == x.dtype
    assert torch.isfinite(y).all()
    w = reference.dequantize_int4(qweight.cpu(), scales.cpu(), zeros.cpu())  # [N, K] in x.dtype
    ref = x.cpu().double() @ w.double().t()                                   # fp64, not rounded
    same = x.to(dev) @ w.to(dev).t()                                          # torch, same dtype
    if bias is not None:
        ref = ref + bias.cpu().double()
        same = same + bias.to(dev)
    tol = max(2 * rel_err(same, ref), torch.finfo(x.dtype).eps / 4)
    err = rel_err(y, ref)
    assert err <= tol, (err, tol)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("m", MS)
@pytest.mark.parametrize("shape", SHAPES)
def test_gemm_matches_oracle(dtype, m, shape):
    n, k, group_sizes = shape
    for g in group_sizes:
        w = torch.randn(n, k, dtype=dtype) * 0.05
        qweight, scales, zeros = reference.quantize_int4(w, g, True)  # on the CPU, then moved
        x = torch.randn(m, k, dtype=dtype)
        _check(x, qweight, scales, zeros, torch.randn(n, dtype=dtype))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("m", [1100, 2100, 4096, 4097])
def test_gemm_large_m(dtype, m):
    """Past M = 1024: 1100 (four 256-token tiles and a shifted fifth), 2100 (nine tiles: two raster
    groups of 8, the last tile shifted), 4096 (the wgmma kernel's largest M on H100 / H200) and 4097
    (the dequantize + cuBLAS fallback)."""
    torch.manual_seed(m)
    n, k, g = 192, 1152, 128
    w = torch.randn(n, k, dtype=dtype) * 0.05
    qweight, scales, zeros = reference.quantize_int4(w, g, True)
    x = torch.randn(m, k, dtype=dtype)
    bias = torch.randn(n, dtype=dtype) * 0.1
    _check(x, qweight, scales, zeros, bias)


@pytest.mark.parametrize("dtype", DTYPES)
def test_gemm_large_m_stream_k(dtype):
    """M = 1100 on a 2048 x 12288 layer: 80 tiles of 256 x 128 with 192 k-blocks each, which the
    H100 / H200 plan runs as stream-K (partial tiles summed across CTAs) past M = 1024: 15360 units
    against the 96 x 132 = 12672 the automatic stream-K rule asks for, 80 tiles under 0.9 of a wave."""
    torch.manual_seed(11)
    n, k, g = 2048, 12288, 128
    w = torch.randn(n, k, dtype=dtype) * 0.05
    qweight, scales, zeros = reference.quantize_int4(w, g, True)
    x = torch.randn(1100, k, dtype=dtype)
    _check(x, qweight, scales, zeros, None)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", [264, 192])
def test_gemm_symmetric_no_bias_strided_rows(dtype, n):
    k = 1152
    qweight, scales, zeros = reference.quantize_int4(torch.randn(n, k, dtype=dtype) * 0.05, 128, False)
    # x [255, K] viewed out of [255, K + 64] on the GPU: rows K + 64 elements apart reach the kernel
    x = torch.randn(255, k + 64, dtype=dtype, device="cuda")[:, :k]
    _check(x, qweight, scales, zeros, None)


@pytest.mark.parametrize("dtype", DTYPES)
def test_gemm_leading_dims(dtype):
    n, k = 136, 1152
    qweight, scales, zeros = reference.quantize_int4(torch.randn(n, k, dtype=dtype) * 0.05, 64, True)
    _check(torch.randn(3, 43, k, dtype=dtype), qweight, scales, zeros, torch.randn(n, dtype=dtype))


@pytest.mark.parametrize("m", [64, 256])
def test_gemm_llm_shape(m):
    # one real layer shape (N = K = 4096), fewer rows than tiles: exercises split-k
    n, k = 4096, 4096
    qweight, scales, zeros = reference.quantize_int4(torch.randn(n, k, dtype=torch.float16) * 0.05, 128, True)
    _check(torch.randn(m, k, dtype=torch.float16), qweight, scales, zeros, None)
