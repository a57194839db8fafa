"""PNG plots of a finished run: loss/accuracy curves and per-layer firing rates."""

import os

from . import outdir


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def curves(history, out_dir):
    plt = _plt()
    epochs = [h["epoch"] for h in history]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    ax1.plot(epochs, [h["train_loss"] for h in history], label="train")
    ax1.plot(epochs, [h["test_loss"] for h in history], label="test")
    ax1.set_xlabel("epoch")
    ax1.set_ylabel("loss")
    ax1.legend()
    ax2.plot(epochs, [100 * h["train_acc"] for h in history], label="train")
    ax2.plot(epochs, [100 * h["test_acc"] for h in history], label="test")
    ax2.set_xlabel("epoch")
    ax2.set_ylabel("accuracy (%)")
    ax2.legend()
    fig.tight_layout()
    path = os.path.join(out_dir, "curves.png")
    outdir.save_figure(fig, path, dpi=100)
    plt.close(fig)
    return path


def firing_rates(rates, out_dir):
    plt = _plt()
    names = list(rates)
    fig, ax = plt.subplots(figsize=(max(4, len(names) * 0.8), 3.5))
    ax.bar(range(len(names)), [rates[n] for n in names])
    ax.set_xticks(range(len(names)))
    ax.set_xticklabels(names, rotation=45, ha="right")
    ax.set_ylabel("firing rate (spikes / neuron / step)")
    ax.set_title("per-layer firing rate on the test set")
    fig.tight_layout()
    path = os.path.join(out_dir, "firing_rates.png")
    outdir.save_figure(fig, path, dpi=100)
    plt.close(fig)
    return path
