"""The spiking transformers: parameter counts against the papers' tables, each attention
against its equations written here (float64), the energy counter's attention terms, a
few training steps, the ImageNet-sized forward, and the neuron factories."""

import functools

import pytest
import torch
from snetx import models
from snetx.models import _transformer as tf
from snetx.models.qkformer import QKFormer
from snetx.models.sdt import SpikeDrivenTransformer
from snetx.models.spikformer import Spikformer
from snetx.snn import energy, neuron

# (builder, classes, the paper's count in millions): Spikformer (ICLR 2023) Tables 1-3,
# Spike-driven Transformer (NeurIPS 2023) Tables 2-3, QKFormer (NeurIPS 2024) Tables 1-3
PAPER_COUNTS = [
    ("spikformer_4_384", 10, 9.32),
    ("spikformer_2_256_dvs", 10, 2.57),
    ("spikformer_8_384", 1000, 16.81),
    ("spikformer_8_512", 1000, 29.68),
    ("spikformer_8_768", 1000, 66.34),
    ("sdt_2_512", 100, 10.28),
    ("sdt_2_256_dvs", 10, 2.57),
    ("sdt_8_384", 1000, 16.81),
    ("sdt_8_512", 1000, 29.68),
    ("sdt_8_768", 1000, 66.34),
    ("qkformer_4_384", 100, 6.74),
    ("qkformer_10_384", 1000, 16.47),
    ("qkformer_10_512", 1000, 29.08),
    ("qkformer_10_768", 1000, 64.96),
]


@pytest.mark.parametrize("name,classes,paper", PAPER_COUNTS)
def test_parameter_counts_equal_the_papers_tables(name, classes, paper):
    with torch.device("meta"):  # shapes only: no memory, no initialisation
        net = getattr(models, name)(num_classes=classes)
    count = sum(p.numel() for p in net.parameters()) / 1e6
    assert abs(count - paper) / paper <= 0.005, (name, count, paper)


# ---- the attentions against their equations -------------------------------------------
def _spikes(*shape, p=0.4, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(*shape, generator=g, dtype=torch.float64) < p).double()


def lif_reference(x, v_th):
    """LIF(tau=2) on N x T x ...: h = u/2 + x, fire at h >= v_th, reset to 0."""
    u, out = torch.zeros_like(x[:, 0]), []
    for t in range(x.shape[1]):
        h = u / 2 + x[:, t]
        s = (h >= v_th).double()
        u = h * (1 - s)
        out.append(s)
    return torch.stack(out, 1)


@pytest.mark.parametrize("L,d", [(9, 4), (3, 8)])  # both orders of the two products
def test_spiking_self_attention_is_qktv_times_scale(L, d):
    q, k, v = (_spikes(2, 3, 2, L, d, seed=s) for s in range(3))
    got = tf.spiking_self_attention(q, k, v, 0.125, energy.MatMul())
    want = torch.zeros_like(q)
    for idx in torch.cartesian_prod(*(torch.arange(s) for s in q.shape[:3])):
        n, t, h = idx.tolist()
        for i in range(L):
            for c in range(d):
                want[n, t, h, i, c] = 0.125 * sum(
                    q[n, t, h, i, e] * k[n, t, h, j, e] * v[n, t, h, j, c]
                    for j in range(L) for e in range(d)
                )  # fmt: skip
    assert torch.equal(got, want)


def test_spike_driven_attention_masks_q_by_a_fired_column_sum():
    q, k, v = (_spikes(2, 5, 2, 6, 4, seed=s) for s in range(3, 6))
    mask_lif = neuron.LIF(tau=2.0, v_th=0.5)
    got = tf.spike_driven_attention(q, k, v, mask_lif, energy.Sum(-2))
    column = torch.einsum("nthlc,nthlc->nthc", k, v).unsqueeze(-2)  # sum over tokens
    want = q * lif_reference(column, 0.5)
    assert torch.equal(got, want)
    assert set(got.unique().tolist()) <= {0.0, 1.0} and bool((got <= q).all())  # a mask
    assert 0 < want.sum() < q.sum()  # some channels kept, some masked


def test_token_qk_attention_masks_k_by_fired_token_sums():
    q, k = _spikes(2, 5, 3, 7, 4, seed=7), _spikes(2, 5, 3, 7, 4, seed=8)
    got = tf.token_qk_attention(q, k, neuron.LIF(tau=2.0, v_th=0.5), energy.Sum(-1))
    token = q.sum(-1, keepdim=True)  # each token's Q spikes over the head's channels
    want = lif_reference(token, 0.5) * k
    assert torch.equal(got, want) and bool((got <= k).all())


def test_heads_split_and_merge_are_inverse():
    x = torch.arange(2 * 3 * 8 * 5, dtype=torch.float64).view(2, 3, 8, 5)
    h = tf.heads(x, 4)
    assert h.shape == (2, 3, 4, 5, 2) and torch.equal(h[0, 0, 1, :, 0], x[0, 0, 2])
    assert torch.equal(tf.merge_heads(h), x)


# ---- the energy counter's attention terms ------------------------------------------------
def test_matmul_and_sum_are_counted_as_the_paper_counts():
    a = torch.tensor([[1.0, 0.0], [1.0, 1.0]])  # 3 of 4 spike
    b = torch.tensor([[2.0, 3.0, 1.0], [0.5, 0.0, 4.0]])  # real
    mm, sm = energy.MatMul(), energy.Sum(-1)
    model = torch.nn.ModuleDict({"mm": mm, "sum": sm})
    with energy.SynapticOpsCounter(model) as counter:
        counter.samples = 1
        mm(a, b)  # dense 2 x 3 x 2 = 12 products; spikes at 3/4 -> 9 accumulates
        mm(b.t(), b)  # two real operands: 3 x 3 x 2 = 18 MACs
        sm(torch.tensor([[1.0, 0.0, 1.0, 1.0]]))  # three spikes summed: 3 adds
    layers = counter.report()["layers"]
    assert (layers["mm"]["ac"], layers["mm"]["mac"]) == (9.0, 18.0)
    assert (layers["sum"]["ac"], layers["sum"]["mac"]) == (3.0, 0.0)


def test_sdt_8_512_energy_is_the_papers_estimate_term_by_term():
    """Spike-driven Transformer-8-512, T = 4, one random 224x224 image, the firing rates
    measured: E = E_MAC FL_conv1 + E_AC sum_layers(r FL) + E_AC sum(SDSA column sums),
    recomputed here from hooks of this test's own, then compared with the counter."""
    torch.manual_seed(0)
    # batch statistics (train mode): an untrained network's running ones silence it
    net = models.sdt_8_512(num_classes=1000).train()
    x = torch.rand(1, 4, 3, 224, 224)
    mac = ac = 0.0
    first = []

    def conv_hook(mod, inputs, out):
        nonlocal mac, ac
        inp = inputs[0]
        if isinstance(mod, torch.nn.Conv2d):
            fl = out.numel() * mod.in_channels // mod.groups * mod.kernel_size[0] ** 2
        else:
            fl = out.numel() * mod.in_features
        spikes = bool(((inp == 0) | (inp == 1)).all())
        if spikes:
            ac += fl * float((inp != 0).double().mean())  # r FL, r the input's rate
        else:
            mac += fl
            first.append(mod)

    def sum_hook(mod, inputs, out):
        nonlocal ac
        ac += float(inputs[0].count_nonzero())  # one addition per spike summed

    hooks = [m.register_forward_hook(conv_hook) for m in net.modules()
             if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]  # fmt: skip
    hooks += [m.register_forward_hook(sum_hook) for m in net.modules()
              if isinstance(m, energy.Sum)]  # fmt: skip
    with torch.no_grad(), energy.SynapticOpsCounter(net) as counter:
        net(x)
    for h in hooks:
        h.remove()
    report = counter.report()
    # only the encoding convolution sees real values: the image
    assert first == [net.patch_embed.stages[0][0].module[0]]
    assert report["totals"]["mac"] == pytest.approx(mac, rel=1e-12)
    assert report["totals"]["ac"] == pytest.approx(ac, rel=1e-9)
    energy_pj = 4.6 * mac + 0.9 * ac
    assert report["totals"]["energy_pj"] == pytest.approx(energy_pj, rel=1e-9)
    sums = [v for k, v in report["layers"].items() if v["type"] == "Sum"]
    assert len(sums) == 8 and all(v["ac"] > 0 for v in sums)  # per-layer SOPs, per block


# ---- training, the ImageNet size, the neuron factories ---------------------------------
SMALL = {
    "spikformer": lambda neuron=None: Spikformer(1, 64, 4, "cifar", neuron=neuron),
    "sdt": lambda neuron=None: SpikeDrivenTransformer(1, 64, 4, neuron=neuron),
    "qkformer": lambda neuron=None: QKFormer(3, 64, 4, "cifar", neuron=neuron),
}


@pytest.mark.parametrize("family", list(SMALL))
def test_a_few_adam_steps_reduce_the_loss(family):
    torch.manual_seed(0)
    net = SMALL[family]()
    x, y = torch.rand(8, 2, 3, 16, 16), torch.arange(8) % 10
    opt = torch.optim.Adam(net.parameters(), lr=2e-3)
    losses = []
    for _ in range(8):
        loss = torch.nn.functional.cross_entropy(net(x).mean(1), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] * 0.9, losses


IMAGENET = [name for name, _, _ in PAPER_COUNTS if "_8_" in name or "_10_" in name]
FIRST = ("spikformer_8_384", "sdt_8_384", "qkformer_10_384")  # one per family in CI


@pytest.mark.parametrize("name", [
    n if n in FIRST else pytest.param(n, marks=pytest.mark.slow) for n in IMAGENET
])  # fmt: skip
def test_imagenet_sized_models_run_one_forward(name):
    net = getattr(models, name)(num_classes=1000).eval()
    with torch.no_grad():
        y = net(torch.rand(1, 1, 3, 224, 224))
    assert y.shape == (1, 1, 1000) and torch.isfinite(y).all()


@pytest.mark.parametrize("make", [
    functools.partial(neuron.PLIF, tau=2.0),
    functools.partial(neuron.LIF, v_reset=None),
    functools.partial(neuron.CubaLIF, tau_syn=2.0),
    functools.partial(neuron.ALIF, beta=0.2),
])  # fmt: skip
@pytest.mark.parametrize("family", list(SMALL))
def test_neuron_factories_plug_in(family, make):
    net = SMALL[family](make)
    kinds = {type(m) for m in net.modules() if getattr(m, "is_spiking_neuron", False)}
    assert kinds == {make.func}
    y = net(torch.rand(2, 2, 3, 16, 16))
    y.sum().backward()
    assert all(p.grad is not None for p in net.parameters() if p.requires_grad)


def test_bad_inputs_are_named():
    net = SMALL["spikformer"]()
    with pytest.raises(ValueError, match="N x T x C x H x W"):
        net(torch.rand(2, 3, 32, 32))
    with pytest.raises(ValueError, match="divisible by 4"):
        net(torch.rand(1, 1, 3, 30, 30))
    with pytest.raises(ValueError, match="divisible by num_heads"):
        Spikformer(1, 60, 8)


def test_the_family_names_pick_the_configuration_by_input():
    from snetx.models import registry

    def config(name, channels, size):
        with torch.device("meta"):
            net = registry.get(name).builder()(in_channels=channels, size=size)
        return sum(p.numel() for p in net.parameters())

    with torch.device("meta"):
        cifar = sum(p.numel() for p in models.spikformer_4_384().parameters())
        dvs = sum(p.numel() for p in models.sdt_2_256_dvs().parameters())
    assert config("spikformer", 3, (32, 32)) == cifar
    assert config("sdt", 2, (64, 64)) == dvs
    assert registry.get("qkformer_10_512").supports((224, 224))
    assert not registry.get("spikformer_8_512").supports((100, 100))
