"""The neuron family on the CPU (float32, fwd+bwd, median of repeats, one process):

    python benchmarks/neurons_cpu.py [--threads 2] [--repeats 5] [--peers PATH]

Table 1: CubaLIF and ALIF against LIF on the host kernel at the LIF benchmark shapes (time
per element as a ratio to the LIF's, measured in the same run).
Table 2: a recurrent layer over LIF at 256 units, T = 250, batch 64 (an SHD-sized layer):
snetx ``layer.Recurrent`` against snnTorch ``RLeaky(all_to_all=True)`` and SpikingJelly's
``LinearRecurrentContainer`` around a single-step ``LIFNode`` (its recurrent layer), each
a whole sequence forward and backward. Peers missing from the environment are skipped;
``--peers`` adds a folder to ``sys.path`` (a ``pip install --target`` of them).
"""

import argparse
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(__file__))
from _util import markdown_table, median_time  # noqa: E402

SHAPES = [(32, 4, 32768), (16, 16, 65536)]


def fwd_bwd(fn, x):
    def run():
        x.grad = None
        fn(x).sum().backward()

    return run


def family_table(repeats):
    from snetx.snn import neuron

    rows = []
    for shape in SHAPES:
        x = (torch.rand(shape) * 1.5).requires_grad_()
        times = {}
        for name in ("LIF", "CubaLIF", "ALIF"):
            times[name] = median_time(fwd_bwd(getattr(neuron, name)(), x), repeats) * 1e3
        for name, ms in times.items():
            rows.append(["x".join(map(str, shape)), name, f"{ms:.1f}", f"{ms / times['LIF']:.2f}"])
    return markdown_table(["shape", "neuron", "fwd+bwd ms", "vs LIF"], rows)


def recurrent_runs(n, T, f):
    from snetx.snn import layer, neuron

    runs = {"snetx Recurrent(LIF)": layer.Recurrent(neuron.LIF(tau=2.0), f)}
    try:
        import snntorch as snn

        rleaky = snn.RLeaky(beta=0.5, linear_features=f, all_to_all=True)

        def snntorch_run(x):
            spk, mem = rleaky.init_rleaky()
            out = []
            for t in range(x.shape[1]):
                spk, mem = rleaky(x[:, t], spk, mem)
                out.append(spk)
            return torch.stack(out, 1)

        runs["snnTorch RLeaky"] = snntorch_run
    except ImportError:
        pass
    try:
        from spikingjelly.activation_based import functional as sjf
        from spikingjelly.activation_based import layer as sjl
        from spikingjelly.activation_based import neuron as sjn

        container = sjl.LinearRecurrentContainer(sjn.LIFNode(tau=2.0), f, f, bias=False)

        def sj_run(x):
            sjf.reset_net(container)
            return torch.stack([container(x[:, t]) for t in range(x.shape[1])], 1)

        runs["SpikingJelly LinearRecurrentContainer"] = sj_run
    except ImportError:
        pass
    return runs


def recurrent_table(repeats, n=64, T=250, f=256):
    x = (torch.rand(n, T, f) * 0.6).requires_grad_()
    times = {name: median_time(fwd_bwd(fn, x), repeats) * 1e3
             for name, fn in recurrent_runs(n, T, f).items()}  # fmt: skip
    ours = times["snetx Recurrent(LIF)"]
    rows = [[name, f"{ms:.1f}", f"{ms / ours:.2f}"] for name, ms in times.items()]
    return markdown_table([f"{n}x{T}x{f} recurrent layer", "fwd+bwd ms", "vs snetx"], rows)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--peers", default=None, help="a folder holding snntorch / spikingjelly")
    args = p.parse_args(argv)
    if args.peers:
        sys.path.insert(0, args.peers)
    torch.set_num_threads(args.threads)
    print(tables(args.repeats))


def tables(repeats):
    return family_table(repeats) + "\n\n" + recurrent_table(repeats)


if __name__ == "__main__":
    main()
