"""The zoo under compact saving and checkpointing (snetx.snn.memory): the same gradients
as the plain modules, and the bytes autograd keeps, counted."""

import pytest
import torch
from snetx.models import sew_resnet
from snetx.models.vggsnn import VGGSNN
from snetx.snn import memory


def sew(connect):
    torch.manual_seed(0)
    return sew_resnet.SEWResNet(sew_resnet.basic_block, [1, 1, 1, 1], num_classes=5,
                                connect=connect, stem="imagenet").double()


def vgg():
    torch.manual_seed(0)
    return VGGSNN(num_classes=5, input_size=16).double()


def saved(net, x):
    return memory.saved_storages(lambda: net(x), (*net.parameters(), *net.buffers(), x))


def grads(net, x, on=True):
    with memory.compact(on):
        net(x).square().sum().backward()
    return [p.grad for p in net.parameters()]


def close(a, b, tol=1e-10):
    return (a - b).abs().max().item() <= tol * max(1.0, a.abs().max().item())


@pytest.mark.parametrize("build,shape", [
    (lambda: sew("ADD"), (2, 2, 3, 32, 32)),
    (lambda: sew("IAND"), (2, 2, 3, 32, 32)),
    (vgg, (2, 2, 2, 16, 16)),
])  # fmt: skip
def test_zoo_models_keep_a_third_and_give_the_plain_gradients(build, shape):
    x = torch.rand(shape, dtype=torch.float64) * 2

    def per_sample(on):
        """Bytes kept per extra sample (batch 2 less batch 1): the activations, without
        the per-feature constants (each neuron's decay row) that a tiny batch inflates."""
        with memory.compact(on):
            b2, b1 = (sum(b for b, _ in saved(build(), x[:n]).values()) for n in (2, 1))
        return b2 - b1

    # a conv-BN-neuron layer keeps 4 B + 1 bit instead of 12 B an element; a residual
    # block's sums are kept as bytes, not bits
    assert per_sample(True) <= 0.4 * per_sample(False)
    for a, b in zip(grads(build(), x, False), grads(build(), x, True)):
        assert close(a, b)
    wrapped = memory.checkpoint_layers(build())
    for a, b in zip(grads(build(), x, False), grads(wrapped, x, True)):
        assert close(a, b)


def test_sums_of_a_residual_blocks_spikes_are_kept_as_bytes():
    """SEW ADD: a block's output is 0, 1 or 2 (3 after two identity blocks); the next
    block's two convolutions (branch and shortcut) keep it as one byte per element, once."""
    net, x = sew("ADD"), torch.rand(2, 3, 3, 32, 32, dtype=torch.float64) * 2
    bytes_ = [b for b, d in saved(net, x).values() if d == torch.uint8]
    block1_out = 2 * 3 * 64 * 8 * 8  # after the stem (16x16) and its max pool (8x8)
    assert bytes_.count(block1_out) == 1
    out = net.features[:4](x)
    assert memory.codes(out) == (1.0, 2) and set(out.unique().tolist()) <= {0.0, 1.0, 2.0}
