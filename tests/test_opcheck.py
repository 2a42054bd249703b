"""torch.library.opcheck for every op (schema, fake implementation, autograd registration),
and torch.compile of the INT4 linear on the CPU."""
import pytest
import torch
from torch.library import opcheck

import awq_ext  # noqa: F401
from awq_ext import reference
from awq_ext.nn import Int4Linear
from conftest import DEVICES, rel_err

ops = torch.ops.awq_ext


def _cases(device):
    w = torch.randn(24, 128, dtype=torch.float16, device=device)
    qweight, scales, zeros = (t.to(device) for t in reference.quantize_int4(w.cpu(), 64, True))
    qa, za = (t.to(device) for t in reference.pack_awq(qweight.cpu(), zeros.cpu()))
    x = torch.randn(3, 128, dtype=torch.float16, device=device)
    return [
        (ops.act_stats_, (x, torch.zeros(128, device=device), torch.zeros(128, device=device),
                          torch.zeros(1, dtype=torch.long, device=device))),
        (ops.pseudo_quantize, (w, 4, 64, True, torch.rand(128, device=device) + 0.5,
                               torch.rand(24, 2, device=device) * 0.5 + 0.5)),
        (ops.pseudo_quantize, (w, 3, -1, False)),
        (ops.pseudo_quantize_error, (w, torch.rand(3, 128, device=device) + 0.5, 4, 64, True,
                                     torch.rand(128, device=device))),
        (ops.pseudo_quantize_error, (w, torch.rand(1, 128, device=device) + 0.5, 3, -1, False)),
        (ops.quantize_int4, (w, 64, True)),
        (ops.dequantize_int4, (qweight, scales, zeros)),
        (ops.pack_awq, (qweight, zeros)),
        (ops.unpack_awq, (qa, za)),
        (ops.int4_linear, (x, qweight, scales, zeros, torch.randn(24, dtype=torch.float16, device=device))),
        (ops.int4_linear, (torch.randn(2, 20, 128, dtype=torch.float16, device=device), qweight, scales, zeros)),
        (ops.clip_search, (w, x, 4, 64, True, 20, 0.5)),
    ]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("case", range(12))
def test_opcheck(device, case):
    op, args = _cases(device)[case]
    opcheck(op, args)


def test_torch_compile_int4_linear_cpu():
    torch._dynamo.reset()
    lin = torch.nn.Linear(128, 48, bias=True)
    q = Int4Linear.from_linear(lin, group_size=32, zero_point=True)
    x = torch.randn(4, 7, 128)
    eager = q(x)
    compiled = torch.compile(q, fullgraph=True)
    out = compiled(x)
    assert torch.equal(out, eager)
    ref = x.double() @ q.dequantized_weight().double().t() + lin.bias.double()
    assert rel_err(out, ref) < 1e-5
