"""GPU LIF: snetx.cuend vs snetx.snn (torch path) vs SpikingJelly's fused multi-step LIF.

    python benchmarks/lif_gpu.py [--max-log2 27] [--out results.md]

Forward, backward and fwd+bwd medians (CUDA events) at 2^20..2^27 elements, T in
{4, 8, 16}, float32 and bfloat16. Achieved GB/s counts the minimal traffic (forward:
x, h, s; backward: h, grad_s, grad_x; 3 elements each) and is compared with a
device-to-device copy's bandwidth measured in the same run.
"""

import argparse
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(__file__))
from _util import markdown_table
from snetx.cuend import neuron as cu
from snetx.snn import functional as F


def cuda_time(fn, repeats=20, warmup=3):
    for _ in range(warmup):
        fn()
    start = [torch.cuda.Event(enable_timing=True) for _ in range(repeats)]
    end = [torch.cuda.Event(enable_timing=True) for _ in range(repeats)]
    for i in range(repeats):
        start[i].record()
        fn()
        end[i].record()
    torch.cuda.synchronize()
    times = sorted(s.elapsed_time(e) / 1e3 for s, e in zip(start, end))
    return times[len(times) // 2]


def copy_gbs(nbytes):
    a = torch.empty(nbytes // 4, device="cuda")
    b = torch.empty_like(a)
    return 2 * nbytes / cuda_time(lambda: b.copy_(a)) / 1e9


def spikingjelly_lif(T):
    """SpikingJelly's multi-step LIFNode matched to snetx (see compare.py); it picks its
    own fused backend on CUDA. None when not installed."""
    try:
        from compare import spikingjelly_lif as make
    except ImportError:
        return None
    try:
        return make()[0]
    except ImportError:
        return None


def paths(T):
    out = {
        "snetx.cuend": lambda x: cu.lif(x),
        "snetx.snn": lambda x: F.lif(x),
    }
    sj = spikingjelly_lif(T)
    if sj is not None:
        out["spikingjelly"] = sj
    return out


def measure(fn, x, g):
    x = x.detach().requires_grad_()
    fwd = cuda_time(lambda: fn(x))
    y = fn(x)
    bwd = cuda_time(lambda: torch.autograd.grad(y, x, g, retain_graph=True))
    both = cuda_time(lambda: torch.autograd.grad(fn(x), x, g))
    return fwd, bwd, both


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--min-log2", type=int, default=20)
    p.add_argument("--max-log2", type=int, default=27)
    p.add_argument("--out", default=None)
    args = p.parse_args(argv)
    if not torch.cuda.is_available():
        sys.exit("lif_gpu.py needs a CUDA device")
    peak = copy_gbs(1 << 30)
    rows = []
    for dtype in (torch.float32, torch.bfloat16):
        esize = torch.empty((), dtype=dtype).element_size()
        for log2 in range(args.min_log2, args.max_log2 + 1):
            for T in (4, 8, 16):
                n = 1 << log2
                x = (torch.rand(16, T, n // (16 * T), device="cuda") * 1.5).to(dtype)
                g = torch.randn_like(x)
                base = None
                for name, fn in paths(T).items():
                    inp, grad = (
                        (x, g)
                        if name != "spikingjelly"
                        else (x.transpose(0, 1).contiguous(), g.transpose(0, 1).contiguous())
                    )
                    fwd, bwd, both = measure(fn, inp, grad)
                    gbs = 6 * n * esize / both / 1e9
                    base = base or both
                    rows.append(
                        [
                            str(dtype).split(".")[1],
                            f"2^{log2}",
                            T,
                            name,
                            f"{fwd * 1e3:.3f}",
                            f"{bwd * 1e3:.3f}",
                            f"{both * 1e3:.3f}",
                            f"{gbs:.0f}",
                            f"{gbs / peak:.0%}",
                            f"{both / base:.2f}x",
                        ]
                    )
                del x, g
    table = markdown_table(
        [
            "dtype",
            "elements",
            "T",
            "path",
            "fwd ms",
            "bwd ms",
            "fwd+bwd ms",
            "GB/s",
            "of copy",
            "time vs cuend",
        ],
        rows,
    )
    head = f"{torch.cuda.get_device_name()}, copy bandwidth {peak:.0f} GB/s\n\n"
    print(head + table)
    if args.out:
        with open(args.out, "w") as f:
            f.write(head + table + "\n")


if __name__ == "__main__":
    main()
