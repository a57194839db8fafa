"""Training memory: snetx vs SpikingJelly (default, and with its ``memopt``), CPU.

    python benchmarks/memory.py [--T 4 8 16] [--threads 2] [--repeats 3] [--quick]
                                [--device cuda]

For SEW-ResNet-18 (ImageNet stem, 64x64 inputs, batch 8, ADD connections) and VGGSNN
(2 x 48 x 48 event frames, batch 8), at each T, one training step of:

- ``sj``: SpikingJelly's own ``sew_resnet18`` and the same VGG built from its layers
  (``layer.Conv2d``/``BatchNorm2d``/``AvgPool2d``, ``neuron.LIFNode`` configured to
  snetx's LIF as in ``compare.py``, multi-step, ``torch`` backend);
- ``sj-memopt``: the same with ``memopt.optimize_memory(level=1)`` (every block, or every
  conv-norm-neuron unit of the VGG, checkpointed, binary inputs compressed to bits:
  level 1 is the level that runs without CUDA);
- ``snetx-plain``: snetx's model with compact saving off (``memory.compact(False)``);
- ``snetx``: the default (packed spike inputs, one tensor for BatchNorm + neuron);
- ``snetx-ckpt``: ``memory.checkpoint`` around each block / unit (opt-in).

Columns: **saved MiB**, the distinct storages autograd keeps (through
``torch.autograd.graph.saved_tensors_hooks``), parameters and the input left out;
**kept MiB**, the process heap the backward releases (glibc ``mallinfo2`` after forward
less after backward: it sees what the hooks do not, e.g. a checkpoint's kept inputs);
**peak MiB**, the heap's peak above the start during forward+backward (sampled every
1 ms); **step s**, the median training step. snetx's host-kernel buffer
pool is off here (``SNETX_BUFFER_POOL=0``) so that every buffer is an allocation.
With ``--device cuda`` the counts are ``torch.cuda``'s allocator's, SpikingJelly runs its
own fused GPU kernels and snetx the ``snetx.cuend`` neurons.
"""

import argparse
import ctypes
import os
import sys
import threading
import time
import warnings

os.environ["SNETX_BUFFER_POOL"] = "0"

import torch  # noqa: E402
from torch import nn  # noqa: E402

sys.path.insert(0, os.path.dirname(__file__))
from _util import markdown_table, saved_bytes  # noqa: E402
from snetx.models import sew_resnet  # noqa: E402
from snetx.models.vggsnn import LAYERS, VGGSNN  # noqa: E402
from snetx.snn import memory  # noqa: E402

warnings.filterwarnings("ignore")
TAU, ALPHA = 2.0, 4.0
MODELS = {"sew_resnet18": (3, 64), "vggsnn": (2, 48)}
BATCH = 8


# ---- heap accounting ---------------------------------------------------------------------
class _Mallinfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
        "fordblks", "keepcost",
    )]


_libc = ctypes.CDLL("libc.so.6")
_libc.mallinfo2.restype = _Mallinfo2


def heap():
    """Bytes allocated through malloc now (the heap's in-use chunks and mmapped blocks)."""
    m = _libc.mallinfo2()
    return m.uordblks + m.hblkhd


class PeakSampler:
    def __init__(self, period=1e-3):
        self.period, self.peak, self._stop = period, 0, False

    def __enter__(self):
        self.base = heap()
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()
        return self

    def _run(self):
        while not self._stop:
            self.peak = max(self.peak, heap() - self.base)
            time.sleep(self.period)

    def __exit__(self, *exc):
        self._stop = True
        self._t.join()


def _allocated(x):
    if x.is_cuda:
        torch.cuda.synchronize()
        return torch.cuda.memory_allocated()
    return heap()


def kept_bytes(net, x):
    """What the backward releases: the allocated memory after forward less after backward
    (gradients exist at both points, from the warm-up)."""
    out = net(x)
    loss = out.sum()
    after_forward = _allocated(x)
    loss.backward()
    del out, loss
    return after_forward - _allocated(x)


def peak_bytes(net, x):
    if x.is_cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        net(x).sum().backward()
        torch.cuda.synchronize()
        return torch.cuda.max_memory_allocated() - base
    with PeakSampler() as s:
        net(x).sum().backward()
    return s.peak


# ---- the networks ------------------------------------------------------------------------
#: the device of the run ("cuda": snetx's neurons are snetx.cuend's)
DEVICE = ["cpu"]


def sj_neuron():
    from spikingjelly.activation_based import neuron, surrogate

    # SpikingJelly 2.0 picks its fused kernels on a GPU by itself
    return neuron.LIFNode(
        tau=1 / (1 - 1 / TAU), decay_input=False, v_threshold=1.0, v_reset=0.0,
        surrogate_function=surrogate.ATan(alpha=ALPHA), detach_reset=False, step_mode="m",
    )


def snetx_neuron():
    if DEVICE[0] == "cuda":
        from snetx.cuend.neuron import LIF

        return LIF
    from snetx.snn.neuron import LIF

    return LIF


class TimeFirst(nn.Module):
    """SpikingJelly's multi-step layout is T x N: transpose outside the timed region is
    not possible inside a model, so the wrapper transposes (a view, no copy kept)."""

    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x):
        from spikingjelly.activation_based import functional

        functional.reset_net(self.net)
        return self.net(x.transpose(0, 1)).transpose(0, 1)


def sj_sew():
    from spikingjelly.activation_based import functional
    from spikingjelly.activation_based.model import sew_resnet

    net = sew_resnet.sew_resnet18(spiking_neuron=lambda **kw: sj_neuron(), cnf="ADD",
                                  num_classes=10)
    functional.set_step_mode(net, "m")
    return TimeFirst(net), (sew_resnet.BasicBlock,)


class Unit(nn.Sequential):
    """conv -> norm -> neuron: the unit memopt checkpoints in the VGG."""


def sj_vgg():
    from spikingjelly.activation_based import functional, layer

    units, c = [], 2
    for v in LAYERS:
        if v == "A":
            units.append(layer.AvgPool2d(2))
        else:
            units.append(Unit(layer.Conv2d(c, v, 3, padding=1), layer.BatchNorm2d(v),
                              sj_neuron()))
            c = v
    net = nn.Sequential(*units, layer.Flatten(1), layer.Linear(c * 9, 10))
    functional.set_step_mode(net, "m")
    return TimeFirst(net), (Unit,)


def sj_memopt(build, x):
    from spikingjelly.activation_based.memopt import optimize_memory

    net, targets = build()
    optimize_memory(net.net, targets, lambda m: m(x.transpose(0, 1)), level=1)
    return net


def snetx_net(name):
    torch.manual_seed(0)
    if name == "sew_resnet18":
        return sew_resnet.SEWResNet(sew_resnet.basic_block, [2, 2, 2, 2], num_classes=10,
                                    connect="ADD", stem="imagenet", neuron=snetx_neuron())
    return VGGSNN(num_classes=10, input_size=48, neuron=snetx_neuron())


class Compact(nn.Module):
    def __init__(self, net, on):
        super().__init__()
        self.net, self.on = net, on

    def forward(self, x):
        with memory.compact(self.on):
            return self.net(x)


def configs(name, x):
    sj = sj_sew if name == "sew_resnet18" else sj_vgg
    dev = x.device
    return {
        "sj": lambda: sj()[0].to(dev),
        "sj-memopt": lambda: sj_memopt(lambda: (lambda n, t: (n.to(dev), t))(*sj()), x),
        "snetx-plain": lambda: Compact(snetx_net(name), False).to(dev),
        "snetx": lambda: snetx_net(name).to(dev),
        "snetx-ckpt": lambda: memory.checkpoint_layers(snetx_net(name)).to(dev),
    }


def median_step(net, x, repeats):
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        net(x).sum().backward()
        if x.is_cuda:
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return sorted(times)[len(times) // 2]


def run(name, T, repeats, device="cpu"):
    c, hw = MODELS[name]
    torch.manual_seed(1)
    x = torch.rand(BATCH, T, c, hw, hw, device=device)
    rows = {}
    for label, build in configs(name, x).items():
        try:
            net = build()
        except ImportError as e:  # SpikingJelly (or CuPy) not installed here
            print(f"{label}: skipped ({e})", file=sys.stderr)
            continue
        net(x).sum().backward()  # warm-up: kernels built, buffers touched
        rows[label] = [
            saved_bytes(net, x, (*net.parameters(), *net.buffers())) / 2**20,
            kept_bytes(net, x) / 2**20,
            peak_bytes(net, x) / 2**20,
            median_step(net, x, repeats),
        ]
        del net
    return rows


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--T", type=int, nargs="+", default=[4, 8, 16])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    p.add_argument("--quick", action="store_true", help="T=4 only, one repeat")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"],
                   help="cuda: torch.cuda's allocator counts, SpikingJelly's GPU kernels "
                        "and snetx.cuend's neurons")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    DEVICE[0] = args.device
    Ts, repeats = ([4], 1) if args.quick else (args.T, args.repeats)
    for name in args.models:
        table = []
        for T in Ts:
            rows = run(name, T, repeats, args.device)
            base = rows.get("sj", rows["snetx-plain"])
            for label, (s, k, pk, t) in rows.items():
                table.append([T, label, f"{s:.1f}", f"{k:.1f}", f"{k / base[1]:.2f}x",
                              f"{pk:.1f}", f"{t:.2f}"])
            print(f"{name} T={T} done", file=sys.stderr, flush=True)
        print(f"\n### {name} (batch {BATCH}, {args.device})\n")
        print(markdown_table(["T", "config", "saved MiB", "kept MiB", "kept vs sj",
                              "peak MiB", "step s"], table))


if __name__ == "__main__":
    main()
