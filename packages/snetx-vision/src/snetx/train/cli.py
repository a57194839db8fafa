"""Command line of snetx-train: options, validation, one-line errors (exit code 2)."""

import argparse
import os
import sys

DATASETS = ("digits", "mnist", "fmnist", "cifar10", "cifar100")
VGGS = ("vgg11", "vgg11_bn", "vgg13", "vgg13_bn", "vgg16", "vgg16_bn", "vgg19", "vgg19_bn")
MODELS = ("scnn", *VGGS)
SURROGATES = ("arctan", "sigmoid", "rectangular", "triangle", "fast_sigmoid", "ste")


class UsageError(Exception):
    """A bad argument: printed as one line, exit code 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise UsageError(message)


def build_parser():
    p = _Parser(prog="snetx-train", description="Train a spiking neural network with STBP.")
    a = p.add_argument
    a("--dataset", default="digits", help=f"one of {', '.join(DATASETS)} (default digits, offline)")
    a("--data-dir", default="data", help="folder holding the datasets (default ./data)")
    a("--model", default="scnn", help=f"one of {', '.join(MODELS)} (default scnn)")
    a("--T", type=int, default=4, help="time steps (default 4)")
    a("--epochs", type=int, default=None, help="default: 15 on digits, 20 otherwise")
    a("--batch-size", type=int, default=64, help="per process (default 64)")
    a("--lr", type=float, default=None, help="default 3e-3 (adam) or 0.1 (sgd)")
    a("--optimizer", choices=("adam", "sgd"), default="adam")
    a("--schedule", choices=("cosine", "none"), default="cosine")
    a("--weight-decay", type=float, default=0.0)
    a("--loss", choices=("tet", "ce"), default="tet", help="TET (default) or CE on the mean output")
    a("--lamb", type=float, default=1e-3, help="TET regulariser weight (default 1e-3)")
    a("--surrogate", default="arctan", help=f"one of {', '.join(SURROGATES)}")
    a("--alpha", type=float, default=4.0, help="surrogate sharpness (default 4)")
    a("--evolved-alpha", action="store_true", help="grow alpha over training (EvolvedAlpha)")
    a("--tau", type=float, default=2.0)
    a(
        "--backend",
        choices=("torch", "cuda"),
        default="torch",
        help="torch: snetx.snn neurons; cuda: snetx.cuend fused kernels (needs a GPU)",
    )
    a("--amp", action="store_true", help="mixed precision (bf16 on CPU, fp16 on CUDA)")
    a("--device", default=None, help="default: cuda when available, else cpu")
    a("--seed", type=int, default=0)
    a("--workers", type=int, default=None, help="data loader processes")
    a("--no-download", action="store_true", help="never try to download datasets")
    a("--out", default=None, help="output folder (default runs/<dataset>-<model>)")
    a("--resume", action="store_true", help="continue from <out>/checkpoint.pt")
    a("--no-plots", action="store_true")
    a("--quiet", action="store_true", help="no progress bars")
    return p


def parse(argv):
    args = build_parser().parse_args(argv)
    if args.dataset not in DATASETS:
        raise UsageError(f"unknown dataset {args.dataset!r}: choose one of {', '.join(DATASETS)}")
    if args.model not in MODELS:
        raise UsageError(f"unknown model {args.model!r}: choose one of {', '.join(MODELS)}")
    if args.model in VGGS and args.dataset not in ("cifar10", "cifar100"):
        raise UsageError(
            f"{args.model} needs 32x32 inputs: use --dataset cifar10/cifar100 or --model scnn"
        )
    if args.surrogate not in SURROGATES:
        raise UsageError(
            f"unknown surrogate {args.surrogate!r}: choose one of {', '.join(SURROGATES)}"
        )
    if args.T < 1:
        raise UsageError(f"--T must be >= 1, got {args.T}")
    if args.epochs is None:
        args.epochs = 15 if args.dataset == "digits" else 20
    if args.epochs < 1 or args.batch_size < 1:
        raise UsageError("--epochs and --batch-size must be >= 1")
    if args.lr is None:
        args.lr = 3e-3 if args.optimizer == "adam" else 0.1
    if args.out is None:
        args.out = os.path.join("runs", f"{args.dataset}-{args.model}")
    import torch

    if args.device is None:
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise UsageError(f"--device {args.device} but no CUDA GPU is visible: use --device cpu")
    if args.backend == "cuda":
        if not torch.cuda.is_available():
            raise UsageError(
                "--backend cuda needs a CUDA GPU and none is visible: use --backend torch"
            )
        if not args.device.startswith("cuda"):
            raise UsageError("--backend cuda runs on the GPU: drop --device cpu")
        try:
            import snetx.cuend  # noqa: F401
        except ImportError as e:
            raise UsageError(
                f"--backend cuda needs snetx-cuda: pip install snetx-cuda ({e})"
            ) from None
    if args.resume and not os.path.isfile(os.path.join(args.out, "checkpoint.pt")):
        raise UsageError(f"--resume: no checkpoint at {os.path.join(args.out, 'checkpoint.pt')}")
    return args


def main(argv=None):
    from snetx.dataset import DatasetNotFoundError

    try:
        args = parse(sys.argv[1:] if argv is None else argv)
        from .engine import train

        return train(args)
    except UsageError as e:
        print(f"snetx-train: error: {e}", file=sys.stderr)
        return 2
    except DatasetNotFoundError as e:
        msg = " ".join(str(e).split())
        print(
            f"snetx-train: error: {msg}. Put the files there, allow the download, or use "
            "--dataset digits (offline)",
            file=sys.stderr,
        )
        return 2
