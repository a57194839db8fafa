"""snetx.nir: the NIR mapping, round trips, HDF5 files, and cross-library runs with the
NIR importers and exporters of Norse and snnTorch on the same inputs."""

import logging

import numpy as np
import pytest
import torch
from torch import nn

nir = pytest.importorskip("nir")
from snetx import nir as snir  # noqa: E402
from snetx.snn import neuron  # noqa: E402
from snetx.snn.algorithm import Tosnn  # noqa: E402

DT = 1e-4
T, N = 8, 3


def _scaled(net, factor):
    """Larger weights: every layer fires often (the comparisons then mean something)."""
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, (nn.Linear, nn.Conv2d)):
                m.weight.mul_(factor)
    return net


def mlp(tau=2.0):
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Linear(20, 30), neuron.LIF(tau=tau), nn.Linear(30, 6), neuron.LIF(tau=tau)
    )
    return _scaled(net, 3.0).eval()


def convnet():
    torch.manual_seed(1)
    net = nn.Sequential(
        Tosnn(nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), nn.BatchNorm2d(4))),
        neuron.LIF(tau=2.0),
        Tosnn(nn.AvgPool2d(2)),
        nn.Flatten(2),
        nn.Linear(4 * 4 * 4, 6),
        neuron.LIF(tau=2.0),
    )
    bn = net[0].module[1]
    bn.running_mean.uniform_(-0.2, 0.2)
    bn.running_var.uniform_(0.5, 1.5)
    bn.weight.data.uniform_(0.5, 1.5)
    return _scaled(net, 3.0).eval()


class Residual(nn.Module):
    """A SEW-ADD-style block: LIF(conv(x)) + x, then a read-out layer."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(2)
        self.conv = Tosnn(nn.Conv2d(2, 2, 3, padding=1))
        self.sn = neuron.LIF(tau=2.0)
        self.flat = nn.Flatten(2)
        self.fc = nn.Linear(2 * 6 * 6, 5)
        self.out = neuron.LIF(tau=2.0)
        _scaled(self, 3.0)

    def forward(self, x):
        return self.out(self.fc(self.flat(self.sn(self.conv(x)) + x)))


def spikes(shape, seed=0, p=0.5):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(N, T, *shape, generator=g) < p).float()


def currents(shape, seed=0):
    """Real-valued inputs: charges then almost never land exactly on the threshold."""
    g = torch.Generator().manual_seed(seed)
    return torch.rand(N, T, *shape, generator=g) * 2


def membranes_near_threshold(net, x, v_th=1.0, eps=1e-5):
    """How many charges of ``net`` on ``x`` land within ``eps`` of the threshold: the
    only places two correct implementations (h >= v_th vs v > v_th, other rounding)
    may disagree."""
    near = 0

    def hook(mod, inputs, out):
        nonlocal near
        cur, u = inputs[0], torch.zeros_like(inputs[0][:, 0])
        for t in range(cur.shape[1]):
            h = u / mod.tau + cur[:, t]
            near += int(((h - v_th).abs() < eps).sum())
            u = torch.where(h >= v_th, torch.zeros_like(h), h)

    hs = [m.register_forward_hook(hook) for m in net.modules() if isinstance(m, neuron.LIF)]
    with torch.no_grad():
        net(x)
    for h in hs:
        h.remove()
    return near


def run_stepwise(module, x, reset=None):
    """Run a per-time-step importer module on each sample alone (NIR shapes exclude the
    batch axis), step by step; returns N x T x ..."""
    outs = []
    for n in range(x.shape[0]):
        if reset is not None:
            reset(module)
        state, steps = None, []
        for t in range(x.shape[1]):
            res = module(x[n, t], state) if reset is None else module(x[n, t])
            y, state = res if isinstance(res, tuple) else (res, None)
            steps.append(y)
        outs.append(torch.stack(steps))
    return torch.stack(outs)


# ---- the mapping -------------------------------------------------------------------------
def test_lif_maps_to_nir_lif_with_tau_and_r_folded_into_the_weights():
    net = mlp(tau=4.0)  # k = 1/4: tau_NIR = dt / (1 - k), r = 1 / (1 - k) = 4/3
    g = snir.export(net, torch.rand(1, 2, 20), dt=DT)
    node = g.nodes["1"]
    assert isinstance(node, nir.LIF)
    np.testing.assert_allclose(node.tau, DT / 0.75, rtol=1e-12)
    assert np.all(node.r == 1.0) and np.all(node.v_leak == 0.0)
    assert np.all(node.v_threshold == 1.0) and np.all(node.v_reset == 0.0)
    np.testing.assert_allclose(g.nodes["0"].weight, net[0].weight.detach() * 4 / 3, rtol=1e-6)
    np.testing.assert_allclose(g.nodes["0"].bias, net[0].bias.detach() * 4 / 3, rtol=1e-6)
    assert set(g.edges) == {("input", "0"), ("0", "1"), ("1", "2"), ("2", "3"), ("3", "output")}


def test_if_and_plif_and_v_reset():
    torch.manual_seed(0)
    plif = neuron.PLIF(tau=2.0, channels=3, v_th=0.5, v_reset=-0.25)
    with torch.no_grad():
        plif.w.copy_(torch.tensor([0.0, np.log(3.0), 0.0]))  # k = 0.5, 0.75, 0.5
    net = nn.Sequential(nn.Linear(4, 3), plif, nn.Linear(3, 2), neuron.IF(v_th=2.0))
    g = snir.export(net, torch.rand(1, 2, 4), dt=DT)
    np.testing.assert_allclose(g.nodes["1"].tau, [DT / 0.5, DT / 0.25, DT / 0.5])
    assert np.all(g.nodes["1"].v_threshold == 0.5) and np.all(g.nodes["1"].v_reset == -0.25)
    assert isinstance(g.nodes["3"], nir.IF)
    np.testing.assert_allclose(g.nodes["3"].r, 1 / DT)  # v + dt r I = v + I
    x = torch.rand(4, 6, 4) * 3
    assert torch.equal(snir.load(g)(x), net(x))  # powers of two: exact


def test_batchnorm_is_folded_into_the_convolution_before_it():
    net = convnet()
    g = snir.export(net, torch.rand(1, 1, 2, 8, 8), dt=DT)
    conv, bn = net[0].module
    kinds = {k: type(v).__name__ for k, v in g.nodes.items()}
    assert "BatchNorm" not in " ".join(kinds.values()) and kinds["0_0"] == "Conv2d"
    x = torch.randn(5, 2, 8, 8)
    with torch.no_grad():
        want = bn(conv(x)) * 2.0  # and r = 2 (tau = 2) folded in as well
    got = nn.functional.conv2d(x, torch.from_numpy(g.nodes["0_0"].weight),
                               torch.from_numpy(g.nodes["0_0"].bias), padding=1)  # fmt: skip
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


# ---- round trips -------------------------------------------------------------------------
@pytest.mark.parametrize("build,shape", [(mlp, (20,)), (convnet, (2, 8, 8)), (Residual, (2, 6, 6))])
def test_export_load_round_trip_in_snetx(build, shape, tmp_path):
    net = build().eval()
    x = currents(shape)
    want = net(x)
    assert 0 < want.mean() < 1  # the network fires, not always
    g = snir.export(net, x, dt=DT)
    loaded = snir.load(g)
    if build is convnet:  # BN folded: other rounding; identical away from threshold ties
        assert membranes_near_threshold(net, x) == 0
    assert torch.equal(loaded(x), want)
    # through NIR's HDF5 file: the same graph, bit for bit
    path = tmp_path / "model.nir"
    nir.write(path, g)
    again = nir.read(path)
    assert sorted(again.nodes) == sorted(g.nodes) and sorted(again.edges) == sorted(g.edges)
    for k, node in g.nodes.items():
        for field in ("weight", "bias", "tau", "r", "v_threshold", "v_reset"):
            if hasattr(node, field):
                assert np.array_equal(getattr(again.nodes[k], field), getattr(node, field)), k
    assert torch.equal(snir.load(path)(x), want)


def test_residual_addition_becomes_two_edges_into_one_node():
    g = snir.export(Residual(), torch.rand(1, 2, 2, 6, 6), dt=DT)
    into_flatten = sorted(a for a, b in g.edges if b.startswith("flat"))
    assert into_flatten == ["input", "sn"]  # NIR sums a node's inputs


def test_soft_reset_is_refused_or_carried_in_metadata():
    net = nn.Sequential(nn.Linear(4, 3), neuron.LIF(v_reset=None))
    with pytest.raises(snir.NIRExportError, match="module 1: reset by subtraction"):
        snir.export(net, torch.rand(1, 2, 4))
    g = snir.export(net, torch.rand(1, 2, 4), soft_reset="metadata")
    assert g.nodes["1"].metadata == {"snetx_reset": "subtract"}
    x = torch.rand(3, 9, 4) * 4
    assert torch.equal(snir.load(g)(x), net(x))


@pytest.mark.parametrize(
    "net,shape,message",
    [
        (
            nn.Sequential(Tosnn(nn.MaxPool2d(2)), neuron.LIF()),
            (1, 4, 4),
            r"module 0 \[0\] \(MaxPool2d\)",
        ),
        (nn.Sequential(nn.Linear(4, 4), nn.ReLU()), (4,), r"module 1 \(ReLU\) has no NIR"),
        (nn.Sequential(nn.Flatten(1), nn.Linear(8, 2)), (2, 4), "does not keep the N x T axes"),
    ],
)
def test_what_nir_cannot_represent_is_named(net, shape, message):
    with pytest.raises(snir.NIRExportError, match=message):
        snir.export(net, torch.rand(1, 2, *shape))


def test_operations_between_modules_other_than_add_are_named():
    class Gate(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Linear(4, 4), nn.Linear(4, 4)

        def forward(self, x):
            return self.a(x) * self.b(x)  # SEW's AND: no NIR node

    with pytest.raises(snir.NIRExportError, match="torch operation 'mul'"):
        snir.export(Gate(), torch.rand(1, 2, 4))
    with pytest.raises(snir.NIRExportError, match="N x T x"):
        snir.export(Gate(), torch.rand(2, 4))


def test_load_names_what_it_cannot_run():
    node = nir.Threshold(threshold=np.ones(3))
    g = nir.NIRGraph.from_list(nir.Affine(np.ones((3, 2)), np.zeros(3)), node)
    with pytest.raises(snir.NIRImportError, match=r"\(Threshold\) is not supported"):
        snir.load(g)
    leaky = nir.CubaLIF(tau_syn=np.full(3, 2e-4), tau_mem=np.full(3, 2e-4), r=np.ones(3),
                        v_leak=np.full(3, 0.1), v_threshold=np.ones(3))  # fmt: skip
    g = nir.NIRGraph.from_list(nir.Affine(np.ones((3, 2)), np.zeros(3)), leaky)
    with pytest.raises(snir.NIRImportError, match="v_leak != 0"):
        snir.load(g)
    cyc = nir.NIRGraph(
        nodes={"input": nir.Input(np.array([3])), "a": nir.Affine(np.eye(3), np.zeros(3)),
               "b": nir.Affine(np.eye(3), np.zeros(3)), "output": nir.Output(np.array([3]))},
        edges=[("input", "a"), ("a", "b"), ("b", "a"), ("b", "output")],
    )  # fmt: skip
    with pytest.raises(snir.NIRImportError, match="cycle"):
        snir.load(cyc)


# ---- other libraries run our graphs ---------------------------------------------------------
@pytest.mark.parametrize("build,shape", [(mlp, (20,)), (convnet, (2, 8, 8)), (Residual, (2, 6, 6))])
def test_norse_runs_exported_graphs_with_identical_spikes(build, shape, caplog):
    norse = pytest.importorskip("norse.torch")
    net = build()
    x = currents(shape, seed=3)
    want = net(x)
    assert membranes_near_threshold(net, x) == 0  # no ties: any difference is a bug
    g = snir.export(net, x, dt=DT, pool="sum")  # Norse reads SumPool2d, not AvgPool2d
    with caplog.at_level(logging.WARNING):
        module = norse.from_nir(g, dt=DT)
    assert "is expected to be set to 1" not in caplog.text  # r = 1: nothing ignored
    got = run_stepwise(module, x)
    assert int((got != want).sum()) == 0 and want.sum() > 0


@pytest.mark.parametrize("build,shape", [(mlp, (20,)), (convnet, (2, 8, 8))])
def test_snntorch_runs_exported_graphs_with_identical_spikes(build, shape):
    pytest.importorskip("snntorch")
    import snntorch.utils
    from snntorch.import_nir import import_from_nir

    net = build()
    x = currents(shape, seed=4)
    want = net(x)
    assert membranes_near_threshold(net, x) == 0
    module = import_from_nir(snir.export(net, x, dt=DT))  # its importer assumes dt = 1e-4
    got = run_stepwise(module, x, reset=snntorch.utils.reset)
    assert int((got != want).sum()) == 0 and want.sum() > 0


# ---- we run their graphs --------------------------------------------------------------------
def test_graphs_snntorch_exports_run_in_snetx_with_identical_spikes():
    snn = pytest.importorskip("snntorch")
    import snntorch.utils
    from snntorch.export_nir import export_to_nir

    torch.manual_seed(5)
    net = nn.Sequential(
        nn.Linear(12, 16),
        # per-neuron beta and threshold: snnTorch 1.0 exports scalars with shape ()
        snn.Leaky(beta=torch.full((16,), 0.75), threshold=torch.ones(16),
                  reset_mechanism="zero", init_hidden=True, reset_delay=False),
        nn.Linear(16, 4),
        snn.Leaky(beta=torch.full((4,), 0.5), threshold=torch.ones(4),
                  reset_mechanism="zero", init_hidden=True, reset_delay=False),
    )  # fmt: skip
    _scaled(net, 3.0)
    x = spikes((12,), seed=6)
    g = export_to_nir(net, x[0, 0])
    want = run_stepwise(net, x, reset=snntorch.utils.reset)
    got = snir.load(g, dt=1e-4)(x)
    assert want.sum() > 0 and int((got != want).sum()) == 0


def test_graphs_norse_exports_run_in_snetx_with_identical_spikes():
    norse = pytest.importorskip("norse.torch")
    from norse.torch.functional.lif_box import LIFBoxParameters
    from norse.torch.module.lif_box import LIFBoxCell

    torch.manual_seed(7)
    dt = 1e-3
    p = LIFBoxParameters(tau_mem_inv=torch.tensor(250.0), v_th=torch.tensor(1.0))
    net = norse.SequentialState(nn.Linear(12, 16), LIFBoxCell(p, dt=dt), nn.Linear(16, 4),
                                LIFBoxCell(p, dt=dt))  # fmt: skip
    _scaled(net, 12.0)
    with torch.no_grad():
        for m in (net[0], net[2]):
            m.bias.uniform_(0.5, 2.0)  # depolarised: both layers fire
    x = spikes((12,), seed=8)
    want = run_stepwise(net, x)
    # Norse 1.1's to_nir writes tau = dt / tau_mem_inv: with dt=1 that is NIR's tau
    g = norse.to_nir(net, x[0, 0], dt=1.0)
    got = snir.load(g, dt=dt)(x)
    assert want.sum() > 0 and int((got != want).sum()) == 0


# ---- the neuron family: CubaLIF and recurrence ----------------------------------------------
def recurrent_net(make_neuron, seed=9):
    from snetx.snn import layer

    torch.manual_seed(seed)
    net = nn.Sequential(nn.Linear(10, 16), layer.Recurrent(make_neuron(), 16),
                        nn.Linear(16, 5), neuron.CubaLIF(tau_syn=3.0, tau=2.0))  # fmt: skip
    with torch.no_grad():
        net[0].weight.mul_(3)
        net[1].weight.mul_(2)
        net[2].weight.mul_(3)
    return net.eval()


@pytest.mark.parametrize("make", [lambda: neuron.CubaLIF(tau_syn=2.0, tau=4.0),
                                  lambda: neuron.LIF(tau=3.0)])  # fmt: skip
def test_recurrent_cubalif_network_exports_and_runs_in_norse(make, tmp_path):
    """Linear -> Recurrent(neuron) -> Linear -> CubaLIF, written as snnTorch writes
    recurrent layers (a nested graph neuron <-> w_rec), through an HDF5 file: Norse's
    from_nir and snetx's load give the spikes of the snetx model."""
    norse = pytest.importorskip("norse.torch")
    net = recurrent_net(make)
    x = currents((10,), seed=10)
    want = net(x)
    g = snir.export(net, x, dt=DT)
    assert isinstance(g.nodes["1"], nir.NIRGraph) and isinstance(g.nodes["3"], nir.CubaLIF)
    nir.write(tmp_path / "rec.nir", g)
    g = nir.read(tmp_path / "rec.nir")
    got = run_stepwise(norse.from_nir(g, dt=DT), x)
    assert 0 < want.mean() < 0.9
    assert (got != want).float().mean() <= 0.01  # NIR paper: Norse vs snnTorch 0.2-0.8%
    assert torch.equal(snir.load(g)(x), want)


def test_snntorch_recurrent_synaptic_graphs_load_and_spike_as_norse():
    """A braille-style RNN (Linear -> RSynaptic -> Linear -> RSynaptic) exported by
    snnTorch's own exporter, the one that wrote the NIR paper's braille graphs (whose
    recurrent biases are zero, as here): snetx loads the recurrent CubaLIF graph and
    spikes as Norse's from_nir does."""
    snn = pytest.importorskip("snntorch")
    norse = pytest.importorskip("norse.torch")
    from snntorch.export_nir import export_to_nir

    torch.manual_seed(11)
    net = nn.Sequential(
        nn.Linear(12, 38),
        snn.RSynaptic(alpha=0.6, beta=0.8, linear_features=38, init_hidden=True,
                      reset_mechanism="zero"),
        nn.Linear(38, 7),
        snn.RSynaptic(alpha=0.5, beta=0.7, linear_features=7, init_hidden=True, output=True,
                      reset_mechanism="zero"),
    )  # fmt: skip
    _scaled(net, 2.0)
    with torch.no_grad():
        net[1].recurrent.bias.zero_()
        net[3].recurrent.bias.zero_()
    x = spikes((12,), seed=12, p=0.3)
    g = export_to_nir(net, x[0, 0])
    module = snir.load(g, dt=1e-4)
    assert type(module.layers["1_lif"]).__name__ == "Recurrent"
    got = module(x)
    want = run_stepwise(norse.from_nir(g, dt=1e-4), x)
    assert 0 < got.mean() < 0.9
    assert (got != want).float().mean() <= 0.01


def test_alif_export_is_refused_by_name():
    from snetx.snn import layer

    with pytest.raises(snir.NIRExportError, match="ALIF has no NIR neuron"):
        snir.export(nn.Sequential(nn.Linear(3, 4), neuron.ALIF()), torch.rand(1, 2, 3))
    with pytest.raises(snir.NIRExportError, match="module 1: ALIF has no NIR neuron"):
        snir.export(nn.Sequential(nn.Linear(3, 4), layer.Recurrent(neuron.ALIF(), 4)),
                    torch.rand(1, 2, 3))  # fmt: skip


def test_if_with_a_tiny_input_scale_warns_about_dt():
    """Sinabs writes IF with r = 1 (its step adds the input unscaled: dt = 1); loaded with
    the default dt = 1e-4 it would never spike, so load() says so."""
    g = nir.NIRGraph.from_list(
        nir.Affine(np.ones((3, 2), dtype=np.float32), np.zeros(3, dtype=np.float32)),
        nir.IF(r=np.ones(3), v_threshold=np.ones(3)),
    )
    with pytest.warns(UserWarning, match=r"r\*dt = 0.0001.*dt = 1"):
        snir.load(g)
    x = torch.ones(1, 3, 2)
    assert snir.load(g, dt=1.0)(x).sum() > 0


def test_a_recurrent_weight_that_feeds_more_is_named():
    cuba = nir.CubaLIF(tau_syn=np.full(3, 2e-4), tau_mem=np.full(3, 2e-4), r=np.full(3, 2.0),
                       v_leak=np.zeros(3), v_threshold=np.ones(3),
                       w_in=np.full(3, 2.0))  # fmt: skip
    g = nir.NIRGraph(
        nodes={"input": nir.Input(np.array([2])), "fc": nir.Affine(np.ones((3, 2)), np.zeros(3)),
               "lif": cuba, "w": nir.Linear(np.eye(3)), "output": nir.Output(np.array([3]))},
        edges=[("input", "fc"), ("fc", "lif"), ("lif", "w"), ("w", "lif"), ("w", "output")],
    )  # fmt: skip
    with pytest.raises(snir.NIRImportError, match="feeds lif back"):
        snir.load(g)


def test_the_mapping_is_each_neurons_own():
    """to_nir/from_nir are the neurons' methods; load finds the reader of each NIR type
    through the classes' nir_nodes, and a neuron without a NIR node is refused by name."""
    from snetx.nir._load import _readers

    assert _readers()["LIF"] is neuron.LIF and _readers()["IF"] is neuron.LIF
    assert _readers()["CubaLIF"] is neuron.CubaLIF and "ALIF" not in _readers()
    kind, fields = neuron.CubaLIF(tau_syn=2.0, tau=4.0).to_nir(1e-4, (3,))
    assert kind == "CubaLIF"
    np.testing.assert_allclose(fields["tau_syn"], 2e-4)
    np.testing.assert_allclose(fields["tau_mem"], 4e-4 / 3)
    np.testing.assert_allclose(fields["r"] * 1e-4 / fields["tau_mem"], 1.0)
    np.testing.assert_allclose(fields["w_in"] * 1e-4 / fields["tau_syn"], 1.0)
    back, scale, _ = neuron.CubaLIF.from_nir(nir.CubaLIF(**fields), 1e-4)
    assert (back.tau_syn, back.tau) == pytest.approx((2.0, 4.0)) and scale == pytest.approx(1)
    with pytest.raises(ValueError, match="ALIF has no NIR neuron"):
        neuron.ALIF().to_nir(1e-4, (3,))
