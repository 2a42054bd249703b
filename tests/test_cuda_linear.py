"""CUDA int4_linear in the decode regime (M <= 16: the streaming tensor-core GEMV of int4_linear.cu) against the oracle.

M = 17 and 64 cross into the GEMM side of the dispatcher (or its fallback), so the boundary is covered.
Rule: err(kernel, fp64) <= 2 * err(torch at the same dtype, fp64) + eps, errors as relative L2 norms;
torch multiplies the same dequantized weights (F.linear, bias fused like the kernel's).
Shapes include the SmolLM2-135M layers (K = 576, 1536: not multiples of the kernel's 128-wide k-block
nor of its 512..2048-wide pipeline stage), N not a multiple of the 16/32/64-row tiles, and N and K
such that the dispatcher picks each of its kernels and tile widths on a 132-SM GPU. Skips cleanly without a GPU;
packed weights are made by reference.quantize_int4 on the CPU and then moved.
"""
import pytest
import torch
import torch.nn.functional as F

from awq_ext import reference
from conftest import rel_err

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")

DTYPES = [torch.float16, torch.bfloat16]
MS = [1, 2, 3, 4, 7, 8, 16, 17, 64]
# (N, K, group sizes)
SHAPES = [
    (512, 4096, (32, 64, 128)),
    (576, 576, (32, 64)),        # SmolLM2 attention: K = 4.5 k-blocks
    (1536, 576, (64,)),          # SmolLM2 MLP up
    (576, 1536, (32, 64, 128)),  # SmolLM2 MLP down
    (200, 1056, (32,)),          # N not a tile multiple, K = 8 k-blocks + 32
    (300, 4608, (64, 128)),      # few rows, K > 4096: 16-row K-split blocks (M <= 4), register GEMV (M 5..8)
    (9000, 576, (64,)),          # many rows: 64-row blocks at M 9..16
    (17000, 256, (32, 128)),     # many rows, K shorter than one stage
]


def _quantized(n, k, g, dtype, zero_point=True):
    w = torch.randn(n, k, dtype=dtype) * 0.05
    return reference.quantize_int4(w, g, zero_point)  # qweight [N, K/8], scales [N, K/g], zeros [N, K/g]


def _check(x, qweight, scales, zeros, bias, y=None):
    """Runs the op on CUDA (unless y is given) and applies the tolerance rule."""
    from awq_ext import ops

    dev = torch.device("cuda")
    to = lambda t: t.to(dev) if t is not None else None  # noqa: E731
    if y is None:
        y = ops.int4_linear(to(x), to(qweight), to(scales), to(zeros), to(bias))
    torch.cuda.synchronize()
    assert y.shape == (*x.shape[:-1], qweight.shape[0]) and y.dtype == x.dtype and y.device.type == "cuda"
    assert torch.isfinite(y).all()
    w = reference.dequantize_int4(qweight.cpu(), scales.cpu(), zeros.cpu())  # [N, K] in x.dtype
    ref = x.cpu().double() @ w.double().t()                                   # fp64 of the same weights
    if bias is not None:
        ref = ref + bias.cpu().double()
    same = F.linear(to(x), to(w), to(bias))                                   # torch at the same dtype
    tol = 2 * rel_err(same, ref) + torch.finfo(x.dtype).eps / 16
    err = rel_err(y, ref)
    assert err <= tol, f"err {err:.3e} > tol {tol:.3e} (torch {rel_err(same, ref):.3e})"
    return y


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("m", MS)
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_linear_matches_oracle(shape, m, dtype, bias):
    n, k, group_sizes = shape
    for g in group_sizes:
        qweight, scales, zeros = _quantized(n, k, g, dtype)
        x = torch.randn(m, k, dtype=dtype)
        _check(x, qweight, scales, zeros, torch.randn(n, dtype=dtype) if bias else None)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("lead", [(1, 1), (2, 3), (4, 1, 2)])
def test_linear_leading_dims(dtype, lead):
    # x [..., K] -> y [..., N]; (1, 1) is one decoded token of batch 1
    n, k = 576, 1536
    qweight, scales, zeros = _quantized(n, k, 64, dtype)
    _check(torch.randn(*lead, k, dtype=dtype), qweight, scales, zeros, torch.randn(n, dtype=dtype))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("m", [1, 5, 16])
def test_linear_strided_rows_symmetric(dtype, m):
    # x [M, K] viewed out of [M, K + 64] on the GPU (rows K + 64 apart); symmetric quantization
    n, k = 512, 4096
    qweight, scales, zeros = _quantized(n, k, 128, dtype, zero_point=False)
    x = torch.randn(m, k + 64, dtype=dtype, device="cuda")[:, :k]
    _check(x, qweight, scales, zeros, None)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("m", [2, 5, 8, 12])
def test_linear_many_rows(dtype, m):
    # 14336 rows: many row tiles, whose 32-row grid fills its last wave badly, so M 2..8 may take the
    # 64-row tile (M 5..8 on an H200) and M 9..16 the 64-row M = 16 tile; both with the late PDL trigger
    n, k = 14336, 512
    qweight, scales, zeros = _quantized(n, k, 64, dtype)
    _check(torch.randn(m, k, dtype=dtype), qweight, scales, zeros, torch.randn(n, dtype=dtype))


@pytest.mark.parametrize("m", [1, 4, 16])
def test_linear_llm_shape(m):
    # one real layer shape: few row tiles, so the kernel splits K across the warps of a block
    n, k = 4096, 4096
    qweight, scales, zeros = _quantized(n, k, 128, torch.float16)
    _check(torch.randn(m, k, dtype=torch.float16), qweight, scales, zeros, torch.randn(n, dtype=torch.float16))


@pytest.mark.parametrize("dtype", DTYPES)
def test_linear_deterministic(dtype):
    from awq_ext import ops

    n, k = 1536, 576
    qweight, scales, zeros = (t.cuda() for t in _quantized(n, k, 32, dtype))
    x = torch.randn(7, k, dtype=dtype, device="cuda")
    a = ops.int4_linear(x, qweight, scales, zeros, None)
    b = ops.int4_linear(x, qweight, scales, zeros, None)
    assert torch.equal(a, b)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("m, n, k", [(1, 1000, 576), (16, 1000, 576), (64, 1024, 2048)])
def test_linear_cuda_graph(dtype, m, n, k):
    """Captured once, replayed on new inputs: no host sync or allocation inside the op. M = 64 on
    1024 x 2048 runs the GEMM with split-K (8 tiles on an H100 / H200), its reduce kernel a
    programmatic dependent launch of the GEMM inside the graph."""
    from awq_ext import ops

    qweight, scales, zeros = _quantized(n, k, 64, dtype)
    bias = torch.randn(n, dtype=dtype)
    dq, ds, dz, db = (t.cuda() for t in (qweight, scales, zeros, bias))
    static_x = torch.randn(m, k, dtype=dtype, device="cuda")
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):  # warm-up outside the capture (lazy init, allocator)
        ops.int4_linear(static_x, dq, ds, dz, db)
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        static_y = ops.int4_linear(static_x, dq, ds, dz, db)
    for _ in range(3):
        x = torch.randn(m, k, dtype=dtype)
        static_x.copy_(x)
        graph.replay()
        _check(x, qweight, scales, zeros, bias, y=static_y)
        assert torch.equal(static_y, ops.int4_linear(x.cuda(), dq, ds, dz, db))


@pytest.mark.parametrize("dtype", DTYPES)
def test_linear_split_k_reduce_waits_for_gemm(dtype):
    """Split-K's reduce kernel (on Hopper a programmatic dependent launch of the GEMM, resident before
    the GEMM ends) must not read the fp32 partials before the GEMM has written them. Two inputs
    alternate without a sync, so each call's workspace is the block the previous call's partials were
    freed from (the caching allocator's best fit): a reduce that ran early would sum the other input's
    partials. NaN in freed blocks catches a reduce that reads a fresh block early."""
    from awq_ext import ops

    n = k = 4096
    m = 64
    qweight, scales, zeros = (t.cuda() for t in _quantized(n, k, 128, dtype))
    xs = [torch.randn(m, k, dtype=dtype, device="cuda") for _ in range(2)]
    refs = [ops.int4_linear(x, qweight, scales, zeros, None) for x in xs]
    torch.cuda.synchronize()
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA]) as prof:
        ops.int4_linear(xs[0], qweight, scales, zeros, None)
        torch.cuda.synchronize()
    if not any("splitk_reduce" in e.name for e in prof.events()):
        pytest.skip("this GPU's plan for 4096 x 4096 at M = 64 does not split K")
    for _ in range(20):
        poison = torch.full((16 << 20,), float("nan"), device="cuda")
        del poison
        ys = [ops.int4_linear(x, qweight, scales, zeros, None) for x in xs * 4]
        for i, y in enumerate(ys):
            assert torch.equal(y, refs[i % 2]), f"call {i}"


_CHAIN = """
import hashlib, sys, torch
from awq_ext import ops, reference
torch.manual_seed(0)
dtype = torch.float16 if sys.argv[1] == "f16" else torch.bfloat16

def layer(n, k, std):
    return tuple(t.cuda() for t in reference.quantize_int4(torch.randn(n, k, dtype=dtype) * std, 128, True))

def chain(layers, ms):
    for m in ms:
        y = torch.randn(m, layers[0][0].shape[1] * 8, dtype=dtype).cuda()
        for q, s, z in layers:
            y = ops.int4_linear(y, q, s, z, None)
        print(m, hashlib.sha256(y.cpu().view(torch.int16).numpy().tobytes()).hexdigest())

chain([layer(1024, 1024, 0.03) for _ in range(6)], (1, 4, 16))
# 8704 x 1024 (many rows: the M <= 8 kernels with the late trigger) then 1024 x 8704 (few rows), three times
chain([layer(n, k, 0.5 / k ** 0.5) for n, k in ((8704, 1024), (1024, 8704)) * 3], (1, 4, 8))
# 2048 x 2048 at M = 64 and 100: the GEMM with 2 K splits on an H100 / H200, its reduce kernel launched
# as a programmatic dependent of the GEMM
chain([layer(2048, 2048, 0.5 / 2048 ** 0.5) for _ in range(4)], (64, 100))
"""


@pytest.mark.parametrize("dtype", ["f16", "bf16"])
def test_linear_chain_pdl_default_matches_pdl_off(dtype):
    """Layers that read the previous layer's output, launched back to back: with the library's
    programmatic dependent launch (M <= 16; few-row and many-row layers, whose kernels trigger the next
    launch early and late; split-K GEMMs at M = 64 and 100, whose reduce kernel is their dependent) the
    results are bitwise those of a process that turns it off (AWQ_DISABLE_PDL=1), and those of the
    same layers with a device sync between them."""
    import os
    import subprocess
    import sys

    def run(env_extra):
        env = dict(os.environ, **env_extra)
        out = subprocess.run([sys.executable, "-c", _CHAIN, dtype], env=env, capture_output=True, text=True, timeout=300)
        assert out.returncode == 0, out.stderr[-2000:]
        return out.stdout.split()

    on, off = run({"AWQ_DISABLE_PDL": ""}), run({"AWQ_DISABLE_PDL": "1"})
    assert len(on) == 16 and on == off
    # in this process (PDL on unless the caller's environment says otherwise): eager chain against the
    # same chain with a sync after every layer
    from awq_ext import ops

    torch.manual_seed(1)
    dt = torch.float16 if dtype == "f16" else torch.bfloat16
    layers = [tuple(t.cuda() for t in _quantized(1024, 1024, 128, dt)) for _ in range(6)]
    x = torch.randn(4, 1024, dtype=dt, device="cuda")
    y = x
    for q, s, z in layers:
        y = ops.int4_linear(y, q, s, z, None)
    y_sync = x
    for q, s, z in layers:
        y_sync = ops.int4_linear(y_sync, q, s, z, None)
        torch.cuda.synchronize()
    assert torch.equal(y, y_sync)
