import functools

import pytest
import torch
import torchvision
from snetx.models import svggnet
from snetx.snn import neuron
from torch import nn

VARIANTS = ["vgg11", "vgg11_bn", "vgg13", "vgg13_bn", "vgg16", "vgg16_bn", "vgg19", "vgg19_bn"]
CFG = {"vgg11": "A", "vgg13": "B", "vgg16": "D", "vgg19": "E"}


def _params(module):
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize("name", VARIANTS)
def test_features_match_torchvision_parameter_count(name):
    bn = name.endswith("_bn")
    ours = getattr(svggnet, name)(num_classes=10, head="compact")
    ref = torchvision.models.vgg.make_layers(
        torchvision.models.vgg.cfgs[CFG[name.split("_")[0]]], batch_norm=bn
    )
    assert _params(ours.features) == _params(ref)
    n_lif = sum(isinstance(m, neuron.LIF) for m in ours.features)
    n_conv = sum(isinstance(m, nn.Conv2d) for m in ref)
    assert n_lif == n_conv  # one neuron after every conv


@pytest.mark.parametrize("name", VARIANTS)
@pytest.mark.parametrize("T", [1, 4])
def test_output_shape_per_step_logits(name, T):
    torch.manual_seed(0)
    net = getattr(svggnet, name)(num_classes=7, head="compact")
    out = net(torch.rand(2, T, 3, 32, 32) * 4)
    assert out.shape == (2, T, 7)


def test_seed_call_forms_and_imagenet_head():
    net = svggnet.vgg11()  # the seed's form, ImageNet head
    assert isinstance(net.classifier[0], nn.Linear) and net.classifier[0].in_features == 512 * 49
    assert net.classifier[-1].out_features == 1000
    bn = svggnet.vgg16_bn(nn.BatchNorm2d, num_classes=1000, dropout=0.5)
    assert any(isinstance(m, nn.BatchNorm2d) for m in bn.modules())
    with torch.no_grad():
        out = net.eval()(torch.rand(1, 2, 3, 32, 32))
    assert out.shape == (1, 2, 1000)


def test_gradients_reach_first_conv_and_time_is_not_merged():
    torch.manual_seed(0)
    net = svggnet.vgg11_bn(nn.BatchNorm2d, num_classes=10, in_channels=1, head="compact")
    x = torch.rand(3, 4, 1, 32, 32) * 3
    out = net(x)
    out.mean(1).sum().backward()
    first = net.features[0].module[0]
    assert isinstance(first, nn.Conv2d) and first.in_channels == 1
    assert first.weight.grad is not None and first.weight.grad.abs().sum() > 0
    # samples are independent through time: changing sample 1 leaves sample 0's output
    net.eval()
    with torch.no_grad():
        a = net(x)
        x2 = x.clone()
        x2[1] = 0
        b = net(x2)
    torch.testing.assert_close(a[0], b[0])


def test_compact_head_is_small_for_cifar():
    compact = svggnet.vgg11_bn(nn.BatchNorm2d, num_classes=10, head="compact")
    full = svggnet.vgg11_bn(nn.BatchNorm2d, num_classes=10)
    assert _params(compact) < 10_000_000 < 100_000_000 < _params(full)


def test_neuron_factory_plugs_in():
    made = []

    def factory():
        made.append(1)
        return neuron.LIF(tau=4.0)

    net = svggnet.vgg11(num_classes=10, neuron=factory, head="compact")
    assert len(made) == 8 and all(m.tau == 4.0 for m in net.modules() if isinstance(m, neuron.LIF))
    net2 = svggnet.vgg11(neuron=functools.partial(neuron.LIF, tau=1.5), num_classes=3)
    assert {m.tau for m in net2.modules() if isinstance(m, neuron.LIF)} == {1.5}
    assert sum(isinstance(m, neuron.LIF) for m in net2.classifier) == 2


def test_bad_input_and_head():
    with pytest.raises(ValueError, match="N x T x C x H x W"):
        svggnet.vgg11(head="compact")(torch.rand(2, 3, 32, 32))
    with pytest.raises(ValueError, match="head must be"):
        svggnet.vgg11(head="tiny")


@pytest.mark.parametrize("head", ["compact", "imagenet"])
def test_inputs_under_32x32_are_refused_with_the_size_needed(head):
    net = svggnet.vgg11_bn(num_classes=10, head=head)
    with pytest.raises(ValueError, match="at least 32x32, got 16x16"):
        net(torch.rand(1, 2, 3, 16, 16))
    with pytest.raises(ValueError, match="at least 32x32, got 32x24"):
        net(torch.rand(1, 2, 3, 32, 24))


def test_model_registry_builds_what_it_promises():
    from snetx.models import registry

    for name, spec in registry.MODELS.items():
        if "sequence" in spec.kinds:
            net = spec.build(num_classes=7, in_channels=5, neuron=neuron.LIF, size=(5,))
            assert net(torch.rand(1, 2, 5)).shape == (1, 2, 7), name
            continue
        size = (spec.min_size, spec.min_size)
        net = spec.build(num_classes=7, in_channels=2, neuron=neuron.LIF, size=size)
        assert net(torch.rand(1, 2, 2, *size)).shape == (1, 2, 7), name
        assert spec.supports(size, spec.kinds[0])
        if spec.min_size > 8:
            assert not spec.supports((spec.min_size // 2, spec.min_size), spec.kinds[0])
    assert not registry.get("vggsnn").supports((48, 48), "image")  # event frames only
    assert not registry.get("vggsnn").supports((34, 34), "events")  # not divisible by 16
    with pytest.raises(ValueError, match="unknown model 'resnet'"):
        registry.get("resnet")
