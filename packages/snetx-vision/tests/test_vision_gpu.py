"""Models and loaders on CUDA."""

import pytest
import torch
from snetx.dataset import vision
from snetx.models import svggnet
from torch import nn

pytestmark = pytest.mark.gpu


def test_vgg_trains_a_step_on_cuda():
    torch.manual_seed(0)
    net = svggnet.vgg11_bn(nn.BatchNorm2d, num_classes=10, head="compact").cuda()
    x = torch.rand(4, 2, 3, 32, 32, device="cuda")
    out = net(x)
    assert out.shape == (4, 2, 10) and out.device.type == "cuda"
    out.mean(1).sum().backward()
    assert net.features[0].module[0].weight.grad.abs().sum() > 0


def test_loader_pins_memory_with_cuda():
    train, _ = vision.digits_dataset(None, 16, 16, num_workers=0)
    assert train.pin_memory is True


def _resnet19_pair():
    from snetx.cuend import neuron as cuend_neuron
    from snetx.models.resnet19 import ResNet19

    torch.manual_seed(0)
    eager = ResNet19(num_classes=10).cuda()
    fused = ResNet19(num_classes=10, neuron=cuend_neuron.LIF).cuda()
    fused.load_state_dict(eager.state_dict())
    return eager, fused


def test_resnet19_with_cuend_neurons_matches_the_eager_network_in_float32():
    eager, fused = _resnet19_pair()
    x = torch.rand(4, 2, 3, 32, 32, device="cuda")
    a, b = eager(x), fused(x)
    torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-4)
    a.sum().backward()
    b.sum().backward()
    ga, gb = eager.fc1.weight.grad, fused.fc1.weight.grad
    torch.testing.assert_close(gb, ga, rtol=1e-3, atol=1e-4)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_resnet19_tet_step_with_cuend_neurons_under_autocast(dtype):
    from snetx.snn.algorithm import TETLoss

    _, net = _resnet19_pair()
    opt = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9)
    scaler = torch.amp.GradScaler("cuda", enabled=dtype == torch.float16)
    x = torch.rand(8, 4, 3, 32, 32, device="cuda")
    y = torch.arange(8, device="cuda") % 10
    losses = []
    for _ in range(5):
        with torch.autocast("cuda", dtype=dtype):
            out = net(x)
        loss = TETLoss(nn.CrossEntropyLoss(), y, out.float(), lamb=1e-3)
        opt.zero_grad()
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
        losses.append(loss.item())
    assert all(torch.isfinite(torch.tensor(losses))), losses
    assert losses[-1] < losses[0], losses


# ---- the spiking transformers on the GPU -------------------------------------------------
def _transformer_pair(name):
    import functools

    from snetx import models
    from snetx.cuend import neuron as cu
    from snetx.snn import neuron as core

    torch.manual_seed(0)
    eager = getattr(models, name)(neuron=functools.partial(core.LIF, detach=True)).cuda()
    fused = getattr(models, name)(neuron=functools.partial(cu.LIF, detach=True)).cuda()
    fused.load_state_dict(eager.state_dict())
    return eager, fused


@pytest.mark.parametrize("name", ["spikformer_4_384", "sdt_2_512", "qkformer_4_384"])
def test_transformers_with_cuend_neurons_match_the_eager_network_in_float32(name):
    eager, fused = _transformer_pair(name)
    x = torch.rand(2, 2, 3, 32, 32, device="cuda")
    y_e, y_f = eager(x), fused(x)
    torch.testing.assert_close(y_f, y_e, rtol=1e-4, atol=1e-4)
    y_e.sum().backward()
    y_f.sum().backward()
    for (n, p), q in zip(eager.named_parameters(), fused.parameters()):
        torch.testing.assert_close(q.grad, p.grad, rtol=1e-3, atol=1e-4, msg=n)


@pytest.mark.parametrize("name", ["spikformer_4_384", "sdt_2_512", "qkformer_4_384"])
def test_transformers_train_under_bf16_autocast(name):
    _, net = _transformer_pair(name)
    torch.manual_seed(1)
    x, y = torch.rand(8, 2, 3, 32, 32, device="cuda"), torch.arange(8, device="cuda") % 10
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    losses = []
    for _ in range(8):
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = nn.functional.cross_entropy(net(x).mean(1).float(), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0], losses
