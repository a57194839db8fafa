"""Benchmark results as data: ``RESULTS.json`` (written by ``run_all.py`` next to
``RESULTS.md``) and the charts the documentation draws from it.

The JSON holds ``meta`` (date, machine, versions, threads, copy bandwidth, allocator),
``lif_cpu`` (one record per shape and library: ``shape``, ``library``, ``ms``,
``vs_fastest_snetx``, ``vs_roofline``, ``saved_mib``), ``kernel_cpu`` (the host kernels
alone, per shape: ``shape``, ``forward_ms``, ``backward_ms``, ``vs_roofline``) and
``train_step`` (``library``, ``ms``, ``images_per_s``, ``vs_snetx``). Charts read these
fields by name, never by parsing Markdown.
"""

import json
from pathlib import Path

HERE = Path(__file__).resolve().parent
JSON = HERE / "RESULTS.json"


def load(path=JSON):
    return json.loads(Path(path).read_text())


def lif_chart(data, ax):
    """Grouped bars: one group per shape (x axis), one bar per library (legend)."""
    rows = data["lif_cpu"]
    shapes = list(dict.fromkeys(r["shape"] for r in rows))
    libraries = list(dict.fromkeys(r["library"] for r in rows))
    width = 0.8 / len(libraries)
    for i, lib in enumerate(libraries):
        ms = [next((r["ms"] for r in rows if r["shape"] == s and r["library"] == lib), 0.0)
              for s in shapes]  # fmt: skip
        ax.bar([k + i * width for k in range(len(shapes))], ms, width, label=lib)
    ax.set_xticks([k + 0.4 - width / 2 for k in range(len(shapes))], shapes)
    ax.set(xlabel="N x T x D", ylabel="fwd+bwd ms (median, lower is better)", yscale="log")
    ax.legend(fontsize=7)
    return shapes, libraries


def train_chart(data, ax):
    """Horizontal bars: one training step per library."""
    rows = data["train_step"]
    ax.barh([r["library"] for r in rows], [r["ms"] for r in rows])
    ax.set(xlabel="training step ms (median, lower is better)")
    return [r["library"] for r in rows]


def caption(data):
    m = data["meta"]
    return (
        f"{m['machine']}, {m['threads']} threads, float32, copy bandwidth "
        f"{m['bandwidth_gbs']:.1f} GB/s, {m['allocator']} allocator ({m['date']})"
    )
