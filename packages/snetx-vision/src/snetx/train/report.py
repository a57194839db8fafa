"""The end of a run: summary.json, the plots and the closing line."""

import sys

from snetx import install_hint

from . import config, outdir, plots


def summary(history, rates, world, digests):
    times = [h["epoch_time_s"] for h in history if h["epoch_time_s"] is not None]
    speeds = [h["train_images_per_s"] for h in history if h["train_images_per_s"]]
    return {
        "final_test_acc": history[-1]["test_acc"],
        "best_test_acc": max(h["test_acc"] for h in history),
        "mean_epoch_time_s": sum(times) / len(times) if times else None,
        "mean_train_images_per_s": sum(speeds) / len(speeds) if speeds else None,
        "firing_rates": rates,
        "world_size": world,
        "rank_parameter_sha256": digests,
    }


def write(out, history, rates, world, digests, no_plots=False, ops=None):
    """Write ``out/summary.json`` (strict JSON), ``out/synaptic_ops.md`` (per-layer
    synaptic operations and energy per test sample, from a
    :class:`~snetx.snn.energy.SynapticOpsCounter`) and, unless ``no_plots``, the plots;
    print the closing line."""
    result = summary(history, rates, world, digests)
    if ops is not None:
        result["synaptic_ops"] = ops.report()
        outdir.write_text(
            out / "synaptic_ops.md",
            "Synaptic operations and energy per test sample (AC: spike-driven accumulates, "
            "MAC: multiply-accumulates on real inputs; 45 nm energies).\n\n" + ops.table() + "\n",
        )
    outdir.write_text(out / "summary.json", config.dumps(result, indent=1))
    if not no_plots:
        try:
            plots.curves(history, out)
            plots.firing_rates(rates, out)
        except ImportError:
            print(
                "snetx-train: matplotlib not installed, no plots "
                f"({install_hint('snetx-vision', 'plot')})",
                file=sys.stderr,
            )
    speed = result["mean_train_images_per_s"]
    timing = (
        f", {result['mean_epoch_time_s']:.2f} s/epoch, {speed:.0f} train images/s" if speed else ""
    )
    print(
        f"snetx-train: test accuracy {result['final_test_acc']:.2%} "
        f"(best {result['best_test_acc']:.2%}){timing}; results in {out}"
    )
    return result
