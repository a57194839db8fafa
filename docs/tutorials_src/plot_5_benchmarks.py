"""
Benchmark results
=================

The numbers of the latest ``nox -s bench`` run, charted from ``benchmarks/RESULTS.json``
(the data ``benchmarks/run_all.py`` writes next to ``RESULTS.md``). Every ratio is against
a baseline measured in the same process, on the same input.
"""

import sys
from pathlib import Path

import matplotlib.pyplot as plt

here = Path(__file__).resolve().parent if "__file__" in globals() else Path.cwd()
bench = next(p / "benchmarks" for p in (here, *here.parents) if (p / "benchmarks").is_dir())
sys.path.insert(0, str(bench))
import results  # noqa: E402  (benchmarks/results.py: load the JSON, draw the charts)

data = results.load()
print(results.caption(data))
print(data["meta"]["versions"])

# %%
# Multi-step LIF, forward + backward on the CPU: every library on the same input, with
# dynamics matched and checked on the timed data (``benchmarks/compare.py``).

fig, ax = plt.subplots(figsize=(8, 3.5))
shapes, libraries = results.lif_chart(data, ax)
fig.tight_layout()
for r in data["lif_cpu"]:
    ms, roof = r["ms"], r["vs_roofline"]
    print(f"{r['shape']:>12} {r['library']:<14} {ms:8.1f} ms  {roof:.2f}x roofline")

# %%
# One training step of a small spiking CNN (conv-BN-LIF x2, TET loss, SGD), batch 64.

fig, ax = plt.subplots(figsize=(6, 2.5))
results.train_chart(data, ax)
fig.tight_layout()
