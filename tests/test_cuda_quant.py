"""CUDA kernels of AWQ's searches against the PyTorch oracle (awq_ext.reference).

act_stats_, pseudo_quantize, quantize_int4, dequantize_int4, pack_awq / unpack_awq and clip_search
on awkward shapes (K not a multiple of 128, N odd, T = 1, whole-row groups, group sizes without a
specialised kernel). Integer results and pseudo-quantized values are exact; activation sums within
fp32 accumulation error; clip search by the error it achieves, not by demanding the same argmin.
Skips cleanly without a GPU or without the CUDA kernels.
"""
import pytest
import torch

from conftest import DTYPES

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")


@pytest.fixture(scope="module", autouse=True)
def _needs_cuda_kernels():
    from conftest import cuda_has_kernels

    if not cuda_has_kernels():
        pytest.skip("awq_ext was built without CUDA kernels")


def _ops():
    from awq_ext import ops

    return ops


def _ref():
    from awq_ext import reference

    return reference


def _weights(n, k, dtype):
    """Weight-like data: per-row scale, a few outliers, a constant run (row 1, first 24 values)."""
    w = torch.randn(n, k) * (torch.rand(n, 1) * 0.1 + 0.01)
    w = torch.where(torch.rand(n, k) < 0.005, w * 8, w)
    if n > 1:
        w[1, :24] = 0.375
    return w.to(dtype)


def _group_sizes(k):
    return [g for g in (24, 32, 64, 128, 256, -1) if g == -1 or k % g == 0]


def _groups(k, g):
    return 1 if g == -1 else k // g


# ------------------------------------------------------------------------------------------------
# activation statistics
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(1, 64), (3, 17, 576), (300, 4096), (5, 100), (2, 9, 11008)])
def test_act_stats_accumulates(dtype, shape):
    ops, ref = _ops(), _ref()
    k = shape[-1]
    x1 = (torch.randn(shape) * 3).to(dtype)
    x2 = (torch.randn(shape) * 2).to(dtype)
    s0 = torch.rand(k) * 3
    m0 = torch.rand(k) * 2
    abs_sum, abs_max = s0.clone().cuda(), m0.clone().cuda()
    count = torch.zeros(1, dtype=torch.long, device="cuda")
    for x in (x1, x2):  # the statistics accumulate across calibration batches
        ops.act_stats_(x.cuda(), abs_sum, abs_max, count)
    (sa, ma, ta), (sb, mb, tb) = ref.act_stats(x1), ref.act_stats(x2)
    want_sum = s0.double() + sa.double() + sb.double()
    want_max = torch.maximum(m0, torch.maximum(ma, mb))
    torch.testing.assert_close(abs_sum.cpu().double(), want_sum, rtol=1e-5, atol=1e-6)
    assert torch.equal(abs_max.cpu(), want_max)
    assert count.item() == ta + tb


def test_act_stats_strided_view():
    ops, ref = _ops(), _ref()
    base = torch.randn(64, 2 * 520, dtype=torch.float16, device="cuda")
    x = base[:, 8:520]  # rows 1040 elements apart
    abs_sum = torch.zeros(512, device="cuda")
    abs_max = torch.zeros(512, device="cuda")
    count = torch.zeros(1, dtype=torch.long, device="cuda")
    ops.act_stats_(x, abs_sum, abs_max, count)
    s, m, t = ref.act_stats(x.cpu())
    torch.testing.assert_close(abs_sum.cpu(), s, rtol=1e-5, atol=1e-6)
    assert torch.equal(abs_max.cpu(), m) and count.item() == t


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("k", [4096, 4160])
def test_act_stats_unaligned_outputs(dtype, k):
    # abs_sum / abs_max one element into their buffers (not 16-byte aligned: scalar atomics), K a whole
    # number of 256-column strips or not, two calls onto non-zero statistics, guards on both sides
    ops, ref = _ops(), _ref()
    x1 = (torch.randn(300, k) * 3).to(dtype)
    x2 = (torch.randn(37, k) * 2).to(dtype)
    s0 = torch.rand(k) * 3
    m0 = torch.rand(k) * 2
    sums = torch.full((k + 2,), -7.0, device="cuda")
    maxes = torch.full((k + 2,), -7.0, device="cuda")
    sums[1:k + 1] = s0.cuda()
    maxes[1:k + 1] = m0.cuda()
    count = torch.zeros(1, dtype=torch.long, device="cuda")
    for x in (x1, x2):
        ops.act_stats_(x.cuda(), sums[1:k + 1], maxes[1:k + 1], count)
    (sa, ma, ta), (sb, mb, tb) = ref.act_stats(x1), ref.act_stats(x2)
    torch.testing.assert_close(sums[1:k + 1].cpu().double(), s0.double() + sa.double() + sb.double(),
                               rtol=1e-5, atol=1e-5)
    assert torch.equal(maxes[1:k + 1].cpu(), torch.maximum(m0, torch.maximum(ma, mb)))
    assert count.item() == ta + tb
    for buf in (sums, maxes):
        assert buf[0].item() == -7.0 and buf[k + 1].item() == -7.0


# ------------------------------------------------------------------------------------------------
# pseudo-quantization, INT4 quantize / dequantize
# ------------------------------------------------------------------------------------------------
SHAPES = [(1, 64), (7, 96), (37, 192), (64, 576), (129, 256), (3, 1536)]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
def test_pseudo_quantize_exact(dtype, shape):
    ops, ref = _ops(), _ref()
    n, k = shape
    w = _weights(n, k, dtype)
    for g in _group_sizes(k):
        for bits in (2, 3, 4, 8):
            for zp in (True, False):
                scale = torch.rand(k) * 3 + 0.25
                clip = torch.rand(n, _groups(k, g)) * 0.5 + 0.5
                for s, c in ((None, None), (scale, None), (None, clip), (scale, clip)):
                    got = ops.pseudo_quantize(w.cuda(), bits, g, zp,
                                              None if s is None else s.cuda(),
                                              None if c is None else c.cuda())
                    want = ref.pseudo_quantize(w, bits, g, zp, s, c)
                    assert got.dtype == dtype and got.shape == w.shape
                    # the same fp32 operations in the same order: bit-identical, scale included
                    assert torch.equal(got.cpu(), want), (g, bits, zp, s is not None, c is not None)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_pseudo_quantize_large_and_unaligned(dtype):
    """Many blocks of the fast path, and an unaligned view that takes the generic path."""
    ops, ref = _ops(), _ref()
    w = _weights(257, 4096, dtype)
    assert torch.equal(ops.pseudo_quantize(w.cuda(), 4, 128, True).cpu(), ref.pseudo_quantize(w, 4, 128, True))
    flat = _weights(1, 65 * 512 + 1, dtype).cuda()
    view = flat[0, 1:].view(65, 512)  # 2-byte offset: not 16-byte aligned
    assert torch.equal(ops.pseudo_quantize(view, 4, 128, True).cpu(),
                       ref.pseudo_quantize(view.cpu(), 4, 128, True))


@pytest.mark.parametrize("dtype", DTYPES)
def test_pseudo_quantize_nan_weights_match_cpu(dtype):
    """A NaN weight comes out NaN and the rest of its group as the CPU kernel has it (the group's
    min / max skip the NaN), whichever form the warp takes: here rows hold NaN groups next to
    all-positive groups, which need the code clamps while their neighbours could skip them. (The
    oracle makes the whole group NaN; the kernels keep the other elements.)"""
    ops = _ops()
    n, k = 64, 512
    w = _weights(n, k, dtype)
    rows = torch.arange(0, n, 3)
    w[rows, 3] = float("nan")
    w[rows, 200] = float("nan")
    w[1::3, 32:64] = w[1::3, 32:64].abs() + 0.01  # all-positive groups beside the NaN ones (g <= 32)
    w[2::3, 128:256] = w[2::3, 128:256].abs() + 0.01
    scale = torch.rand(k) * 3 + 0.25
    for g in (32, 64, 128):
        for s in (None, scale):
            want = ops.pseudo_quantize(w, 4, g, True, s, None)
            got = ops.pseudo_quantize(w.cuda(), 4, g, True, None if s is None else s.cuda(), None).cpu()
            nan = torch.isnan(w)
            assert torch.equal(torch.isnan(got), nan) and torch.equal(torch.isnan(want), nan), (g, s is not None)
            assert torch.equal(got[~nan], want[~nan]), (g, s is not None)


@pytest.mark.parametrize("dtype", DTYPES)
def test_group_kernels_many_rows_per_thread(dtype):
    """Several rows per thread of the persistent grid (its last batch partly filled), and a constant
    group of large values, whose value / scale is past the fast kernels' rounding range (IEEE path)."""
    ops, ref = _ops(), _ref()
    n, k = 70001, 64  # far more rows than one wave of threads covers at 2-8 threads per row
    w = _weights(n, k, dtype)
    w[2, :32] = 3.0
    scale = torch.rand(k) * 3 + 0.25
    for g in (32, 64):
        for s in (None, scale):
            got = ops.pseudo_quantize(w.cuda(), 4, g, True, None if s is None else s.cuda(), None)
            assert torch.equal(got.cpu(), ref.pseudo_quantize(w, 4, g, True, s, None)), (g, s is not None)
        got = ops.quantize_int4(w.cuda(), g, True, None)
        want = ref.quantize_int4(w, g, True, None)
        for a, b, name in zip(got, want, ("qweight", "scales", "zeros")):
            assert torch.equal(a.cpu(), b), (name, g)
        assert torch.equal(ops.dequantize_int4(*got).cpu(), ref.dequantize_int4(*want)), g


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(1, 64), (7, 96), (37, 192), (16, 576), (3, 11008)])
def test_quantize_dequantize_int4_exact(dtype, shape):
    ops, ref = _ops(), _ref()
    n, k = shape
    w = _weights(n, k, dtype)
    for g in _group_sizes(k):
        for zp in (True, False):
            clip = torch.rand(n, _groups(k, g)) * 0.5 + 0.5
            for c in (None, clip):
                got = ops.quantize_int4(w.cuda(), g, zp, None if c is None else c.cuda())
                want = ref.quantize_int4(w, g, zp, c)
                for a, b, name in zip(got, want, ("qweight", "scales", "zeros")):
                    assert a.is_cuda and torch.equal(a.cpu(), b), (name, g, zp)
                assert torch.equal(ops.dequantize_int4(*got).cpu(), ref.dequantize_int4(*want))


@pytest.mark.parametrize("dtype", DTYPES)
def test_dequantize_random_codes(dtype):
    """Every code and zero point, groups smaller than a packed word (g = 4)."""
    ops, ref = _ops(), _ref()
    n, k = 9, 96
    for g in (4, 32, 96):
        qweight = torch.randint(-2**31, 2**31, (n, k // 8), dtype=torch.int64).to(torch.int32)
        scales = (torch.rand(n, k // g) * 0.05 + 1e-3).to(dtype)
        zeros = torch.randint(0, 16, (n, k // g), dtype=torch.uint8)
        got = ops.dequantize_int4(qweight.cuda(), scales.cuda(), zeros.cuda())
        assert torch.equal(got.cpu(), ref.dequantize_int4(qweight, scales, zeros)), g


@pytest.mark.parametrize("shape", [(8, 64), (24, 96), (576, 576), (40, 1536)])
def test_awq_layout_round_trip(shape):
    ops, ref = _ops(), _ref()
    n, k = shape
    for g in [g for g in (32, 64, 128, -1) if g == -1 or k % g == 0]:
        qweight = torch.randint(-2**31, 2**31, (n, k // 8), dtype=torch.int64).to(torch.int32)
        zeros = torch.randint(0, 16, (n, _groups(k, g)), dtype=torch.uint8)
        qa, za = ops.pack_awq(qweight.cuda(), zeros.cuda())
        ra, rza = ref.pack_awq(qweight, zeros)
        assert torch.equal(qa.cpu(), ra) and torch.equal(za.cpu(), rza), g
        back_q, back_z = ops.unpack_awq(qa, za)
        assert torch.equal(back_q.cpu(), qweight) and torch.equal(back_z.cpu(), zeros), g


# ------------------------------------------------------------------------------------------------
# clip search
# ------------------------------------------------------------------------------------------------
def _candidate_errors(w, x, bits, g, zp, n_grid, max_shrink):
    """fp64 output error of every candidate ratio (core.h's definition), [N, G, C], with the oracle's
    quantization parameters and codes."""
    ref = _ref()
    n, k = w.shape
    g = ref.resolve_group_size(g, k)
    v = w.float().reshape(n, k // g, g)                    # [N, K] -> [N, G, g]
    xs = x.double().reshape(-1, k // g, g)                 # [T, K] -> [T, G, g]
    errs = []
    for r in ref.clip_candidates(n_grid, max_shrink):
        s, z, lo, hi, qmin, qmax = ref.group_qparams(v, bits, zp, w.dtype, torch.full((n, k // g), r))
        delta = ((ref._codes(v, s, z, lo, hi, qmin, qmax) - z) * s - v).double()  # [N, G, g]
        errs.append(torch.einsum("tjc,njc->ntj", xs, delta).pow(2).sum(1))         # [N, G]
    return torch.stack(errs, -1)


CLIP_CASES = [
    # (n, k, tokens, group_size, bits, zero_point)
    (37, 256, 64, 128, 4, True),
    (13, 192, 130, 64, 4, False),  # two token chunks, the second partial
    (5, 576, 1, -1, 4, True),      # whole-row group, one token
    (3, 1536, 17, -1, 3, True),    # whole-row group longer than the kernel's delta chunk
    (9, 96, 33, 24, 4, True),      # group size not a multiple of 16: scalar loads of x
    (1, 64, 5, 32, 8, False),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CLIP_CASES)
def test_clip_search_achieves_oracle_error(dtype, case):
    ops, ref = _ops(), _ref()
    n, k, t, g, bits, zp = case
    n_grid, max_shrink = 20, 0.5
    w = _weights(n, k, dtype)
    x = (torch.randn(t, k) * 2).to(dtype)
    ratio, err = ops.clip_search(w.cuda(), x.cuda(), bits, g, zp, n_grid, max_shrink)
    want_ratio, want_err = ref.clip_search(w, x, bits, g, zp, n_grid, max_shrink)
    assert ratio.shape == want_ratio.shape and err.shape == want_err.shape
    cands = torch.tensor(ref.clip_candidates(n_grid, max_shrink), dtype=torch.float32)
    ratio = ratio.cpu()
    # every returned ratio is one of the candidates
    idx = (ratio.unsqueeze(-1) == cands).float().argmax(-1)
    assert torch.equal(cands[idx], ratio)
    errs = _candidate_errors(w, x, bits, g, zp, n_grid, max_shrink)  # [N, G, C]
    achieved = errs.gather(-1, idx.unsqueeze(-1)).squeeze(-1)
    best = errs.amin(-1)
    # the chosen ratio's true error is the minimum up to fp32 accumulation error
    assert torch.all(achieved <= best * (1 + 1e-4) + 1e-12), (achieved / best.clamp_min(1e-30)).max()
    # the reported error is the chosen ratio's error, and close to the oracle's minimum
    torch.testing.assert_close(err.cpu().double(), achieved, rtol=1e-4, atol=1e-9)
    torch.testing.assert_close(err.cpu(), want_err, rtol=1e-4, atol=1e-9)


def test_clip_search_many_candidates():
    """64 candidates: two rows per block of the kernel."""
    ops, ref = _ops(), _ref()
    w = _weights(5, 256, torch.float16)
    x = torch.randn(40, 256, dtype=torch.float16)
    ratio, err = ops.clip_search(w.cuda(), x.cuda(), 4, 128, True, 80, 0.8)
    _, want_err = ref.clip_search(w, x, 4, 128, True, 80, 0.8)
    torch.testing.assert_close(err.cpu(), want_err, rtol=1e-4, atol=1e-9)
