import importlib

import pytest
import torch
from snetx.snn import algorithm, neuron
from snetx.snn.algorithm import TET, DirectEncoder, EvolvedAlpha, TETLoss, Tosnn
from torch import nn


def test_algothrim_spelling_is_the_same_module_api():
    algothrim = importlib.import_module("snetx.snn.algothrim")
    for name in algorithm.__all__:
        assert getattr(algothrim, name) is getattr(algorithm, name)


def test_tosnn_equals_per_frame_application_on_non_contiguous_input():
    torch.manual_seed(0)
    block = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.MaxPool2d(2))
    block.eval()  # running stats: frames are independent, so per-frame must match
    with torch.no_grad():
        block[1].running_mean.uniform_(-0.2, 0.2)
        block[1].running_var.uniform_(0.5, 1.5)
    x = torch.randn(2, 5, 3, 8, 6).transpose(3, 4)  # N x T x C x H x W, non-contiguous
    assert not x.is_contiguous()
    y = Tosnn(block)(x)
    expected = torch.stack(
        [torch.stack([block(x[n, t : t + 1])[0] for t in range(5)]) for n in range(2)]
    )
    assert y.shape == (2, 5, 4, 3, 4)
    torch.testing.assert_close(y, expected)


def test_tosnn_batchnorm_training_uses_all_frames():
    bn = nn.BatchNorm2d(2)
    x = torch.randn(3, 4, 2, 5, 5) * 3 + 1
    y = Tosnn(bn)(x)
    flat = x.flatten(0, 1)
    mean = flat.mean(dim=(0, 2, 3), keepdim=True)
    var = flat.var(dim=(0, 2, 3), unbiased=False, keepdim=True)
    torch.testing.assert_close(y.flatten(0, 1), (flat - mean) / torch.sqrt(var + bn.eps))


def test_tosnn_gradcheck_float64():
    conv = nn.Conv2d(2, 3, 3).double()
    x = torch.randn(2, 3, 2, 5, 5, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(Tosnn(conv), (x,))


def test_direct_encoder():
    x = torch.randn(3, 2, 4, 4)
    y = DirectEncoder(5)(x)
    assert y.shape == (3, 5, 2, 4, 4)
    for t in range(5):
        assert torch.equal(y[:, t], x)
    y[:, 0].zero_()  # a real copy: writing one step leaves the others and x alone
    assert torch.equal(y[:, 1], x)
    with pytest.raises(ValueError, match="T must be an int >= 1"):
        DirectEncoder(0)


def _tet_by_hand(output, target, lamb, phi):
    # Deng et al. 2022, eq. (8)-(10), written with explicit sums.
    N, T, C = output.shape
    ce = 0.0
    for t in range(T):
        logp = output[:, t] - torch.logsumexp(output[:, t], dim=1, keepdim=True)
        ce = ce + (-logp[torch.arange(N), target]).mean()
    mse = ((output - phi) ** 2).sum() / (N * T * C)
    return (1 - lamb) * ce / T + lamb * mse


@pytest.mark.parametrize("lamb,phi", [(1e-3, 1.0), (0.05, 1.0), (0.3, 0.5)])
def test_tet_loss_matches_paper_formula(lamb, phi):
    torch.manual_seed(1)
    out = torch.randn(4, 6, 10, dtype=torch.float64)
    y = torch.randint(0, 10, (4,))
    got = TETLoss(nn.CrossEntropyLoss(), y, out, lamb=lamb, phi=phi)
    torch.testing.assert_close(got, _tet_by_hand(out, y, lamb, phi))
    torch.testing.assert_close(TET(nn.CrossEntropyLoss(), lamb, phi)(y, out), got)


def test_tet_loss_gradcheck():
    out = torch.randn(2, 3, 4, dtype=torch.float64, requires_grad=True)
    y = torch.tensor([1, 3])
    assert torch.autograd.gradcheck(lambda o: TETLoss(nn.CrossEntropyLoss(), y, o, 0.1), (out,))


def test_tet_loss_rejects_missing_time_axis():
    with pytest.raises(ValueError, match="N x T x C"):
        TETLoss(nn.CrossEntropyLoss(), torch.tensor([0]), torch.randn(1, 10))


def test_evolved_alpha_schedule_and_late_binding():
    EvolvedAlpha.reset()
    alpha = EvolvedAlpha(2.0)
    lif = neuron.LIF(alpha=alpha)  # built before the schedule is set
    EvolvedAlpha.epoch, EvolvedAlpha.e_max = 4, 3.0
    values = []
    for _ in range(5):
        values.append(alpha())
        EvolvedAlpha.step()
    assert values == [2.0 * (1 + 3.0 * k / 4) for k in range(5)]
    assert EvolvedAlpha.current == 5
    # the neuron reads the current value in its forward: compare with a fixed-alpha LIF
    x = (torch.rand(2, 4, 8, dtype=torch.float64) * 1.5).requires_grad_()
    (g,) = torch.autograd.grad(lif(x).sum(), x)
    (g_ref,) = torch.autograd.grad(neuron.LIF(alpha=alpha()).forward(x).sum(), x)
    assert alpha() == 2.0 * (1 + 3.0 * 5 / 4)
    torch.testing.assert_close(g, g_ref)
    assert EvolvedAlpha.state_dict() == {"epoch": 4, "e_max": 3.0, "current": 5}
