"""
Benchmark results
=================

The numbers of the latest ``nox -s bench`` run (``benchmarks/RESULTS.md`` in the source
tree), charted. Every ratio there is against a baseline measured in the same process.
"""

import re
from pathlib import Path

import matplotlib.pyplot as plt

here = Path(__file__).resolve().parent if "__file__" in globals() else Path.cwd()
results = next(
    p / "benchmarks" / "RESULTS.md"
    for p in (here, *here.parents)
    if (p / "benchmarks" / "RESULTS.md").is_file()
)
text = results.read_text()
print("\n".join(text.splitlines()[2:6]))

# %%
# Multi-step LIF, forward + backward on the CPU: every library on the same input, with
# dynamics matched and checked on the timed data.

section = text.split("### Multi-step LIF, CPU")[1].split("###")[0]
rows = [
    [c.strip() for c in line.strip("|").split("|")]
    for line in section.splitlines()
    if line.startswith("|") and not line.startswith("|---") and "library" not in line
]
shapes = list(dict.fromkeys(r[0] for r in rows))
libraries = list(dict.fromkeys(r[1] for r in rows))
fig, ax = plt.subplots(figsize=(8, 3.5))
width = 0.8 / len(libraries)
for i, lib in enumerate(libraries):
    ms = [next((float(r[2]) for r in rows if r[0] == s and r[1] == lib), 0.0) for s in shapes]
    ax.bar([k + i * width for k in range(len(shapes))], ms, width, label=lib)
ax.set_xticks([k + 0.4 - width / 2 for k in range(len(shapes))], shapes)
ax.set(ylabel="fwd+bwd ms (median, lower is better)", yscale="log")
ax.legend(fontsize=7)
fig.tight_layout()
print(re.sub(r"\s+", " ", section.splitlines()[0]))
