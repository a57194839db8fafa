"""
The training command
====================

``snetx-train`` runs the whole experiment: data, model, STBP, checkpoints, metrics and
plots. Here it trains the default spiking CNN on digits for three epochs (the same as
``snetx-train --epochs 3 --quiet --out <folder>`` in a shell) and we look at what it
wrote.
"""

import json
import tempfile
from pathlib import Path

import matplotlib.image as mpimg
import matplotlib.pyplot as plt
from snetx.train import main

out = Path(tempfile.mkdtemp()) / "digits"
code = main(["--epochs", "3", "--quiet", "--out", str(out)])
print("exit code", code)
print(sorted(p.name for p in out.iterdir() if not p.name.startswith(".")))

# %%
# ``metrics.jsonl`` has one JSON line per epoch; ``summary.json`` the final numbers and
# the firing rate of every LIF layer.

for line in (out / "metrics.jsonl").read_text().splitlines():
    r = json.loads(line)
    print(f"epoch {r['epoch']}: train loss {r['train_loss']:.3f}, test acc {r['test_acc']:.2%}")
summary = json.loads((out / "summary.json").read_text())
print({k: summary[k] for k in ("final_test_acc", "best_test_acc", "firing_rates")})

# %%
# ``--resume`` continues from the checkpoint; only options that do not change what is
# trained may differ. A larger ``--epochs`` is one of them:

print("exit code", main(["--epochs", "4", "--quiet", "--out", str(out), "--resume"]))
print("an option that changes the model is refused (exit code 2):")
print("exit code", main(["--epochs", "4", "--T", "8", "--out", str(out), "--resume"]))

# %%
# The plots it wrote: learning curves and firing rates.

fig, axes = plt.subplots(1, 2, figsize=(10, 4))
for ax, name in zip(axes, ("curves.png", "firing_rates.png")):
    ax.imshow(mpimg.imread(out / name))
    ax.set_axis_off()
fig.tight_layout()
