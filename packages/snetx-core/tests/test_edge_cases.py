"""API edge cases: empty inputs, wrong schedules, integer-likes, alpha tensors, the
surrogate registry."""

import numpy as np
import pytest
import torch
from reference import PlainStep
from snetx.snn import algorithm, functional, neuron, surrogate
from torch import nn


@pytest.mark.parametrize("shape", [(0, 4, 3), (2, 0, 3), (2, 4, 0), (0, 0)])
@pytest.mark.parametrize("sg", ["arctan", surrogate.SurrogateFunction])
def test_empty_inputs_give_empty_outputs(shape, sg, cpu_kernel):
    if sg is surrogate.SurrogateFunction:  # a surrogate without derivative: the plain loop
        sg = PlainStep
    x = torch.rand(*shape, dtype=torch.float64, requires_grad=True)
    y = neuron.LIF(sg=sg)(x)
    assert y.shape == x.shape and y.dtype == x.dtype
    y.sum().backward()
    assert x.grad.shape == x.shape
    with torch.no_grad():
        assert neuron.LIF()(x).shape == x.shape
    assert functional.lif(x.detach()).shape == x.shape


def test_tetloss_needs_a_time_step_and_a_valid_lamb():
    ce, y = nn.CrossEntropyLoss(), torch.tensor([0, 1])
    with pytest.raises(ValueError, match="at least one time step"):
        algorithm.TETLoss(ce, y, torch.zeros(2, 0, 10))
    for lamb in (float("nan"), -0.1, 1.5, "0.1"):
        with pytest.raises(ValueError, match=r"lamb must be a number in \[0, 1\]"):
            algorithm.TETLoss(ce, y, torch.zeros(2, 3, 10), lamb=lamb)
        with pytest.raises(ValueError, match="lamb"):
            algorithm.TET(ce, lamb=lamb)
    assert torch.isfinite(algorithm.TETLoss(ce, y, torch.zeros(2, 3, 10), lamb=1.0))


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"epoch": 0}, "must be >= 1"),
        ({"epoch": 2.5}, "must be an int"),
        ({"current": -1}, "current must be >= 0"),
        ({"e_max": float("nan")}, "e_max must be a finite number"),
    ],
)
def test_evolved_alpha_reset_checks_the_schedule(kwargs, match):
    before = algorithm.EvolvedAlpha.state_dict()
    with pytest.raises(ValueError, match=match):
        algorithm.EvolvedAlpha.reset(**kwargs)
    assert algorithm.EvolvedAlpha.state_dict() == before  # nothing half-set


def test_direct_encoder_takes_integer_likes():
    for T in (np.int64(4), np.int32(4), torch.tensor(4)):
        enc = algorithm.DirectEncoder(T)
        assert enc.T == 4 and type(enc.T) is int
        assert enc(torch.zeros(2, 3)).shape == (2, 4, 3)
    for bad in (4.0, True, "4", 0, np.int64(-1)):
        with pytest.raises(ValueError, match="T must be an int >= 1"):
            algorithm.DirectEncoder(bad)


def test_alpha_that_requires_grad_is_refused_not_detached():
    p = nn.Parameter(torch.tensor(2.0))
    with pytest.raises(TypeError, match="requires grad"):
        neuron.LIF(alpha=p)
    with pytest.raises(TypeError, match="requires grad"):
        functional.lif(torch.rand(2, 3, 4), alpha=p)
    lif = neuron.LIF()
    lif.alpha = p  # registered as a parameter by nn.Module
    with pytest.raises(TypeError, match="requires grad"):
        lif(torch.rand(2, 3, 4, requires_grad=True))
    with pytest.raises(TypeError, match="requires grad"):
        neuron.LIF(alpha=lambda: p)(torch.rand(2, 3, 4))
    # a plain tensor (no grad) is a number
    x = torch.rand(2, 3, 4)
    assert torch.equal(neuron.LIF(alpha=torch.tensor(2.0))(x), neuron.LIF(alpha=2.0)(x))


def test_surrogate_registry_cannot_be_edited():
    assert isinstance(surrogate.REGISTERED_SG_FUNCLIST, tuple)
    with pytest.raises(TypeError):
        surrogate.REGISTRY["arctan"] = surrogate.ste
    with pytest.raises(TypeError):
        surrogate.SURROGATE_IDS["ste"] = 0
    assert list(surrogate.SURROGATE_IDS) == list(surrogate.REGISTERED_SG_FUNCLIST)
    assert sorted(surrogate.SURROGATE_IDS.values()) == list(range(len(surrogate.REGISTRY)))


def test_surrogate_without_derivative_fails_when_defined():
    with pytest.raises(TypeError, match="Broken must define derivative"):

        class Broken(surrogate.SurrogateFunction):
            pass

    class Own(surrogate.SurrogateFunction):  # its own backward is allowed
        @staticmethod
        def backward(ctx, grad):
            return grad, None

    z = torch.tensor([0.5, -0.5], requires_grad=True)
    Own.apply(z, 1.0).sum().backward()
    assert z.grad.tolist() == [1.0, 1.0]
