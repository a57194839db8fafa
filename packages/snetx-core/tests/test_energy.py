"""Synaptic operations and energy against counts worked out by hand."""

import pytest
import torch
from snetx.snn import algorithm, energy, neuron
from torch import nn


def test_conv_on_a_known_spike_pattern():
    conv = nn.Conv2d(1, 2, 3, padding=1)
    x = torch.zeros(1, 1, 4, 4)
    x[0, 0, 1, 2] = x[0, 0, 3, 0] = x[0, 0, 0, 0] = 1  # 3 spikes of 16 inputs
    with energy.SynapticOpsCounter(conv) as c:
        conv(x)
    r = c.report()
    # dense: 2 x 4 x 4 outputs x (1 channel x 3 x 3) = 288 MACs; spikes: 288 x 3/16 ACs
    assert r["layers"][""]["ac"] == pytest.approx(288 * 3 / 16)
    assert r["totals"]["mac"] == 0 and r["layers"][""]["spike_input"]
    assert r["totals"]["energy_pj"] == pytest.approx(54 * 0.9)


def test_linear_real_input_counts_macs_and_per_sample():
    fc = nn.Linear(5, 3)
    with energy.SynapticOpsCounter(fc, e_mac=2.0) as c:
        fc(torch.randn(4, 5))  # 4 samples of real values
    r = c.report()
    assert r["samples"] == 4
    assert r["totals"]["mac"] == 15 and r["totals"]["ac"] == 0  # 3 x 5 per sample
    assert r["totals"]["energy_pj"] == 30


def test_average_pool_adds_only_arriving_spikes():
    pool = nn.AvgPool2d(2)
    x = torch.zeros(1, 1, 4, 4)
    x[0, 0, :2, :2] = 1  # 4 spikes
    with energy.SynapticOpsCounter(pool) as c:
        pool(x)
    # 4 outputs x 4 inputs each = 16 dense additions; 4/16 of the inputs spike
    assert c.report()["totals"]["ac"] == 4


def test_network_over_time_encoding_layer_is_mac_the_rest_ac():
    torch.manual_seed(0)
    T, n = 3, 2
    net = nn.Sequential(
        algorithm.DirectEncoder(T),
        algorithm.Tosnn(nn.Linear(6, 8)),  # real input: MAC
        neuron.LIF(),
        algorithm.Tosnn(nn.Linear(8, 4)),  # spikes: AC
    )
    x = torch.rand(n, 6) * 3
    with energy.SynapticOpsCounter(net) as c:
        net(x)
    spikes = net[:3](x)
    r = c.report()
    assert r["samples"] == n
    assert r["layers"]["1.module"]["mac"] == pytest.approx(T * 8 * 6)  # per sample, all steps
    rate = spikes.mean().item()
    assert r["layers"]["3.module"]["ac"] == pytest.approx(T * 4 * 8 * rate)
    assert r["layers"]["3.module"]["input_rate"] == pytest.approx(rate)
    assert "| total |" in c.table()


def test_energy_parameters_are_checked():
    with pytest.raises(ValueError, match="e_ac must be a finite number >= 0"):
        energy.SynapticOpsCounter(nn.Linear(2, 2), e_ac=-1)
