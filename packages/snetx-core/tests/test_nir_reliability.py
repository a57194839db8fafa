"""snetx.nir under unusual but valid models and malformed graphs: graph-input neurons
export and run as the model does, bad graphs are one clear error naming the node."""

import warnings

import numpy as np
import pytest
import torch
from torch import nn

nir = pytest.importorskip("nir")
from snetx import nir as snir  # noqa: E402
from snetx.snn import neuron  # noqa: E402
from snetx.snn.algorithm import Tosnn  # noqa: E402


class InputPlusResidual(nn.Module):
    """lif(fc(x) + x): a neuron reading the graph input through a sum."""

    def __init__(self):
        super().__init__()
        self.fc, self.lif = nn.Linear(8, 8), neuron.LIF()

    def forward(self, x):
        return self.lif(self.fc(x) + x)


MODELS = {
    "neuron on the input": lambda: nn.Sequential(neuron.LIF(), nn.Linear(8, 5), neuron.LIF()),
    "input in a sum": InputPlusResidual,
}


@pytest.mark.parametrize("name", MODELS)
def test_neurons_that_read_the_graph_input_export_and_run_as_the_model(name):
    torch.manual_seed(0)
    model = MODELS[name]().eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # r kept on the input-fed neuron: said in a warning
        graph = snir.export(model, torch.zeros(1, 2, 8))
    assert ("input", "output") not in graph.edges
    x = torch.rand(4, 10, 8) * 3
    out = model(x)
    assert out.sum() > 0  # the comparison means something
    torch.testing.assert_close(snir.load(graph)(x), out, rtol=0, atol=0)


def test_batchnorm_on_the_graph_input_is_a_clear_export_error():
    model = nn.Sequential(Tosnn(nn.BatchNorm1d(8)), neuron.LIF()).eval()
    with pytest.raises(snir.NIRExportError, match="BatchNorm folds into the convolution"):
        snir.export(model, torch.zeros(1, 2, 8))


def test_export_of_an_lstm_is_a_clear_error():
    with pytest.raises(snir.NIRExportError, match="LSTM.*returns tuple.*no NIR equivalent"):
        snir.export(nn.LSTM(8, 4, batch_first=True), torch.zeros(1, 2, 8))


def test_export_leaves_a_stateful_neurons_state_as_it_was():
    lif = neuron.LIF(stateful=True)
    model = nn.Sequential(nn.Linear(8, 8), lif)
    model(torch.rand(1, 3, 8) * 3)
    before = lif.state.clone()
    snir.export(model, torch.rand(1, 2, 8))
    assert torch.equal(lif.state, before)
    lif.reset()
    snir.export(model, torch.rand(1, 2, 8))
    assert lif.state is None


def _graph(nodes, edges):
    return nir.NIRGraph(nodes=nodes, edges=edges)


def test_input_wired_straight_to_output_is_the_identity():
    g = _graph({"input": nir.Input(np.array([3])), "output": nir.Output(np.array([3]))},
               [("input", "output")])  # fmt: skip
    x = torch.rand(2, 4, 3)
    assert torch.equal(snir.load(g)(x), x)


def _affine(w=None, b=None):
    w = np.ones((3, 3), dtype=np.float32) if w is None else w
    return nir.Affine(weight=w, bias=np.zeros(3, dtype=np.float32) if b is None else b)


def _lif(**kw):
    f = dict(tau=np.full(3, 1e-3), r=np.ones(3), v_leak=np.zeros(3), v_threshold=np.ones(3),
             v_reset=np.zeros(3))  # fmt: skip
    f.update(kw)
    return nir.LIF(**f)


@pytest.mark.parametrize(
    "nodes,edges,expected",
    [
        (
            {"a": _affine(), "b": _affine()},
            [("input", "a"), ("input", "b"), ("a", "output"), ("b", "output")],
            "Output node 'output' has 2 sources",
        ),
        ({"a": _affine(b=np.zeros(5, dtype=np.float32))}, [("input", "a"), ("a", "output")],
         r"node a: bias has shape \(5,\), expected \(3,\)"),
        ({"a": _affine(w=np.full((3, 3), np.nan, dtype=np.float32))},
         [("input", "a"), ("a", "output")], "node a: weight holds NaN or infinite"),
        ({"a": _affine(b=np.array([0, np.inf, 0], dtype=np.float32))},
         [("input", "a"), ("a", "output")], "node a: bias holds NaN or infinite"),
        ({"n": _lif(tau=np.array([1e-3, np.nan, 1e-3]))}, [("input", "n"), ("n", "output")],
         "node n: tau holds NaN or infinite"),
        ({"n": _lif(v_threshold=np.array([1.0, np.nan, 1.0]))}, [("input", "n"), ("n", "output")],
         "node n: v_threshold holds NaN or infinite"),
    ],
)  # fmt: skip
def test_malformed_graphs_name_the_node_and_field(nodes, edges, expected):
    nodes = {"input": nir.Input(np.array([3])), **nodes, "output": nir.Output(np.array([3]))}
    with pytest.raises(snir.NIRImportError, match=expected):
        snir.load(_graph(nodes, edges))


@pytest.mark.parametrize("dt", [np.float32(1e-4), np.float64(1e-4), torch.tensor(1e-4), 1e-4])
def test_dt_may_be_any_real_number_type(dt):
    g = _graph({"input": nir.Input(np.array([3])), "n": _lif(tau=np.full(3, 1e-3)),
                "output": nir.Output(np.array([3]))},
               [("input", "n"), ("n", "output")])  # fmt: skip
    x = torch.full((1, 3, 3), 20.0)
    # tau = 10 dt: decay 0.9, input scale 0.1: 2 then 2 + 1.8 -> fires at step 1
    assert snir.load(g, dt=dt)(x)[0, :, 0].tolist() == [1.0, 1.0, 1.0]
    with pytest.raises(ValueError, match="dt must be a finite number > 0"):
        snir.load(g, dt=torch.tensor(float("nan")))
