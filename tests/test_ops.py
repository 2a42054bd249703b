"""Every op against the PyTorch oracle (awq_ext.reference) on random inputs and awkward shapes."""
import pytest
import torch

from awq_ext import ops, reference
from conftest import DEVICES, DTYPES, rel_err

SHAPES = [(1, 64), (7, 96), (37, 192), (64, 576), (129, 256)]  # N odd, K not a multiple of 128


def _groups(k, g):
    return 1 if g == -1 else k // g


def _group_sizes(k):
    return [g for g in (32, 64, 128, -1) if g == -1 or k % g == 0]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
def test_pseudo_quantize_matches_oracle(device, dtype, shape):
    n, k = shape
    w = torch.randn(n, k, dtype=dtype) * 0.05
    for g in _group_sizes(k):
        for bits in (2, 3, 4, 8):
            for zp in (True, False):
                scale = torch.rand(k) + 0.5
                clip = torch.rand(n, _groups(k, g)) * 0.5 + 0.5
                for s, c in ((None, None), (scale, None), (scale, clip)):
                    got = ops.pseudo_quantize(w.to(device), bits, g, zp,
                                              None if s is None else s.to(device),
                                              None if c is None else c.to(device))
                    want = reference.pseudo_quantize(w, bits, g, zp, s, c)
                    assert got.dtype == dtype and got.shape == w.shape
                    if s is None:
                        # no channel scale: exactly the oracle's grid points
                        assert torch.equal(got.cpu(), want), (g, bits, zp)
                    else:
                        torch.testing.assert_close(got.cpu(), want, rtol=1e-2, atol=1e-5)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(1, 64), (7, 96), (37, 192), (16, 576)])
def test_quantize_dequantize_int4_exact(device, dtype, shape):
    n, k = shape
    w = torch.randn(n, k, dtype=dtype)
    for g in _group_sizes(k):
        for zp in (True, False):
            clip = torch.rand(n, _groups(k, g)) * 0.5 + 0.5
            for c in (None, clip):
                got = ops.quantize_int4(w.to(device), g, zp, None if c is None else c.to(device))
                want = reference.quantize_int4(w, g, zp, c)
                for a, b, name in zip(got, want, ("qweight", "scales", "zeros")):
                    assert torch.equal(a.cpu(), b), (name, g, zp)
                deq = ops.dequantize_int4(*got)
                assert torch.equal(deq.cpu(), reference.dequantize_int4(*want))
                # dequantized packed weights are exactly the pseudo-quantized weights
                if c is None:
                    assert torch.equal(deq.cpu(), reference.pseudo_quantize(w, 4, g, zp))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("shape", [(8, 64), (24, 96), (576, 576), (40, 1536)])
def test_awq_layout_round_trip(device, shape):
    n, k = shape
    w = torch.randn(n, k, dtype=torch.float16)
    for g in _group_sizes(k):
        qweight, _, zeros = reference.quantize_int4(w, g, True)
        qa, za = ops.pack_awq(qweight.to(device), zeros.to(device))
        ra, rza = reference.pack_awq(qweight, zeros)
        assert torch.equal(qa.cpu(), ra) and torch.equal(za.cpu(), rza)
        back_q, back_z = ops.unpack_awq(qa, za)
        assert torch.equal(back_q.cpu(), qweight) and torch.equal(back_z.cpu(), zeros)


def test_awq_layout_spec_example():
    """One word written by hand from the AutoAWQ spec: nibble i holds channel order[i]."""
    n, k = 8, 8
    codes = torch.arange(n * k).reshape(n, k) % 16  # W[n, k] code
    qweight = reference.pack_kernel(codes)
    zeros = torch.full((n, 1), 3, dtype=torch.uint8)
    qa, za = ops.pack_awq(qweight, zeros)
    order = [0, 2, 4, 6, 1, 3, 5, 7]
    for kk in range(k):
        word = sum(int(codes[order[i], kk]) << (4 * i) for i in range(8))
        assert (int(qa[kk, 0]) & 0xFFFFFFFF) == word
    assert (int(za[0, 0]) & 0xFFFFFFFF) == 0x33333333


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("m", [1, 3, 16, 17, 128])
@pytest.mark.parametrize("nk", [(24, 64), (37, 192), (96, 576), (128, 576)])  # N = 128: wgmma on H100/H200 for M >= 17
def test_int4_linear_accuracy(device, dtype, m, nk):
    n, k = nk
    if device == "cuda" and dtype == torch.float32:
        pytest.skip("fp32 on CUDA runs the dequantize + cuBLAS fallback, covered in test_cuda_linear")
    for g in _group_sizes(k):
        qweight, scales, zeros = reference.quantize_int4(torch.randn(n, k, dtype=dtype) * 0.05, g, True)
        x = torch.randn(m, k, dtype=dtype)
        bias = torch.randn(n, dtype=dtype)
        y = ops.int4_linear(*(t.to(device) for t in (x, qweight, scales, zeros, bias)))
        assert y.shape == (m, n) and y.dtype == dtype
        w = reference.dequantize_int4(qweight, scales, zeros)
        ref = x.double() @ w.double().t() + bias.double()  # fp64, not rounded to dtype
        torch_same = (x.to(device) @ w.to(device).t() + bias.to(device))
        # the dtype's own error, with a floor of a quarter ulp for tiny outputs
        tol = max(2 * rel_err(torch_same, ref), torch.finfo(dtype).eps / 4)
        assert rel_err(y, ref) <= tol, (g, rel_err(y, ref), tol)


@pytest.mark.parametrize("device", DEVICES)
def test_int4_linear_leading_dims_and_no_bias(device):
    qweight, scales, zeros = reference.quantize_int4(torch.randn(40, 128, dtype=torch.float16), 64, False)
    x = torch.randn(2, 3, 5, 128, dtype=torch.float16)
    y = ops.int4_linear(*(t.to(device) for t in (x, qweight, scales, zeros)))
    assert y.shape == (2, 3, 5, 40)
    ref = reference.int4_linear(x, qweight, scales, zeros)
    assert rel_err(y, ref) < 2e-3


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(1, 64), (5, 576), (300, 96)])
def test_act_stats_matches_oracle_and_streams(device, dtype, shape):
    t, k = shape
    abs_sum = torch.zeros(k, device=device)
    abs_max = torch.zeros(k, device=device)
    count = torch.zeros(1, dtype=torch.long, device=device)
    batches = [torch.randn(2, t, k, dtype=dtype) * 3, torch.randn(t, k, dtype=dtype)]
    for b in batches:
        ops.act_stats_(b.to(device), abs_sum, abs_max, count)
    want_sum = sum(reference.act_stats(b)[0].double() for b in batches)
    want_max = torch.stack([reference.act_stats(b)[1] for b in batches]).amax(0)
    assert int(count.item()) == sum(reference.act_stats(b)[2] for b in batches)
    assert torch.equal(abs_max.cpu(), want_max)  # max is exact
    torch.testing.assert_close(abs_sum.cpu().double(), want_sum, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("shape", [(3, 0), (0, 64)])
def test_act_stats_empty_inputs_count_tokens(device, shape):
    # no statistics kernel runs for an empty x, but the token count still moves
    k = shape[1]
    abs_sum = torch.ones(k, device=device)
    abs_max = torch.ones(k, device=device)
    count = torch.full((1,), 4, dtype=torch.long, device=device)
    ops.act_stats_(torch.zeros(shape, dtype=torch.float16, device=device), abs_sum, abs_max, count)
    assert count.item() == 4 + shape[0]
    assert torch.equal(abs_sum.cpu(), torch.ones(k)) and torch.equal(abs_max.cpu(), torch.ones(k))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("k", [96, 4160])
def test_act_stats_nan_and_inf_propagate(device, dtype, k):
    # as torch's amax / sum: a NaN in x makes its channel's sum and max NaN, an inf makes them inf
    x = torch.randn(70, k, dtype=dtype) * 3
    x[3, 5] = float("nan")
    x[60, 7] = float("-inf")
    x[10, k - 1] = float("nan")
    abs_sum = torch.zeros(k, device=device)
    abs_max = torch.zeros(k, device=device)
    count = torch.zeros(1, dtype=torch.long, device=device)
    ops.act_stats_(x.to(device), abs_sum, abs_max, count)
    s, m, _ = reference.act_stats(x)
    assert torch.isnan(m[5]) and torch.isinf(m[7]) and torch.isnan(m[k - 1])  # the oracle, as a check
    torch.testing.assert_close(abs_max.cpu(), m, rtol=0, atol=0, equal_nan=True)
    torch.testing.assert_close(abs_sum.cpu(), s, rtol=1e-5, atol=1e-4, equal_nan=True)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("zp", [True, False])
@pytest.mark.parametrize("shape_t", [((9, 64), 1), ((33, 192), 40), ((16, 576), 128)])
def test_clip_search_matches_oracle(device, dtype, zp, shape_t):
    (n, k), t = shape_t
    w = torch.randn(n, k, dtype=dtype)
    x = torch.randn(t, k, dtype=dtype)
    for g in _group_sizes(k)[:2]:
        ratio, err = ops.clip_search(w.to(device), x.to(device), 4, g, zp)
        want_ratio, want_err = reference.clip_search(w, x, 4, g, zp)
        assert ratio.shape == want_ratio.shape == (n, _groups(k, g))
        # the chosen ratio's error is the oracle's minimum (argmin may differ only on near ties)
        torch.testing.assert_close(err.cpu(), want_err, rtol=1e-4, atol=1e-6)
        agree = (ratio.cpu() == want_ratio).float().mean().item()
        assert agree > 0.95
        cands = torch.tensor(reference.clip_candidates(20, 0.5))
        assert torch.isin(ratio.cpu(), cands).all()


def test_clip_search_candidates_follow_grid():
    w = torch.randn(8, 64)
    x = torch.randn(16, 64)
    ratio, _ = ops.clip_search(w, x, 4, 32, True, n_grid=10, max_shrink=0.3)
    assert torch.isin(ratio, torch.tensor([1.0, 0.9, 0.8])).all()
