"""Bad input gets a clear error naming the argument and its value (binding-layer validation)."""
import pytest
import torch

from awq_ext import ops, reference


def _w(n=16, k=64, dtype=torch.float16):
    return torch.randn(n, k, dtype=dtype)


def _s(c=3, k=64):
    """fp32 candidate scalings [C, K]."""
    return torch.rand(c, k) + 0.5


def _packed(n=16, k=64, g=32):
    return reference.quantize_int4(_w(n, k), g, True)


CASES = [
    # (callable, expected message fragment)
    (lambda: ops.pseudo_quantize(_w().int(), 4, 32, True), r"w must be float16, bfloat16 or float32, got Int"),
    (lambda: ops.pseudo_quantize(torch.randn(2, 3, 64), 4, 32, True), r"w must be 2-D \[N, K\], got shape \[2, 3, 64\]"),
    (lambda: ops.pseudo_quantize(_w(), 9, 32, True), r"bits=9 must be in 2..8"),
    (lambda: ops.pseudo_quantize(_w(), 1, 32, True), r"bits=1 must be in 2..8"),
    (lambda: ops.pseudo_quantize(_w(k=96), 4, 64, True), r"group_size=64 must divide in_features=96"),
    (lambda: ops.pseudo_quantize(_w(), 4, 0, True), r"group_size=0 must be positive or -1"),
    (lambda: ops.pseudo_quantize(_w().t(), 4, 16, True), r"w must be contiguous"),
    (lambda: ops.pseudo_quantize(_w(), 4, 32, True, torch.rand(63)), r"scale must have shape \[64\], got \[63\]"),
    (lambda: ops.pseudo_quantize(_w(), 4, 32, True, None, torch.rand(16, 3)), r"clip must have shape \[16, 2\], got \[16, 3\]"),
    (lambda: ops.pseudo_quantize(_w(), 4, 32, True, None, torch.rand(16, 2).half()), r"clip must be Float, got Half"),
    (lambda: ops.pseudo_quantize_error(_w().int(), _s(), 4, 32, True), r"pseudo_quantize_error: w must be float16, bfloat16 or float32, got Int"),
    (lambda: ops.pseudo_quantize_error(torch.randn(2, 3, 64), _s(), 4, 32, True), r"w must be 2-D \[N, K\], got shape \[2, 3, 64\]"),
    (lambda: ops.pseudo_quantize_error(_w(k=128)[:, ::2], _s(), 4, 32, True), r"pseudo_quantize_error: w must be contiguous"),
    (lambda: ops.pseudo_quantize_error(_w(), _s(), 9, 32, True), r"pseudo_quantize_error: bits=9 must be in 2..8"),
    (lambda: ops.pseudo_quantize_error(_w(), _s(), 1, 32, True), r"pseudo_quantize_error: bits=1 must be in 2..8"),
    (lambda: ops.pseudo_quantize_error(_w(k=96), _s(k=96), 4, 64, True), r"group_size=64 must divide in_features=96"),
    (lambda: ops.pseudo_quantize_error(_w(), _s(), 4, 0, True), r"group_size=0 must be positive or -1"),
    (lambda: ops.pseudo_quantize_error(_w(), _s(), 4, -2, True), r"group_size=-2 must be positive or -1"),
    (lambda: ops.pseudo_quantize_error(_w(), _s().half(), 4, 32, True), r"scales must be Float, got Half"),
    (lambda: ops.pseudo_quantize_error(_w(), _s().double(), 4, 32, True), r"scales must be Float, got Double"),
    (lambda: ops.pseudo_quantize_error(_w(), torch.rand(64), 4, 32, True), r"scales must be 2-D \[C, K\], got shape \[64\]"),
    (lambda: ops.pseudo_quantize_error(_w(), _s(k=63), 4, 32, True),
     r"scales has 63 columns \(shape \[3, 63\]\) but w has in_features=64"),
    (lambda: ops.pseudo_quantize_error(_w(), _s(c=0), 4, 32, True),
     r"scales must hold at least one candidate row, got shape \[0, 64\]"),
    (lambda: ops.pseudo_quantize_error(_w(), _s(), 4, 32, True, torch.rand(63)), r"channel_weight must have shape \[64\], got \[63\]"),
    (lambda: ops.pseudo_quantize_error(_w(), _s(), 4, 32, True, torch.rand(1, 64)),
     r"channel_weight must have shape \[64\], got \[1, 64\]"),
    (lambda: ops.pseudo_quantize_error(_w(), _s(), 4, 32, True, torch.rand(64).half()), r"channel_weight must be Float, got Half"),
    (lambda: ops.quantize_int4(_w(k=36), -1, True), r"in_features=36 must be a multiple of 8"),
    (lambda: ops.quantize_int4(_w(k=96), 64, True), r"group_size=64 must divide in_features=96"),
    (lambda: ops.dequantize_int4(_packed()[0], _packed()[1][:, :1].contiguous().repeat(1, 3), _packed()[2]),
     r"scales shape \[16, 3\] does not match qweight shape \[16, 8\]"),
    (lambda: ops.dequantize_int4(_packed()[0], _packed()[1], _packed()[2][:, :1].contiguous()),
     r"zeros must have shape \[16, 2\], got \[16, 1\]"),
    (lambda: ops.dequantize_int4(_packed()[0].float(), _packed()[1], _packed()[2]), r"qweight must be Int, got Float"),
    (lambda: ops.dequantize_int4(_packed()[0], _packed()[1], _packed()[2].int()), r"zeros must be Byte, got Int"),
    (lambda: ops.int4_linear(torch.randn(3, 32, dtype=torch.float16), *_packed()),
     r"x has 32 features \(shape \[3, 32\]\) but the weight has in_features=64"),
    (lambda: ops.int4_linear(torch.randn(3, 64, dtype=torch.bfloat16), *_packed()),
     r"x dtype BFloat16 must match scales dtype Half"),
    (lambda: ops.int4_linear(torch.randn(3, 64, dtype=torch.float16), *_packed(), torch.randn(15, dtype=torch.float16)),
     r"bias must have shape \[16\], got \[15\]"),
    (lambda: ops.int4_linear(torch.randn(3, 64, dtype=torch.float16), *_packed(), torch.randn(16)),
     r"bias dtype Float must match x dtype Half"),
    (lambda: ops.pack_awq(_packed(n=12)[0], _packed(n=12)[2]), r"out_features=12 must be a multiple of 8"),
    (lambda: ops.unpack_awq(torch.zeros(64, 2, dtype=torch.int32), torch.zeros(3, 2, dtype=torch.int32)),
     r"qzeros_awq has 3 group rows, which does not divide in_features=64"),
    (lambda: ops.unpack_awq(torch.zeros(64, 2, dtype=torch.int32), torch.zeros(2, 1, dtype=torch.int32)),
     r"qzeros_awq shape \[2, 1\] does not match qweight_awq shape \[64, 2\]"),
    (lambda: ops.clip_search(_w(), torch.randn(5, 32, dtype=torch.float16), 4, 32, True),
     r"x has 32 features \(shape \[5, 32\]\) but w has in_features=64"),
    (lambda: ops.clip_search(_w(), torch.randn(0, 64, dtype=torch.float16), 4, 32, True),
     r"x must hold at least one token"),
    (lambda: ops.clip_search(_w(), torch.randn(5, 64), 4, 32, True), r"x dtype Float must match w dtype Half"),
    (lambda: ops.clip_search(_w(), torch.randn(5, 64, dtype=torch.float16), 4, 32, True, 20, 1.5),
     r"max_shrink=1.5 must be in \(0, 1\)"),
    (lambda: ops.act_stats_(torch.randn(4, 8), torch.zeros(7), torch.zeros(8), torch.zeros(1, dtype=torch.long)),
     r"abs_sum must have shape \[8\], got \[7\]"),
    (lambda: ops.act_stats_(torch.randn(4, 8), torch.zeros(8), torch.zeros(8).half(), torch.zeros(1, dtype=torch.long)),
     r"abs_max must be Float, got Half"),
    (lambda: ops.act_stats_(torch.randn(4, 8).int(), torch.zeros(8), torch.zeros(8), torch.zeros(1, dtype=torch.long)),
     r"x must be float16, bfloat16 or float32, got Int"),
]


@pytest.mark.parametrize("fn,msg", CASES, ids=[str(i) for i in range(len(CASES))])
def test_bad_input_message(fn, msg):
    with pytest.raises(ValueError, match=msg):
        fn()


def test_cuda_tensor_without_cuda_kernels_is_a_clear_error():
    import awq_ext

    if awq_ext.build_info()["cuda"] or not torch.cuda.is_available():
        pytest.skip("needs a CPU-only build on a machine with a GPU")
    with pytest.raises(NotImplementedError, match="CUDA"):
        ops.pseudo_quantize(_w().cuda(), 4, 32, True)


def test_mismatched_devices_named():
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device to mix devices")
    w = _w().cuda()
    with pytest.raises(ValueError, match=r"scale is on cpu but w is on cuda"):
        ops.pseudo_quantize(w, 4, 32, True, torch.rand(64))


@pytest.mark.parametrize("arg", ["scales", "channel_weight"])
def test_pseudo_quantize_error_mismatched_devices_named(arg):
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device to mix devices")
    w = _w().cuda()
    scales = _s() if arg == "scales" else _s().cuda()
    cw = torch.rand(64) if arg == "channel_weight" else None
    with pytest.raises(ValueError, match=rf"pseudo_quantize_error: {arg} is on cpu but w is on cuda"):
        ops.pseudo_quantize_error(w, scales, 4, 32, True, cw)
