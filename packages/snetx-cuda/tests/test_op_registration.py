"""The torch.library wiring of snetx.cuend, exercised without a GPU on fake CUDA tensors:
the fake implementations, the registered autograd and what is saved for backward."""

import pytest
import torch
from snetx.cuend import _ops
from torch._subclasses.fake_tensor import FakeTensorMode


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16])
def test_forward_backward_wiring_on_meta_tensors(dtype):
    # register_fake also serves the meta device, where autograd runs without any GPU
    x = torch.empty(4, 3, 8, 8, device="meta", dtype=dtype, requires_grad=True)
    saved = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t) or t, lambda t: t):
        spikes, h = _ops.lif(x, 0.5, 1.0, 0.0, 4.0, "arctan", False)
    assert spikes.shape == x.shape and spikes.dtype == dtype and h.dtype == dtype
    assert len(saved) == 1 and saved[0].shape == x.shape  # h only
    (gx,) = torch.autograd.grad(spikes, x, torch.ones_like(spikes))
    assert gx.shape == x.shape and gx.dtype == dtype and gx.device.type == "meta"


def test_forward_on_fake_cuda_tensors():
    with FakeTensorMode():
        x = torch.empty(4, 3, 8, device="cuda", dtype=torch.bfloat16)
        spikes, h = _ops.lif(x, 0.5, 1.0, 0.0, 4.0, "arctan", False)
        assert spikes.device.type == "cuda" and spikes.shape == x.shape


def test_ops_are_registered_with_schemas():
    schema = str(torch.ops.snetx_cuend.lif.default._schema)
    assert "float decay" in schema and "str sg" in schema and "bool detach" in schema
    assert "Tensor" in str(torch.ops.snetx_cuend.lif_backward.default._schema)


def test_opcheck_fake_and_autograd_registration_on_meta():
    # torch.library.opcheck's static checks need no device: run them on fake tensors
    with FakeTensorMode():
        x = torch.empty(2, 3, 5, device="cuda")
        out = torch.ops.snetx_cuend.lif(x, 0.5, 1.0, 0.0, 4.0, "sigmoid", True)
        g = torch.ops.snetx_cuend.lif_backward(out[1], out[0], 0.5, 1.0, 0.0, 4.0, "sigmoid", True)
    assert g.shape == (2, 3, 5)
