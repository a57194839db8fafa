"""GPU LIF: snetx.cuend vs snetx.snn (torch path) vs SpikingJelly's fused multi-step LIF.

    python benchmarks/lif_gpu.py [--min-log2 20] [--max-log2 27] [--out results.md]

Forward, backward and fwd+bwd medians (CUDA events) at 2^20..2^27 elements, T in
{4, 8, 16}, float32 and bfloat16. Achieved GB/s counts the minimal traffic of each pass
(forward: read x, write s, 2 elements; backward: read x and grad_s, write grad_x, 3
elements, the charges recomputed from x; snetx.cuend's checkpoints, one state value per 8
steps, are not counted; a forward under torch.no_grad: 2) and is compared with a
device-to-device copy's bandwidth measured in the same run.
The last section checks snetx-cuda's targets: >= 85% of copy bandwidth per pass at
>= 2^25 elements, >= 10x the torch path (fwd+bwd) at T=16, faster than SpikingJelly.
SpikingJelly is compared when installed (its dynamics matched as in compare.py); it picks
its own CUDA implementation (native, Triton or torch), named in the output.
"""

import argparse
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(__file__))
from _util import markdown_table
from snetx.cuend import neuron as cu
from snetx.snn import functional as F

BW_TARGET, TORCH_TARGET, BIG = 0.85, 10.0, 25


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


def spikingjelly_lif():
    """SpikingJelly's multi-step LIFNode matched to snetx (see compare.py), or None."""
    try:
        from compare import spikingjelly_lif as make

        return make()[0]
    except ImportError:
        return None


def spikingjelly_implementation():
    """Which CUDA implementation SpikingJelly selected (private API; best effort)."""
    try:
        from spikingjelly._ops.lif import _selection

        return ", ".join(sorted({s.name for s in _selection._selections.values()})) or "?"
    except Exception:
        return "?"


def paths():
    out = {"snetx.cuend": lambda x: cu.lif(x), "snetx.snn": lambda x: F.lif(x)}
    sj = spikingjelly_lif()
    if sj is not None:
        out["spikingjelly"] = sj
    return out


def measure(fn, x, g):
    x = x.detach().requires_grad_()
    fwd = cuda_time(lambda: fn(x))
    y = fn(x)
    bwd = cuda_time(lambda: torch.autograd.grad(y, x, g, retain_graph=True))
    both = cuda_time(lambda: torch.autograd.grad(fn(x), x, g))
    with torch.no_grad():
        ev = cuda_time(lambda: fn(x))
    return fwd, bwd, both, ev


def targets(results, peak):
    """Lines saying whether each target of snetx-cuda is met, with the numbers."""
    lines = []
    big = [r for r in results if r["path"] == "snetx.cuend" and r["log2"] >= BIG]
    if big:
        worst = min(big, key=lambda r: min(r["fwd_gbs"], r["bwd_gbs"]))
        frac = min(worst["fwd_gbs"], worst["bwd_gbs"]) / peak
        lines.append(
            f"- bandwidth >= {BW_TARGET:.0%} of copy at >= 2^{BIG} elements: "
            f"{'met' if frac >= BW_TARGET else 'NOT met'} (worst {frac:.0%}: "
            f"{worst['dtype']} 2^{worst['log2']} T={worst['T']})"
        )
    for other, target, what in (
        ("snetx.snn", TORCH_TARGET, "x the torch path (fwd+bwd, T=16)"),
        ("spikingjelly", 1.0, "x SpikingJelly (fwd+bwd, every case)"),
    ):
        ratios = []
        for r in results:
            if r["path"] != other or (other == "snetx.snn" and r["T"] != 16):
                continue
            mine = next(
                q
                for q in results
                if q["path"] == "snetx.cuend"
                and (q["dtype"], q["log2"], q["T"]) == (r["dtype"], r["log2"], r["T"])
            )
            ratios.append(r["both"] / mine["both"])
        if ratios:
            lo = min(ratios)
            verdict = "met" if lo >= target else "NOT met"
            lines.append(
                f"- >= {target:g}{what}: {verdict} (speed-up {lo:.2f}x .. {max(ratios):.2f}x)"
            )
        else:
            lines.append(f"- >= {target:g}{what}: not measured ({other} not run)")
    return lines


def rules_table(log2=24, T=8):
    """Soft reset, PLIF and a stateful LIF fed T in 4 chunks against the hard-reset LIF,
    fwd+bwd, float32 and bfloat16 (the PLIF target: within 1.3x of LIF)."""

    def chunked(mod):
        def run(x):
            mod.reset()
            return torch.cat([mod(c) for c in x.chunk(4, dim=1)], 1)

        return run

    rules = {
        "LIF (hard reset)": lambda: cu.LIF(),
        "LIF soft reset": lambda: cu.LIF(v_reset=None),
        "PLIF (learned decay)": lambda: cu.PLIF().cuda(),
        "LIF, T in 4 chunks": lambda: chunked(cu.LIF(stateful=True)),
    }
    rows = []
    for dtype in (torch.float32, torch.bfloat16):
        x = (torch.rand(16, T, (1 << log2) // (16 * T), device="cuda") * 1.5).to(dtype)
        g = torch.randn_like(x)
        base = None
        for name, make in rules.items():
            fwd, bwd, both, _ = measure(make(), x, g)
            base = base or both
            dname = str(dtype).split(".")[1]
            rows.append([dname, f"2^{log2}", T, name, f"{both * 1e3:.3f}", f"{both / base:.2f}x"])
    return markdown_table(["dtype", "elements", "T", "neuron", "fwd+bwd ms", "vs LIF (hard)"], rows)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--min-log2", type=int, default=20)
    p.add_argument("--max-log2", type=int, default=27)
    p.add_argument("--steps", type=int, nargs="+", default=[4, 8, 16], help="T values")
    p.add_argument("--out", default=None)
    args = p.parse_args(argv)
    if not torch.cuda.is_available():
        sys.exit("lif_gpu.py needs a CUDA device")
    peak = copy_gbs(1 << 30)
    results, rows = [], []
    runs = paths()
    for dtype in (torch.float32, torch.bfloat16):
        esize = torch.empty((), dtype=dtype).element_size()
        for log2 in range(args.min_log2, args.max_log2 + 1):
            for T in args.steps:
                n = 1 << log2
                x = (torch.rand(16, T, n // (16 * T), device="cuda") * 1.5).to(dtype)
                g = torch.randn_like(x)
                base = None
                for name, fn in runs.items():
                    # SpikingJelly is time-major: T x N x ...
                    sj = name == "spikingjelly"
                    inp = x.transpose(0, 1).contiguous() if sj else x
                    grad = g.transpose(0, 1).contiguous() if sj else g
                    dname = str(dtype).split(".")[1]
                    try:
                        fwd, bwd, both, ev = measure(fn, inp, grad)
                    except Exception as e:  # report and go on: device time is scarce
                        rows.append([dname, f"2^{log2}", T, name, f"error: {e}"[:120]] + [""] * 6)
                        continue
                    r = dict(
                        path=name, dtype=dname, log2=log2, T=T, fwd=fwd, bwd=bwd, both=both,
                        fwd_gbs=2 * n * esize / fwd / 1e9, bwd_gbs=3 * n * esize / bwd / 1e9,
                    )  # fmt: skip
                    results.append(r)
                    base = base or both
                    rows.append(
                        [
                            dname,
                            f"2^{log2}",
                            T,
                            name,
                            f"{fwd * 1e3:.3f}",
                            f"{bwd * 1e3:.3f}",
                            f"{both * 1e3:.3f}",
                            f"{r['fwd_gbs']:.0f} ({r['fwd_gbs'] / peak:.0%})",
                            f"{r['bwd_gbs']:.0f} ({r['bwd_gbs'] / peak:.0%})",
                            f"{ev * 1e3:.3f} ({2 * n * esize / ev / 1e9 / peak:.0%})",
                            f"{both / base:.2f}x",
                        ]
                    )
                del x, g
    headers = ["dtype", "elements", "T", "path", "fwd ms", "bwd ms", "fwd+bwd ms"]
    headers += ["fwd GB/s (of copy)", "bwd GB/s (of copy)", "no-grad fwd ms (of copy)"]
    headers += ["fwd+bwd time vs cuend"]
    table = markdown_table(headers, rows)
    head = f"{torch.cuda.get_device_name()}, copy bandwidth {peak:.0f} GB/s"
    if "spikingjelly" in runs:
        head += f"; SpikingJelly implementation: {spikingjelly_implementation()}"
    text = head + "\n\n" + table + "\n\nTargets:\n" + "\n".join(targets(results, peak))
    text += "\n\nNeuron rules (fwd+bwd against the hard-reset LIF):\n\n" + rules_table()
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
