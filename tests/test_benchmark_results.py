"""The benchmark charts draw what RESULTS.json holds: shapes on the x axis, libraries in
the legend, each bar the median time of its (shape, library) record."""

import sys
from pathlib import Path

import pytest

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import results  # noqa: E402


def test_the_lif_chart_draws_the_records():
    data = results.load()
    fig, ax = plt.subplots()
    shapes, libraries = results.lif_chart(data, ax)
    assert [t.get_text() for t in ax.get_xticklabels()] == shapes
    assert all("x" in s and s.replace("x", "").isdigit() for s in shapes)
    assert [t.get_text() for t in ax.get_legend().get_texts()] == libraries
    assert "snetx (host)" in libraries and "SpikingJelly" in libraries
    heights = {}
    for container, lib in zip(ax.containers, libraries):
        for bar, shape in zip(container, shapes):
            heights[(shape, lib)] = bar.get_height()
    for r in data["lif_cpu"]:
        assert heights[(r["shape"], r["library"])] == r["ms"]
    plt.close(fig)


def test_the_training_chart_and_caption():
    data = results.load()
    fig, ax = plt.subplots()
    libs = results.train_chart(data, ax)
    assert [t.get_text() for t in ax.get_yticklabels()] == libs == [
        r["library"] for r in data["train_step"]
    ]
    caption = results.caption(data)
    assert f"{data['meta']['bandwidth_gbs']:.1f} GB/s" in caption and caption.count(",") >= 3
    plt.close(fig)
