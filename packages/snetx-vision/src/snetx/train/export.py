"""``snetx-export``: a snetx-train checkpoint as a NIR graph file (HDF5).

    snetx-export --checkpoint runs/shd-smlp/checkpoint.pt --out model.nir [--dt 1e-4]

The model is rebuilt from the options the checkpoint stores, given its weights, traced
on one sample of its dataset's shape and written with ``nir.write``; load it back with
``snetx.nir.load("model.nir")`` or any NIR importer. Exit codes: 0 written, 2 a bad
argument, an unusable checkpoint or a model NIR cannot represent (one line each).
"""

import sys
from argparse import Namespace
from pathlib import Path

from .cli import UsageError, _finite, _Parser, parser_defaults


def build_parser():
    p = _Parser(prog="snetx-export", description="Export a snetx-train checkpoint to NIR.")
    p.add_argument("--checkpoint", required=True, help="a checkpoint.pt snetx-train wrote")
    p.add_argument("--out", required=True, help="the NIR file to write (HDF5, e.g. model.nir)")
    p.add_argument("--dt", type=float, default=1e-4, help="time step of the graph (default 1e-4)")
    p.add_argument(
        "--pool",
        choices=("avg", "sum"),
        default="avg",
        help="average pools as NIR AvgPool2d, or SumPool2d with the divisor folded (Norse)",
    )
    p.add_argument(
        "--soft-reset",
        choices=("error", "metadata"),
        default="error",
        help="neurons with reset by subtraction: refuse (default) or mark in node metadata",
    )
    return p


def export(argv):
    args = build_parser().parse_args(argv)
    _finite("dt", args.dt, 0.0, low_open=True)
    try:
        from snetx import nir as snir
    except ImportError as e:
        raise UsageError(str(e)) from None
    import nir
    import torch
    from snetx.dataset import registry as datasets

    from . import build, checkpoint

    try:
        ckpt = checkpoint.read(args.checkpoint)
    except ValueError as e:
        raise UsageError(f"--checkpoint {args.checkpoint}: {e}") from None
    run = Namespace(**{**parser_defaults(), **ckpt["args"]})  # options it predates: defaults
    run.backend = "torch"  # the same neurons, on the CPU
    try:
        data = datasets.get(run.dataset)
        model = build.model(run, build.surrogate_alpha(run)[0])
    except (ValueError, TypeError, AttributeError) as e:
        raise UsageError(
            f"--checkpoint {args.checkpoint}: cannot rebuild its model ({e})"
        ) from None
    try:
        model.load_state_dict(ckpt["model"])
    except (RuntimeError, KeyError) as e:
        first = str(e).strip().splitlines()[0]
        raise UsageError(
            f"--checkpoint {args.checkpoint}: its weights do not fit the model {run.model} "
            f"built from its options ({first})"
        ) from None
    if data.kind == "sequence":
        shape = (data.channels,)
    else:
        size = (run.size, run.size) if getattr(run, "size", None) else data.size
        shape = (data.channels, *size)
    try:
        graph = snir.export(
            model, torch.zeros(1, 1, *shape), dt=args.dt, pool=args.pool,
            soft_reset=args.soft_reset,
        )  # fmt: skip
    except snir.NIRExportError as e:
        raise UsageError(f"model {run.model} cannot be exported: {e}") from None
    out = Path(args.out)
    if out.is_dir():
        raise UsageError(f"--out {out} is a folder; give a file name such as {out}/model.nir")
    try:
        nir.write(out, graph)
    except OSError as e:
        raise UsageError(f"--out {out}: {e}") from None
    kinds = sorted({type(n).__name__ for n in graph.nodes.values()})
    print(f"snetx-export: {out}: {len(graph.nodes)} nodes ({', '.join(kinds)}), dt={args.dt:g}")
    return 0


def main(argv=None):
    """Run snetx-export; the exit code (0 written, 2 an error printed as one line)."""
    try:
        return export(sys.argv[1:] if argv is None else argv)
    except UsageError as e:
        print(f"snetx-export: error: {' '.join(str(e).split())}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
