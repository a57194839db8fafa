"""snetx vs SpikingJelly, snnTorch and Norse on CPU: LIF fwd+bwd, T sweep, training step.

    python benchmarks/compare.py [--threads 2] [--repeats 7] [--quick]

Each library is configured to the dynamics of snetx's LIF and the match is asserted on
the timed data before timing (threshold ties, where snetx/SpikingJelly fire at >= and
snnTorch/Norse at >, are counted and reported):

- SpikingJelly LIFNode(decay_input=False, hard reset to 0, tau_sj = 1 / (1 - 1/tau)) vs
  snetx arctan, detach=False;
- snnTorch Leaky(beta = 1/tau, reset_mechanism="zero") vs snetx arctan, detach=True (its
  reset is always detached);
- Norse LIFBoxCell(dt * tau_mem_inv = 1 - 1/tau, inputs scaled by 1/(dt tau_mem_inv),
  SuperSpike) vs snetx fast_sigmoid with alpha = 1 (Norse's SuperSpike ignores alpha).

Time-first libraries get a time-first copy made outside the timed region; single-step
APIs loop over ``x.unbind(0)``. The LIF rows are timed interleaved, one fwd+bwd of each
library in turn per round (as the layers of a user's model run, in one process with the
default allocator), and report the median and the 90th percentile of the rounds.
Ratios are against snetx in the same run; the roofline is
20 bytes per float32 element, the least a fwd+bwd can move (x read and s written forward;
x and grad_s read, grad_x written backward, the charges recomputed from x), at the
bandwidth of a large copy measured in the same run.
"""

import argparse
import os
import sys
import time
import warnings

import torch
from torch import nn

sys.path.insert(0, os.path.dirname(__file__))
from _util import copy_bandwidth, markdown_table, median_time, saved_bytes
from snetx.snn import _host_kernel
from snetx.snn import functional as F
from snetx.snn.algorithm import TETLoss, Tosnn
from snetx.snn.surrogate import SURROGATE_IDS

warnings.filterwarnings("ignore")
TAU, ALPHA = 2.0, 4.0
SHAPES = [(32, 4, 32768), (64, 8, 4096), (16, 16, 65536)]


# ---- each library's multi-step LIF, on its native layout ----------------------------
def snetx_lif(sg="arctan", alpha=ALPHA, detach=False):
    return lambda x: F.lif(x, TAU, 1.0, 0.0, sg, alpha, detach), False


def spikingjelly_lif():
    from spikingjelly.activation_based import neuron, surrogate

    node = neuron.LIFNode(
        tau=1 / (1 - 1 / TAU),
        decay_input=False,
        v_threshold=1.0,
        v_reset=0.0,
        surrogate_function=surrogate.ATan(alpha=ALPHA),
        detach_reset=False,
        step_mode="m",
    )

    def run(x):
        node.reset()
        return node(x)

    return run, True


def snntorch_lif():
    import snntorch
    from snntorch import surrogate

    leaky = snntorch.Leaky(
        beta=1 / TAU, threshold=1.0, spike_grad=surrogate.atan(alpha=ALPHA), reset_mechanism="zero"
    )

    def run(x):
        mem = leaky.reset_mem()
        out = []
        for x_t in x.unbind(0):
            s, mem = leaky(x_t, mem)
            out.append(s)
        return torch.stack(out)

    return run, True


def norse_lif():
    import norse.torch as nt
    from norse.torch.functional.lif_box import LIFBoxParameters

    k = 1 - 1 / TAU
    p = LIFBoxParameters(
        tau_mem_inv=torch.as_tensor(k / 1e-3),
        v_leak=torch.as_tensor(0.0),
        v_th=torch.as_tensor(1.0),
        v_reset=torch.as_tensor(0.0),
        method="super",
    )
    cell = nt.LIFBoxCell(p, dt=1e-3)

    def run(x):
        state, out = None, []
        for x_t in x.unbind(0):
            z, state = cell(x_t / k, state)
            out.append(z)
        return torch.stack(out)

    return run, True


LIBRARIES = {
    "SpikingJelly": (spikingjelly_lif, dict(sg="arctan", detach=False)),
    "snnTorch": (snntorch_lif, dict(sg="arctan", detach=True)),
    "Norse": (norse_lif, dict(sg="fast_sigmoid", alpha=1.0, detach=False)),
}


def available():
    libs = {}
    for name, (make, ref) in LIBRARIES.items():
        try:
            libs[name] = (make(), ref)
        except ImportError as e:
            print(f"({name} not installed: {e})")
    return libs


def grads(fn, x, g):
    x = x.detach().requires_grad_()
    y = fn(x)
    (gx,) = torch.autograd.grad(y, x, g)
    return y.detach(), gx


def check_match(name, fn, time_first, ref_fn, x, g):
    """Spikes and gradients of a library vs its snetx configuration, on the timed data."""
    xt, gt = (
        (x.transpose(0, 1).contiguous(), g.transpose(0, 1).contiguous()) if time_first else (x, g)
    )
    y, gx = grads(fn, xt, gt)
    if time_first:
        y, gx = y.transpose(0, 1), gx.transpose(0, 1)
    y_ref, gx_ref = grads(ref_fn, x, g)
    flips = int((y != y_ref).sum())
    same = (y == y_ref).all(dim=1, keepdim=True).expand_as(y)  # neurons without a flip
    err = float((gx - gx_ref)[same].abs().max() / gx_ref.abs().max())
    assert flips <= 1e-5 * y.numel(), f"{name}: {flips} spikes differ from snetx"
    assert err < 1e-4, f"{name}: gradients differ from snetx (rel {err:.2e})"
    return flips, err


def fwd_bwd(fn, x, g):
    x = x.detach().requires_grad_()

    def run():
        x.grad = None
        fn(x).backward(g)

    return run


def interleaved(runners, repeats, warmup=2):
    """{name: sorted seconds}: one call of each runner in turn per round, as the layers of
    a user's model run, so that every library sees the same state of the allocator and
    the caches."""
    for run in runners.values():
        for _ in range(warmup):
            run()
    samples = {name: [] for name in runners}
    for _ in range(repeats):
        for name, run in runners.items():
            t0 = time.perf_counter()
            run()
            samples[name].append(time.perf_counter() - t0)
    return {name: sorted(v) for name, v in samples.items()}


def quantile(sorted_values, q):
    return sorted_values[min(len(sorted_values) - 1, round(q * (len(sorted_values) - 1)))]


def pinned(mode, run):
    """``run`` with snetx's CPU kernel pinned to ``mode`` for its call only (the mode is
    read per call)."""

    def call():
        _host_kernel.set_mode(mode)
        try:
            run()
        finally:
            _host_kernel.set_mode("auto")

    return call


def roofline(n, bandwidth):
    """Seconds for the least a fwd+bwd of ``n`` float32 elements can move: 20 bytes each
    (see the module doc) at ``bandwidth`` bytes/s."""
    return 20 * n / bandwidth


def lif_rows(libs, repeats, shapes, bandwidth, records):
    """(Markdown table, notes); one dict per row is appended to ``records``."""
    rows, notes = [], []
    for shape in shapes:
        torch.manual_seed(0)
        x, g = torch.rand(shape) * 1.5, torch.randn(shape)
        n = x.numel()
        limit = roofline(n, bandwidth)
        xt, gt = x.transpose(0, 1).contiguous(), g.transpose(0, 1).contiguous()
        base_fn, _ = snetx_lif()
        runners, saved = {}, {}
        for mode in ("host", "eager"):
            if mode == "host" and not _host_kernel.available():
                continue
            runners[f"snetx ({mode})"] = pinned(mode, fwd_bwd(base_fn, x, g))
            _host_kernel.set_mode(mode)
            saved[f"snetx ({mode})"] = saved_bytes(base_fn, x.requires_grad_())
            _host_kernel.set_mode("auto")
        for name, ((fn, tf), ref) in libs.items():
            ref_fn, _ = snetx_lif(**ref)
            flips, err = check_match(name, fn, tf, ref_fn, x, g)
            notes.append(
                f"{'x'.join(map(str, shape))} {name}: {flips} spike(s) differ from snetx "
                f"(threshold ties), max relative gradient difference {err:.1e}"
            )
            inp, grad = (xt, gt) if tf else (x, g)
            runners[name] = fwd_bwd(fn, inp, grad)
            saved[name] = saved_bytes(lambda v, fn=fn: fn(v), inp.detach().requires_grad_())
        samples = interleaved(runners, repeats)
        median = {k: quantile(v, 0.5) for k, v in samples.items()}
        ref_time = min(median[k] for k in median if k.startswith("snetx"))
        peers = [median[k] for k in median if not k.startswith("snetx")]
        for name, v in samples.items():
            t, p90 = median[name], quantile(v, 0.9)
            records.append(
                {
                    "shape": "x".join(map(str, shape)),
                    "library": name,
                    "ms": round(t * 1e3, 2),
                    "p90_ms": round(p90 * 1e3, 2),
                    "vs_fastest_snetx": round(t / ref_time, 3),
                    "vs_roofline": round(t / limit, 3),
                    "saved_mib": round(saved[name] / 2**20, 1),
                }
            )
            rows.append(
                [
                    "x".join(map(str, shape)),
                    name,
                    f"{t * 1e3:.1f}",
                    f"{p90 * 1e3:.1f}",
                    f"{p90 / t:.2f}",
                    f"{t / ref_time:.2f}x",
                    f"{min(peers) / t:.1f}x" if peers and name.startswith("snetx") else "",
                    f"{t / limit:.2f}x",
                    f"{saved[name] / 2**20:.0f}",
                ]
            )
    table = markdown_table(
        [
            "N x T x D",
            "library",
            "fwd+bwd ms (median)",
            "p90 ms",
            "p90 / median",
            "vs fastest snetx",
            "fastest peer / this",
            "vs roofline",
            "saved for backward MiB",
        ],
        rows,
    )
    return table, notes


def kernel_rows(repeats, shapes, bandwidth, records, evict_mib=512):
    """The host kernels alone (called through ctypes on buffers allocated once, arctan, hard
    reset), with the caches emptied before each call by writing ``evict_mib`` MiB: what
    the kernels cost on data in memory, apart from what the library adds around them
    (Python, autograd, allocation) in the interleaved rows above."""
    import ctypes

    lib = _host_kernel.load()
    fwd, bwd = lib.snetx_lif_forward_f32, lib.snetx_lif_backward_f32
    junk = torch.zeros(evict_mib << 18)
    consts = (ctypes.c_float * 4)(1.0, 0.0, 0.0, 0.0)
    arctan = SURROGATE_IDS["arctan"]
    threads, rows = torch.get_num_threads(), []
    for shape in shapes:
        n_, t_, d = shape
        x, gs = torch.rand(shape) * 1.5, torch.randn(shape)
        s, gx, k = torch.empty_like(x), torch.empty_like(x), torch.full((1, d), 1 / TAU)
        ptr = [ctypes.c_void_p(v.data_ptr()) for v in (x, s, gs, gx, k)]
        px, ps, pgs, pgx, pk = ptr
        times = {"forward": [], "backward": []}
        for _ in range(repeats + 1):  # the first call of each is a warm-up
            junk.add_(1)
            t0 = time.perf_counter()
            fwd(px, ps, None, None, pk, consts, n_, t_, d, 0, threads)
            times["forward"].append(time.perf_counter() - t0)
            junk.add_(1)
            t0 = time.perf_counter()
            bwd(px, pgs, pgx, None, None, pk, None, None, consts, n_, t_, d, ALPHA, arctan, 0,
                0, threads)  # fmt: skip
            times["backward"].append(time.perf_counter() - t0)
        f, b = (quantile(sorted(times[w][1:]), 0.5) for w in ("forward", "backward"))
        n = x.numel()
        limit = roofline(n, bandwidth)
        records.append(
            {
                "shape": "x".join(map(str, shape)),
                "forward_ms": round(f * 1e3, 2),
                "backward_ms": round(b * 1e3, 2),
                "vs_roofline": round((f + b) / limit, 3),
            }
        )
        rows.append(
            [
                "x".join(map(str, shape)),
                f"{f * 1e3:.2f}",
                f"{8 * n / f / 1e9:.1f}",
                f"{b * 1e3:.2f}",
                f"{12 * n / b / 1e9:.1f}",
                f"{(f + b) / limit:.2f}x",
            ]
        )
    return markdown_table(
        [
            "N x T x D",
            "forward ms",
            "forward GB/s (8 B/elem)",
            "backward ms",
            "backward GB/s (12 B/elem)",
            "fwd+bwd vs roofline",
        ],
        rows,
    )


def t_sweep(libs, repeats, nd=(16, 16384)):
    rows = []
    for T in (4, 8, 16, 32, 64):
        torch.manual_seed(0)
        shape = (nd[0], T, nd[1])
        x, g = torch.rand(shape) * 1.5, torch.randn(shape)
        xt, gt = x.transpose(0, 1).contiguous(), g.transpose(0, 1).contiguous()
        base_fn, _ = snetx_lif()
        row = [T, f"{median_time(fwd_bwd(base_fn, x, g), repeats) / T * 1e3:.2f}"]
        for _name, ((fn, tf), _ref) in libs.items():
            inp, grad = (xt, gt) if tf else (x, g)
            row.append(f"{median_time(fwd_bwd(fn, inp, grad), repeats) / T * 1e3:.2f}")
        rows.append(row)
    return markdown_table(["T", "snetx ms/step", *(f"{n} ms/step" for n in libs)], rows)


# ---- a training step of the same small spiking CNN in each library -------------------
class TimeFirst(nn.Module):
    """Runs a time-first neuron inside an N x T network (layout adapter, counted in time)."""

    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, x):
        return self.fn(x.transpose(0, 1)).transpose(0, 1)


def small_cnn(neuron):
    block = lambda cin, cout: Tosnn(
        nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout))
    )
    return nn.Sequential(
        block(1, 16),
        neuron(),
        Tosnn(nn.MaxPool2d(2)),
        block(16, 32),
        neuron(),
        Tosnn(nn.AdaptiveAvgPool2d(4)),
        Tosnn(nn.Flatten()),
        Tosnn(nn.Linear(32 * 16, 10)),
    )


def train_rows(repeats, records, batch=64, T=4):
    makers = {"snetx": _SnetxLIF}
    for name, (make, _) in LIBRARIES.items():
        try:
            make()
        except ImportError:
            continue
        makers[name] = lambda make=make: TimeFirst(make()[0])
    torch.manual_seed(0)
    x = torch.rand(batch, T, 1, 28, 28)
    y = torch.randint(0, 10, (batch,))
    rows, base = [], None
    for name, make in makers.items():
        torch.manual_seed(0)
        net = small_cnn(make)
        opt = torch.optim.SGD(net.parameters(), lr=0.1)

        def step(net=net, opt=opt):
            out = net(x * 3)
            loss = TETLoss(nn.CrossEntropyLoss(), y, out)
            opt.zero_grad()
            loss.backward()
            opt.step()

        t = median_time(step, repeats)
        base = base or t
        rows.append([name, f"{t * 1e3:.1f}", f"{batch / t:.0f}", f"{t / base:.2f}x"])
        records.append(
            {"library": name, "ms": round(t * 1e3, 2), "images_per_s": round(batch / t),
             "vs_snetx": round(t / base, 3)}
        )  # fmt: skip
    return markdown_table(["library", "step ms", "images/s", "time vs snetx"], rows)


class _SnetxLIF(nn.Module):
    def forward(self, x):
        return F.lif(x, TAU)


def run(argv=None):
    """(Markdown text, data): the tables, and the same numbers as JSON-ready dicts
    (``threads``, ``bandwidth_gbs``, ``lif_cpu``, ``train_step``; see results.py)."""
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--quick", action="store_true", help="smallest shape only (a smoke run)")
    p.add_argument("--json", default=None, help="also write the numbers to this JSON file")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    libs = available()
    bandwidth = copy_bandwidth()
    shapes = SHAPES[:1] if args.quick else SHAPES
    data = {"threads": args.threads, "bandwidth_gbs": round(bandwidth / 1e9, 2)}
    data["lif_cpu"], data["train_step"] = [], []
    lif_table, notes = lif_rows(libs, args.repeats, shapes, bandwidth, data["lif_cpu"])
    out = [
        f"### Multi-step LIF, CPU, float32, {args.threads} threads "
        f"(copy bandwidth {bandwidth / 1e9:.1f} GB/s)",
        "",
        lif_table,
        "",
        *(f"- {n}" for n in notes),
        "",
    ]
    data["kernel_cpu"] = []
    if _host_kernel.available():
        out += [
            "### The host kernels alone, data not in cache (LIF, arctan)",
            "",
            kernel_rows(args.repeats, shapes, bandwidth, data["kernel_cpu"]),
            "",
        ]
    if not args.quick:
        out += [
            "### Cost per time step as T grows (N x D = 16 x 16384)",
            "",
            t_sweep(libs, args.repeats),
            "",
        ]
    out += [
        "### Training step (conv-BN-LIF x2, TET, SGD), batch 64, T = 4, 1x28x28",
        "",
        train_rows(args.repeats, data["train_step"]),
        "",
    ]
    text = "\n".join(out)
    if args.json:
        import json

        with open(args.json, "w") as f:
            json.dump(data, f, indent=1)
    return text, data


def main(argv=None):
    text, _ = run(argv)
    print(text)
    return text


if __name__ == "__main__":
    main()
