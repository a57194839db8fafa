"""The residual networks of the papers: parameter counts against the published figures
and torchvision, each block against a hand-written reference, shapes, training."""

import pytest
import torch
import torchvision
from snetx.models import ms_resnet, registry, resnet19, sew_resnet
from torch import nn
from torch.nn import functional as F

torch.set_num_threads(2)


def params(m):
    return sum(p.numel() for p in m.parameters())


# Published counts in millions, given to two decimals (some truncated, e.g. SEW-ResNet-34
# has 21.7977 M and is listed as 21.79 M): hence a tolerance of 0.01 M.
PUBLISHED = [
    (lambda: resnet19.ResNet19(num_classes=10), 12.63),  # TET / tdBN comparisons
    (lambda: sew_resnet.sew_resnet18(), 11.69),  # SEW paper, ImageNet
    (lambda: sew_resnet.sew_resnet34(), 21.79),
    (lambda: sew_resnet.sew_resnet50(), 25.56),
    (lambda: ms_resnet.ms_resnet18(), 11.69),  # MS-ResNet paper, ImageNet
    (lambda: ms_resnet.ms_resnet34(), 21.80),
]


@pytest.mark.parametrize("build,millions", PUBLISHED)
def test_parameter_counts_match_the_papers(build, millions):
    assert abs(params(build()) / 1e6 - millions) <= 0.01


@pytest.mark.parametrize("depth", [18, 34, 50])
def test_sew_resnet_has_exactly_torchvisions_parameters_for_both_stems(depth):
    # neurons add no parameters: SEW-ResNet is ResNet's weights, spiking
    ref = getattr(torchvision.models, f"resnet{depth}")()
    sew = getattr(sew_resnet, f"sew_resnet{depth}")
    assert params(sew()) == params(ref)
    ref.conv1 = nn.Conv2d(3, 64, 3, padding=1, bias=False)
    ref.fc = nn.Linear(ref.fc.in_features, 10)
    assert params(sew(stem="cifar", num_classes=10)) == params(ref)


def test_ms_resnet_is_resnet_plus_the_first_stage_shortcut_of_the_released_models():
    # the released ImageNet model downsamples in its first stage (1x1 conv + BN shortcut)
    for depth in (18, 34):
        ref = params(getattr(torchvision.models, f"resnet{depth}")())
        assert params(getattr(ms_resnet, f"ms_resnet{depth}")()) == ref + 64 * 64 + 2 * 64


# ---- blocks against references written here from the papers' equations ----------------
def ref_lif(x, tau=2.0, v_th=1.0):
    """The charge-fire-reset loop of snetx's LIF (hard reset to 0), over dim 1."""
    u, out = torch.zeros_like(x[:, 0]), []
    for t in range(x.shape[1]):
        h = u / tau + x[:, t]
        s = (h >= v_th).to(x.dtype)
        u = h * (1 - s)
        out.append(s)
    return torch.stack(out, 1)


def ref_conv_bn(x, seq, stride):
    """conv then eval-mode BN, per frame, from the module's own tensors."""
    conv, bn = seq.module[0], seq.module[1]
    n, t = x.shape[:2]
    y = F.conv2d(x.flatten(0, 1), conv.weight, None, stride, conv.padding)
    y = (y - bn.running_mean[:, None, None]) / torch.sqrt(bn.running_var[:, None, None] + bn.eps)
    y = y * bn.weight[:, None, None] + bn.bias[:, None, None]
    return y.unflatten(0, (n, t))


def randomize(block):
    torch.manual_seed(0)
    for m in block.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 1.5)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(0.0, 0.6)
    return block.eval()


def test_resnet19_block_matches_its_equation():
    block = randomize(resnet19.BasicBlock(8, 16, 2, nn.BatchNorm2d, lambda: __import__(
        "snetx.snn.neuron", fromlist=["LIF"]).LIF()))  # fmt: skip
    x = (torch.rand(2, 3, 8, 8, 8) < 0.4).double()
    block.double()
    a = ref_lif(ref_conv_bn(x, block.conv1, 2))
    want = ref_lif(ref_conv_bn(a, block.conv2, 1) + ref_conv_bn(x, block.shortcut, 2))
    assert torch.equal(block(x), want)


@pytest.mark.parametrize("connect", ["ADD", "AND", "IAND"])
def test_sew_block_matches_its_equation(connect):
    from snetx.snn.neuron import LIF

    block, _ = sew_resnet.basic_block(8, 16, 2, nn.BatchNorm2d, LIF, connect)
    randomize(block).double()
    x = (torch.rand(2, 3, 8, 8, 8) < 0.4).double()
    b = block.branch
    s = ref_lif(ref_conv_bn(ref_lif(ref_conv_bn(x, b[0], 2)), b[2], 1))
    a = ref_lif(ref_conv_bn(x, block.shortcut[0], 2))
    want = {"ADD": a + s, "AND": a * s, "IAND": a * (1 - s)}[connect]
    got = block(x)
    assert torch.equal(got, want)
    assert s.sum() > 0 and a.sum() > 0  # the check is not vacuous
    if connect != "ADD":  # AND and IAND keep a block's output binary, as the paper says
        assert set(got.unique().tolist()) <= {0.0, 1.0}


def test_ms_block_adds_membrane_inputs_not_spikes():
    from snetx.snn.neuron import LIF

    block = randomize(ms_resnet.MSBlock(8, 16, 2, nn.BatchNorm2d, LIF)).double()
    x = torch.randn(2, 3, 8, 8, 8, dtype=torch.float64)  # real-valued, as between MS blocks
    b = block.branch
    want = ref_conv_bn(ref_lif(ref_conv_bn(ref_lif(x), b[1], 2)), b[3], 1)
    want = want + ref_conv_bn(x, block.shortcut, 2)
    torch.testing.assert_close(block(x), want, rtol=1e-12, atol=1e-12)  # BN's own rounding
    assert not set(want.unique().tolist()) <= {0.0, 1.0}
    fresh = ms_resnet.MSBlock(8, 8, 1, nn.BatchNorm2d, LIF)
    assert torch.all(fresh.branch[3].module[1].weight == 0)  # the branch starts as zero


# ---- shapes, options, errors -----------------------------------------------------------
ZOO = ["resnet19", "sew_resnet18", "sew_resnet34", "sew_resnet50", "ms_resnet18", "ms_resnet34"]


@pytest.mark.parametrize("name", ZOO)
def test_every_model_maps_frames_to_per_step_logits_with_both_stems(name):
    spec = registry.get(name)
    with torch.no_grad():
        for size, channels in (((32, 32), 3), ((128, 128), 2)):
            net = spec.build(num_classes=7, in_channels=channels, neuron=None, size=size)
            assert net(torch.rand(1, 2, channels, *size)).shape == (1, 2, 7)
    assert spec.supports((32, 32)) and spec.supports((128, 128), "events")
    assert not spec.supports((4, 4)) and not spec.supports((700,), "sequence")


def test_sew_wide7b_shape_parameters_and_size_error():
    net = registry.get("sew_wide7b").build(
        num_classes=10, in_channels=2, neuron=None, size=(128, 128)
    )
    with torch.no_grad():
        assert net(torch.rand(1, 2, 2, 128, 128)).shape == (1, 2, 10)
    # convs: 1x1 2->64, 8 x 3x3 64->64, 1x1 64->128, 6 x 3x3 128->128; BN; a PLIF tau
    # after each of the 16 convs; FC
    convs = 2 * 64 + 8 * 64 * 64 * 9 + 64 * 128 + 6 * 128 * 128 * 9
    bns = 2 * (64 + 8 * 64 + 128 + 6 * 128)
    assert params(net) == convs + bns + 16 + 128 * 10 + 10
    spec = registry.get("sew_wide7b")
    assert not spec.supports((48, 48), "events") and "divisible by 128" in spec.sizes
    with pytest.raises(ValueError, match="N x T x C x 128 x 128"):
        net(torch.rand(1, 2, 2, 64, 64))


def test_options_and_input_errors_are_one_line():
    with pytest.raises(ValueError, match="connect must be one of ADD, AND, IAND"):
        sew_resnet.sew_resnet18(connect="OR")
    with pytest.raises(ValueError, match="stem must be one of cifar, imagenet"):
        ms_resnet.ms_resnet18(stem="tiny")
    with pytest.raises(ValueError, match="at least 32x32, got 16x16"):
        sew_resnet.sew_resnet18()(torch.rand(1, 1, 3, 16, 16))
    with pytest.raises(ValueError, match="N x T x C x H x W"):
        resnet19.ResNet19()(torch.rand(1, 3, 32, 32))


def test_neuron_factory_plugs_in_plif_and_soft_reset():
    from functools import partial

    from snetx.snn.neuron import PLIF

    net = sew_resnet.sew_resnet18(stem="cifar", num_classes=10, neuron=partial(PLIF, v_reset=None))
    plifs = [m for m in net.modules() if isinstance(m, PLIF)]
    assert len(plifs) == 1 + 8 * 2 + 3  # stem, two per block, three downsample shortcuts
    assert all(m.v_reset is None for m in plifs)


# one of each kind of block (the 34-layer networks repeat the 18-layer ones' blocks; they
# are built and run by the builder test); the 128x128 event network (9 s) under `slow`
@pytest.mark.parametrize("name", ["resnet19", "sew_resnet18", "sew_resnet50", "ms_resnet18",
                                  pytest.param("sew_wide7b", marks=pytest.mark.slow)])  # fmt: skip
def test_a_few_steps_on_synthetic_cifar_shaped_data_reduce_the_loss(name):
    torch.manual_seed(0)
    events = name == "sew_wide7b"
    size, channels = ((128, 128), 2) if events else ((32, 32), 3)
    net = registry.get(name).build(num_classes=10, in_channels=channels, neuron=None, size=size)
    x = torch.rand(8, 2, channels, *size)
    y = torch.arange(8) % 10
    # the 50-layer ADD network overshoots at 3e-3 on one small batch
    opt = torch.optim.Adam(net.parameters(), lr=1e-3 if name == "sew_resnet50" else 3e-3)
    losses = []
    for _ in range(8):
        loss = F.cross_entropy(net(x).mean(1), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert sum(losses[-3:]) / 3 < 0.92 * losses[0], losses


@pytest.mark.parametrize("name", registry.names())
def test_every_registered_model_has_a_lowercase_builder(name):
    import snetx.models as models
    from snetx.snn import neuron

    build = getattr(models, name)
    assert name in models.__all__ and callable(build)
    spec = registry.get(name)
    channels, size = spec.default_input
    options = {"connect": "ADD"} if "connect" in spec.options else {}
    large = len(size) == 2 and min(size) >= 224  # ImageNet-sized: shapes only here
    with torch.device("meta" if large else "cpu"):
        net = build(num_classes=7, **options)
        same = spec.build(
            num_classes=7, in_channels=channels, neuron=neuron.LIF, size=size, **options
        )
    assert type(net) is type(same)
    assert sum(p.numel() for p in net.parameters()) == sum(p.numel() for p in same.parameters())
    if large:  # their forward: test_transformers.test_imagenet_sized_models_run_one_forward
        return
    x = torch.rand(1, 1, channels, *size) if len(size) == 2 else torch.rand(1, 2, channels)
    with torch.no_grad():
        assert net(x).shape[-1] == 7


def test_builders_named_like_modules_work_as_module_and_builder():
    import importlib

    import snetx.models as models

    r = importlib.import_module("snetx.models.resnet19")  # rebinds the package's name
    assert models.resnet19 is r and r.ResNet19 is resnet19.ResNet19
    assert isinstance(models.resnet19(num_classes=100), resnet19.ResNet19)
    with pytest.raises(TypeError, match="unexpected options"):
        models.resnet19(connect="ADD")


def test_model_help_lists_parameter_counts(capsys):
    from snetx.train import main

    with pytest.raises(SystemExit):
        main(["--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "scnn (66.2 k)" in out and "resnet19 (12.63 M)" in out
