"""Int4Linear: construction, quantization from nn.Linear, forward against the oracle."""
import pytest
import torch

from awq_ext import reference
from awq_ext.nn import Int4Linear
from conftest import DEVICES, rel_err


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32])
@pytest.mark.parametrize("group_size", [32, 64, -1])
def test_from_linear_matches_oracle(device, dtype, group_size):
    lin = torch.nn.Linear(192, 40, bias=True).to(dtype)
    q = Int4Linear.from_linear(lin.to(device), group_size=group_size, zero_point=True)
    want = reference.quantize_int4(lin.weight.detach().cpu(), group_size, True)
    assert torch.equal(q.qweight.cpu(), want[0]) and torch.equal(q.scales.cpu(), want[1])
    assert torch.equal(q.zeros.cpu(), want[2])
    x = torch.randn(5, 192, dtype=dtype, device=device)
    y = q(x)
    ref = reference.int4_linear(x.cpu(), *want, lin.bias.detach().cpu())
    assert y.dtype == dtype and rel_err(y, ref) < 1e-2
    # quantization error of the layer itself is small against the float layer
    assert rel_err(y, lin.to(device)(x)) < 0.15


def test_input_dtype_is_cast_to_compute_dtype_and_back():
    lin = torch.nn.Linear(64, 16)
    q = Int4Linear.from_linear(lin, group_size=32, dtype=torch.bfloat16)
    y = q(torch.randn(3, 64))
    assert y.dtype == torch.float32 and q.scales.dtype == torch.bfloat16


def test_constructor_rejects_bad_shapes():
    with pytest.raises(ValueError, match=r"in_features=36 must be a multiple of 8"):
        Int4Linear(36, 8)
    with pytest.raises(ValueError, match=r"group_size=64 must divide in_features=96"):
        Int4Linear(96, 8, group_size=64)


def test_meta_construction_and_state_dict_round_trip():
    lin = torch.nn.Linear(128, 24)
    q = Int4Linear.from_linear(lin, group_size=64)
    with torch.device("meta"):
        empty = Int4Linear(128, 24, bias=True, group_size=64, dtype=torch.float32)
    empty.load_state_dict(q.state_dict(), assign=True)
    x = torch.randn(2, 128)
    assert torch.equal(empty(x), q(x))
