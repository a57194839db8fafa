"""The torch path of snetx.snn on CUDA (one launch per op, no CPU kernel)."""

import pytest
import torch
from reference import lif_reference
from snetx.snn import neuron
from snetx.snn.algorithm import TETLoss, Tosnn

pytestmark = pytest.mark.gpu


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("detach", [False, True])
def test_lif_on_cuda_matches_reference(dtype, detach):
    g = torch.Generator().manual_seed(0)
    x = (torch.rand(4, 6, 300, generator=g, dtype=torch.float64) * 1.6).to(dtype)
    grad = torch.randn(4, 6, 300, generator=g, dtype=torch.float64).to(dtype)
    xc = x.cuda().requires_grad_()
    y = neuron.LIF(v_reset=-0.2, detach=detach)(xc)
    y.backward(grad.cuda())
    xr = x.clone().requires_grad_()
    y_ref = lif_reference(xr, 2.0, 1.0, -0.2, "arctan", 4.0, detach)
    y_ref.backward(grad)
    assert y.device.type == "cuda" and torch.equal(y.cpu(), y_ref)
    tol = dict(rtol=1e-10, atol=1e-12) if dtype == torch.float64 else dict(rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(xc.grad.cpu(), xr.grad, **tol)


def test_bf16_autocast_on_cuda():
    x = torch.rand(4, 4, 3, 8, 8, device="cuda") * 2
    conv = Tosnn(torch.nn.Conv2d(3, 4, 3, padding=1)).cuda()
    with torch.autocast("cuda", dtype=torch.bfloat16):
        out = neuron.LIF()(conv(x))
        loss = TETLoss(
            torch.nn.CrossEntropyLoss(),
            torch.zeros(4, dtype=torch.long, device="cuda"),
            out.flatten(2)[..., :10].float(),
        )
    loss.backward()
    assert out.dtype == torch.bfloat16 and conv.module.weight.grad is not None
