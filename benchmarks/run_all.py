"""Run every benchmark and write benchmarks/RESULTS.md (machine, versions, date, tables).

nox -s bench            # installs spikingjelly==2.0.0, snntorch, norse, then this
python benchmarks/run_all.py [--quick]
"""

import argparse
import datetime
import importlib.metadata as md
import json
import os
import platform
import subprocess
import sys
import tempfile

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import compare  # noqa: E402
import lif_cpu  # noqa: E402
import neurons_cpu  # noqa: E402


def _version(dist):
    try:
        return md.version(dist)
    except md.PackageNotFoundError:
        return "not installed"


def _cpu():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cold_first_call():
    """Seconds to the first host-kernel LIF result in a new process with an empty cache."""
    code = (
        "import time, torch; t=time.perf_counter(); from snetx.snn import functional as F; "
        "F.set_cpu_kernel('host'); F.lif(torch.rand(2, 4, 8)); "
        "print(time.perf_counter() - t)"
    )
    out = {}
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, SNETX_CACHE_DIR=cache)
        for label in ("cold (build)", "warm (disk cache)"):
            res = subprocess.run(
                [sys.executable, "-c", code], env=env, capture_output=True, text=True
            )
            out[label] = float(res.stdout.strip().splitlines()[-1]) if res.returncode == 0 else None
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--out", default=os.path.join(HERE, "RESULTS.md"))
    args = p.parse_args(argv)
    sections = [
        "# snetx benchmark results",
        "",
        f"- date: {datetime.datetime.now().isoformat(timespec='seconds')}",
        f"- machine: {_cpu()}, {os.cpu_count()} cores, {platform.platform()}",
        f"- GPU: {torch.cuda.get_device_name() if torch.cuda.is_available() else 'none'}",
        f"- versions: python {platform.python_version()}, torch {torch.__version__}, "
        f"snetx-core {_version('snetx-core')}, spikingjelly {_version('spikingjelly')}, "
        f"snntorch {_version('snntorch')}, norse {_version('norse')}",
        "",
    ]
    latency = cold_first_call()
    sections += ["## Compiled CPU LIF: first-call latency (new process)", ""]
    sections += [
        f"- {k}: {v:.2f} s" if v is not None else f"- {k}: unavailable" for k, v in latency.items()
    ]
    sections += [
        "",
        "## Fused vs plain autograd loop (snetx only)",
        "",
        lif_cpu.main(["--repeats", "3" if args.quick else "7"]),
        "",
    ]
    sections += [
        "## The neuron family and recurrent layers (CPU)",
        "",
        neurons_cpu.tables(3 if args.quick else 5),
        "",
    ]
    side_by_side, data = compare.run(["--quick"] if args.quick else [])
    sections += ["## Side by side", "", side_by_side, ""]
    if torch.cuda.is_available():
        import lif_gpu

        gpu_file = os.path.join(tempfile.mkdtemp(), "gpu.md")
        lif_gpu.main(["--out", gpu_file] + (["--max-log2", "22"] if args.quick else []))
        with open(gpu_file) as f:
            sections += ["## GPU LIF", "", f.read()]
    text = "\n".join(sections) + "\n"
    with open(args.out, "w") as f:
        f.write(text)
    # the same numbers as data, for the documentation's charts (benchmarks/results.py)
    meta = {
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "machine": f"{_cpu()}, {os.cpu_count()} cores, {platform.system()} {platform.machine()}",
        "threads": data.pop("threads"),
        "bandwidth_gbs": data.pop("bandwidth_gbs"),
        "allocator": "default glibc"
        if "MALLOC_MMAP_THRESHOLD_" not in os.environ
        else "tuned (MALLOC_MMAP_THRESHOLD_)",
        "versions": sections[5].split(": ", 1)[1],
    }
    out_json = os.path.splitext(args.out)[0] + ".json"
    with open(out_json, "w") as f:
        json.dump({"meta": meta, **data}, f, indent=1)
    print(f"wrote {args.out} and {out_json}")


if __name__ == "__main__":
    main()
