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
