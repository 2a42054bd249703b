"""pseudo_quantize_error (the batched, error-only form of pseudo_quantize) against the PyTorch oracle
(awq_ext.reference.pseudo_quantize_error) and against the pseudo_quantize op's own output.

The per-element pseudo-quantized values are identical to pseudo_quantize's, so the sums differ from
the fp64 oracle only by fp32 accumulation order (CUDA) or the fp32 difference (CPU): relative 1e-5.
CUDA cases skip cleanly without a GPU or without the CUDA kernels.
"""
import pytest
import torch

from awq_ext import ops, reference
from conftest import DEVICES, DTYPES, cuda_has_kernels

SHAPES = [(7, 96), (33, 576), (5, 1536), (1, 576)]  # N odd, K not a multiple of 128 (but 1536)
RTOL = 1e-5


def _skip_without_kernels(device):
    if device == "cuda" and not cuda_has_kernels():
        pytest.skip("awq_ext was built without CUDA kernels")


def _group_sizes(k):
    return [g for g in (32, 64, 128, -1) if g == -1 or k % g == 0]


def _weights(n, k, dtype):
    """Weight-like data: per-row scale and a few outliers."""
    w = torch.randn(n, k) * (torch.rand(n, 1) * 0.1 + 0.01)
    w = torch.where(torch.rand(n, k) < 0.005, w * 8, w)
    return w.to(dtype)


def _scales(c, k):
    """C candidate per-input-channel scalings, fp32 [C, K], away from zero."""
    return torch.rand(c, k) * 3 + 0.25


def _close(got, want, rtol=RTOL):
    torch.testing.assert_close(got.cpu().double(), want.cpu().double(), rtol=rtol, atol=1e-30)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("zp", [True, False])
def test_matches_oracle(device, dtype, shape, zp):
    _skip_without_kernels(device)
    n, k = shape
    w = _weights(n, k, dtype)
    cw = torch.rand(k) * 4
    for g in _group_sizes(k):
        for bits in (3, 4, 8):
            for c, weight in ((1, None), (1, cw), (20, cw), (20, None)):
                scales = _scales(c, k)
                got = ops.pseudo_quantize_error(w.to(device), scales.to(device), bits, g, zp,
                                                None if weight is None else weight.to(device))
                assert got.shape == (c,) and got.dtype == torch.float32 and got.device.type == device
                want = reference.pseudo_quantize_error(w, scales, bits, g, zp, weight)
                _close(got, want)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape_g", [((9, 96), 32), ((9, 96), 48), ((4, 576), 96), ((3, 1536), 512),
                                     ((3, 1536), -1), ((17, 576), 64)])
def test_consistent_with_pseudo_quantize_op(device, dtype, shape_g):
    """err[c] is the error of the pseudo_quantize op's own output for scales[c] (group sizes with and
    without a register-held kernel path, whole rows)."""
    _skip_without_kernels(device)
    (n, k), g = shape_g
    w = _weights(n, k, dtype).to(device)
    scales = _scales(30, k).to(device)  # 30 > 24: two candidate launches on the GPU
    cw = (torch.rand(k) * 2).to(device)
    for zp in (True, False):
        for weight in (None, cw):
            got = ops.pseudo_quantize_error(w, scales, 4, g, zp, weight)
            want = []
            for c in range(scales.shape[0]):
                d2 = (ops.pseudo_quantize(w, 4, g, zp, scales[c]).double() - w.double()).pow(2)  # [N, K]
                want.append((d2 if weight is None else d2 * weight.double()).sum())
            _close(got, torch.stack(want))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("g", [32, 96, -1])
def test_each_element_exact(device, dtype, g):
    """A one-hot channel_weight picks one element of a one-row weight: err[c] is then exactly
    (PQ_c - w)^2 in fp32, with PQ_c the pseudo_quantize op's value: bit-identical elements."""
    _skip_without_kernels(device)
    k = 96
    w = _weights(1, k, dtype).to(device)
    scales = _scales(5, k).to(device)
    for zp in (True, False):
        pq = torch.stack([ops.pseudo_quantize(w, 3, g, zp, scales[c]) for c in range(5)])  # [C, 1, K]
        want = (pq.float() - w.float()).pow(2)[:, 0, :]  # [C, K], fp32
        if device == "cpu":
            # the op's values are the oracle's
            ref = torch.stack([reference.pseudo_quantize(w.cpu(), 3, g, zp, scales[c].cpu()) for c in range(5)])
            assert torch.equal(pq.cpu(), ref)
        for kk in range(k):
            onehot = torch.zeros(k, device=device)
            onehot[kk] = 1.0
            got = ops.pseudo_quantize_error(w, scales, 3, g, zp, onehot)
            assert torch.equal(got, want[:, kk]), (zp, kk)


@pytest.mark.parametrize("device", DEVICES)
def test_deterministic_and_noncontiguous_scales(device):
    _skip_without_kernels(device)
    w = _weights(37, 576, torch.float16).to(device)
    scales_t = _scales(576, 20).to(device).t()  # a transposed view [20, 576]
    a = ops.pseudo_quantize_error(w, scales_t, 4, 64, True)
    b = ops.pseudo_quantize_error(w, scales_t.contiguous(), 4, 64, True)
    assert torch.equal(a, b)  # same order of summation on every call
    _close(a, reference.pseudo_quantize_error(w.cpu(), scales_t.cpu(), 4, 64, True))


@pytest.mark.parametrize("device", DEVICES)
def test_empty_weight_gives_zeros(device):
    _skip_without_kernels(device)
    w = torch.empty(0, 64, dtype=torch.float16, device=device)
    err = ops.pseudo_quantize_error(w, torch.rand(3, 64, device=device) + 0.5, 4, 32, True)
    assert err.shape == (3,) and torch.equal(err.cpu(), torch.zeros(3))


def test_larger_error_for_fewer_bits():
    """A sanity property of the definition: same scales, fewer bits, larger error."""
    w = _weights(16, 256, torch.float32)
    scales = _scales(4, 256)
    e3 = ops.pseudo_quantize_error(w, scales, 3, 64, True)
    e8 = ops.pseudo_quantize_error(w, scales, 8, 64, True)
    assert (e3 > e8).all()


def test_torch_compile_cpu():
    torch._dynamo.reset()
    w = _weights(24, 128, torch.float16)
    scales = _scales(6, 128)
    cw = torch.rand(128)

    def best(w, scales, cw):
        return ops.pseudo_quantize_error(w, scales, 4, 64, True, cw).argmin()

    compiled = torch.compile(best, fullgraph=True)
    assert torch.equal(compiled(w, scales, cw), best(w, scales, cw))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_graph_capture():
    _skip_without_kernels("cuda")
    w = _weights(129, 4096, torch.bfloat16).cuda()
    scales = _scales(20, 4096).cuda()
    cw = torch.rand(4096, device="cuda")
    eager = ops.pseudo_quantize_error(w, scales, 4, 128, True, cw)
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):  # warm-up outside capture
        ops.pseudo_quantize_error(w, scales, 4, 128, True, cw)
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        out = ops.pseudo_quantize_error(w, scales, 4, 128, True, cw)
    graph.replay()
    torch.cuda.synchronize()
    assert torch.equal(out, eager)
