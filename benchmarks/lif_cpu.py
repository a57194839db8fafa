"""Fused LIF vs the plain autograd loop on CPU (float32): time and saved-for-backward bytes.

    python benchmarks/lif_cpu.py [--threads 2] [--repeats 7]

Rows: the fused path with the host C++ kernel and with eager torch ops. Every ratio
is against the plain autograd loop measured in the same run. A second table times the
forward alone without a graph (evaluation, torch.no_grad), where nothing is saved and the
host kernel keeps nothing, against the same forward recording a graph. A third table times
the neuron rules on the default path, fwd+bwd, against the hard-reset LIF in the same run:
soft reset, PLIF (a learned decay) and a stateful LIF fed T in 4 chunks with the state
handed over.
"""

import argparse
import os
import sys
import time
from functools import partial

import torch

sys.path.insert(0, os.path.dirname(__file__))
from _util import markdown_table, median_time, saved_bytes  # noqa: E402
from snetx.snn import (  # noqa: E402
    _host_kernel,
    family,  # noqa: E402
    neuron,
    surrogate,
)
from snetx.snn import functional as F  # noqa: E402
from snetx.snn._fused import Rule  # noqa: E402

SHAPES = [(32, 4, 32768), (16, 16, 65536)]


def fused(x):
    rule = Rule(family.LIF, (1.0, 0.0), False, surrogate.arc_tan, 4.0, False)
    return F.Fused.apply(x, None, torch.full((1, x[0, 0].numel()), 0.5), rule)[0]


def loop(x):
    return F.lif_loop(x, 2.0, 1.0, 0.0, surrogate.arc_tan, 4.0, False)


def chunked(mod, chunks=4):
    """A stateful module fed the sequence in ``chunks`` pieces along T (state handed over)."""

    def run(x):
        mod.reset()
        return torch.cat([mod(c) for c in x.chunk(chunks, dim=1)], 1)

    return run


RULES = {
    "LIF (hard reset)": lambda: neuron.LIF(),
    "LIF soft reset": lambda: neuron.LIF(v_reset=None),
    "PLIF (learned decay)": lambda: neuron.PLIF(),
    "LIF, T in 4 chunks": lambda: chunked(neuron.LIF(stateful=True)),
}


def rules_table(shapes, repeats):
    rows = []
    for shape in shapes:
        x = (torch.rand(shape) * 1.5).requires_grad_()
        g = torch.randn(shape)
        base = None
        for name, make in RULES.items():
            fn = make()
            t = median_time(fwd_bwd(fn, x, g), repeats=repeats)
            base = base or t
            b = saved_bytes(fn, x)
            rows.append(
                [
                    "x".join(map(str, shape)),
                    name,
                    f"{t * 1e3:.1f}",
                    f"{t / base:.2f}x",
                    f"{b / 2**20:.1f}",
                ]
            )
    return markdown_table(["N x T x D", "neuron", "fwd+bwd ms", "vs LIF (hard)", "saved MiB"], rows)


def fwd_bwd(fn, x, g):
    def run():
        x.grad = None
        fn(x).backward(g)

    return run


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=7)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    t0 = time.perf_counter()
    compiled = _host_kernel.available()
    first_call = time.perf_counter() - t0
    rows, eval_rows = [], []
    for shape in SHAPES:
        x = (torch.rand(shape) * 1.5).requires_grad_()
        g = torch.randn(shape)
        t_loop = median_time(fwd_bwd(loop, x, g), repeats=args.repeats)
        b_loop = saved_bytes(loop, x)
        modes = ["host", "eager"] if compiled else ["eager"]
        for mode in modes:
            _host_kernel.set_mode(mode)
            t = median_time(fwd_bwd(fused, x, g), repeats=args.repeats)
            b = saved_bytes(fused, x)
            t_graph = median_time(partial(F.lif, x), repeats=args.repeats)
            with torch.no_grad():
                t_eval = median_time(partial(F.lif, x), repeats=args.repeats)
                t_loop_eval = median_time(partial(loop, x), repeats=args.repeats)
            eval_rows.append(
                [
                    "x".join(map(str, shape)),
                    f"fused ({mode})",
                    f"{t_loop_eval * 1e3:.1f}",
                    f"{t_graph * 1e3:.1f}",
                    f"{t_eval * 1e3:.1f}",
                    f"{t_loop_eval / t_eval:.2f}x",
                    f"{t_graph / t_eval:.2f}x",
                ]
            )
            rows.append(
                [
                    "x".join(map(str, shape)),
                    f"fused ({mode})",
                    f"{t_loop * 1e3:.1f}",
                    f"{t * 1e3:.1f}",
                    f"{t_loop / t:.2f}x",
                    f"{b_loop / 2**20:.1f}",
                    f"{b / 2**20:.1f}",
                    f"{b / b_loop:.3f}",
                ]
            )
        _host_kernel.set_mode("auto")
    head = (
        f"torch {torch.__version__}, {args.threads} threads, float32, median of {args.repeats}; "
        f"host C++ kernel {'available' if compiled else 'unavailable'} "
        f"(first call {first_call:.2f} s incl. build or cache load)"
    )
    table = markdown_table(
        [
            "N x T x D",
            "path",
            "loop fwd+bwd ms",
            "fused fwd+bwd ms",
            "speed-up",
            "loop saved MiB",
            "fused saved MiB",
            "saved ratio",
        ],
        rows,
    )
    eval_table = markdown_table(
        [
            "N x T x D",
            "path",
            "loop no-grad fwd ms",
            "fused fwd with graph ms",
            "fused no-grad fwd ms",
            "vs loop",
            "vs with graph",
        ],
        eval_rows,
    )
    rules = rules_table(SHAPES, args.repeats)
    print(head)
    print(table)
    print()
    print(eval_table)
    print()
    print(rules)
    return (
        head
        + "\n\n"
        + table
        + "\n\nForward without a graph (evaluation):\n\n"
        + eval_table
        + "\n\nNeuron rules, default path, fwd+bwd (ratios against the hard-reset LIF):\n\n"
        + rules
    )


if __name__ == "__main__":
    main()
