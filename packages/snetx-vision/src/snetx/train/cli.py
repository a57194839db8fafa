"""Command line of snetx-train: options, validation, one-line errors (exit code 2)."""

import argparse
import math
import os
import sys

from snetx import install_hint
from snetx.dataset import augment as augments
from snetx.dataset import registry as datasets
from snetx.models import registry as models
from snetx.snn.surrogate import REGISTERED_SG_FUNCLIST

from . import neurons, outdir, recipes

DATASETS = datasets.names()
MODELS = models.names()
SURROGATES = REGISTERED_SG_FUNCLIST


class UsageError(Exception):
    """A bad argument: printed as one line, exit code 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise UsageError(message)

    def format_help(self):
        # the models with their sizes, counted only when help is shown (it builds each)
        for action in self._actions:
            if action.dest == "model":
                action.help = (
                    f"one of {models.describe()} (parameters at 10 classes, on the data each "
                    "was made for; default scnn, smlp for spike sequences)"
                )
        return super().format_help()


def build_parser():
    p = _Parser(prog="snetx-train", description="Train a spiking neural network with STBP.")
    a = p.add_argument
    a(
        "--recipe",
        default=None,
        help=f"a paper's settings: one of {', '.join(recipes.names())}; flags given override it",
    )
    a("--list-recipes", action="store_true", help="print the recipes with their sources and exit")
    a("--dataset", default="digits", help=f"one of {', '.join(DATASETS)} (default digits, offline)")
    a("--data-dir", default="data", help="folder holding the datasets (default ./data)")
    a(
        "--model",
        default=None,
        help=f"one of {', '.join(MODELS)} (default scnn; smlp for spike sequences)",
    )
    a("--T", type=int, default=None, help="time steps (default: the dataset's, 4 for images)")
    a(
        "--split-by",
        choices=("number", "time"),
        default="number",
        help="event datasets: frames of equal event count (default) or equal duration",
    )
    a(
        "--size",
        type=int,
        default=None,
        help="event cameras: resize frames to SIZE x SIZE (default: the dataset's)",
    )
    a("--epochs", type=int, default=None, help="default: the dataset's (15 digits, 20 others)")
    a("--batch-size", type=int, default=64, help="per process (default 64)")
    a("--lr", type=float, default=None, help="default: adam 3e-3 (MNIST 5e-3), sgd 0.1")
    a("--optimizer", choices=("adam", "sgd"), default="adam")
    a("--schedule", choices=("cosine", "none"), default="cosine")
    a("--weight-decay", type=float, default=0.0)
    a("--loss", choices=("tet", "ce"), default="tet", help="TET (default) or CE on the mean output")
    a("--lamb", type=float, default=1e-3, help="TET regulariser weight (default 1e-3)")
    a("--surrogate", default="arctan", help=f"one of {', '.join(SURROGATES)}")
    a("--alpha", type=float, default=4.0, help="surrogate sharpness (default 4)")
    a("--evolved-alpha", action="store_true", help="grow alpha over training (EvolvedAlpha)")
    a("--tau", type=float, default=2.0, help="membrane time constant (PLIF: its start value)")
    a(
        "--neuron",
        choices=tuple(neurons.NEURONS),
        default="lif",
        help="; ".join(f"{n.name}: {n.help}" for n in neurons.NEURONS.values())
        + " (default lif)",
    )
    a("--tau-syn", type=float, default=2.0, help="--neuron cubalif: synaptic time constant")
    a("--tau-adapt", type=float, default=20.0, help="--neuron alif: adaptation time constant")
    a("--beta", type=float, default=1.8, help="--neuron alif: threshold increase per spike")
    a(
        "--reset",
        choices=("hard", "soft"),
        default="hard",
        help="hard (to 0) or soft (subtract the threshold) reset (default hard)",
    )
    a(
        "--backend",
        choices=("torch", "cuda"),
        default="torch",
        help="torch: snetx.snn neurons; cuda: snetx.cuend fused kernels (needs a GPU)",
    )
    a(
        "--augment",
        default="default",
        help="training augmentation: default (the dataset's), none, autoaugment (CIFAR: "
        "TET's crop, flip, AutoAugment, Cutout) or flip-roll (event frames)",
    )
    for option in models.OPTIONS.values():  # the models' own options
        a(f"--{option.name}", type=option.type, choices=option.choices or None, default=None,
          help=option.help)  # fmt: skip
    a(
        "--amp",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="mixed precision (bf16 on CPU, fp16 on CUDA)",
    )
    a("--device", default=None, help="default: cuda when available, else cpu")
    a("--seed", type=int, default=0)
    a("--workers", type=int, default=None, help="data loader processes")
    a("--no-download", action="store_true", help="never try to download datasets")
    a(
        "--out",
        default=None,
        help="output folder (default runs/<dataset>-<model>, numbered -2, -3, ... when taken)",
    )
    a("--resume", action="store_true", help="continue from <out>/checkpoint.pt")
    a(
        "--overwrite",
        action="store_true",
        help="replace the run in --out (its files are removed once the new run has started)",
    )
    a(
        "--cache-dir",
        default=None,
        help="event datasets: where computed frames are kept (default: a private per-user "
        "cache, $SNETX_CACHE_DIR/frames or ~/.cache/snetx/frames)",
    )
    a("--no-plots", action="store_true")
    a(
        "--strategy",
        choices=("ddp", "fsdp", "none"),
        default="ddp",
        help="under torchrun: ddp (whole model on each process, default), fsdp (parameters, "
        "gradients and optimiser state sharded) or none (one process only)",
    )
    a(
        "--memory",
        choices=("compact", "plain", "checkpoint"),
        default="compact",
        help="what backward keeps: compact (default: spikes as bits, one tensor per "
        "BatchNorm and neuron), plain (the torch modules' own saving) or checkpoint "
        "(each layer's packed input only, recomputed in backward: less memory, one more "
        "forward); the gradients are the same",
    )
    a(
        "--ddp-timeout",
        type=float,
        default=600.0,
        help="seconds a process waits for the others under torchrun before failing (default 600)",
    )
    a("--quiet", action="store_true", help="no progress bars")
    return p


def _finite(name, value, low=None, high=None, low_open=False):
    """Raise UsageError unless ``value`` is finite and within [low, high] (or (low, ...)."""
    ok = math.isfinite(value)
    if ok and low is not None:
        ok = value > low if low_open else value >= low
    if ok and high is not None:
        ok = value <= high
    if not ok:
        if low is not None and high is not None:
            want = f"a number in [{low:g}, {high:g}]"
        elif low is not None:
            want = f"a finite number {'>' if low_open else '>='} {low:g}"
        else:
            want = "a finite number"
        raise UsageError(f"--{name} must be {want}, got {value!r}")


def _device(name):
    import torch

    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        raise UsageError(f"--device {name!r} is not a device: use cpu, cuda or cuda:N") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise UsageError(f"--device {name} but no CUDA GPU is visible: use --device cpu")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise UsageError(
                f"--device {name}: only {torch.cuda.device_count()} CUDA device(s) visible"
            )
    elif device.type == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise UsageError(f"--device {name} is not available on this machine: use --device cpu")
    elif device.type != "cpu":
        raise UsageError(f"--device {name}: snetx-train runs on cpu, cuda or mps")
    return name


def given_options(argv):
    """The destinations of the options ``argv`` gives explicitly (not from defaults)."""
    parser = build_parser()
    for action in parser._actions:
        action.default = argparse.SUPPRESS
    return set(vars(parser.parse_args(argv)))


def parser_defaults():
    """Every option's default as the parser has it: the value a checkpoint written
    before the option existed ran with."""
    return {a.dest: a.default for a in build_parser()._actions if a.dest != "help"}


def parse(argv):
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.list_recipes:
        return args
    recipe = None
    if args.recipe is not None:
        try:
            recipe = recipes.get(args.recipe)
        except ValueError as e:
            raise UsageError(str(e)) from None
        parser.set_defaults(**recipe.settings)  # flags given on the command line still win
        args = parser.parse_args(argv)
    given = given_options(argv)
    try:
        return _check(args, given)
    except UsageError as e:
        if recipe is None:
            raise
        # say which settings came from the recipe, so no flag the user never typed is blamed
        implied = [
            f"--{k.replace('_', '-')} {v}" for k, v in recipe.settings.items() if k not in given
        ]
        raise UsageError(
            f"{e} (--recipe {args.recipe} sets {', '.join(implied)}; a flag given overrides it)"
            if implied
            else str(e)
        ) from None


def _check(args, given):
    """Validate and complete ``args``; ``given``: the options typed on the command line.
    Each concern is one step; the registries (datasets, models, neurons) supply the facts."""
    try:
        data = datasets.get(args.dataset)
        if args.model is None:
            args.model = data.default_model
        model = models.get(args.model)
    except ValueError as e:
        raise UsageError(str(e)) from None
    _check_data(args, given, data)
    _check_model(args, given, data, model)
    _check_training(args, data)
    _check_neuron(args)
    _check_memory(args, data)
    _check_out(args)
    _check_system(args)
    _check_cpu_kernel(args)
    from . import checkpoint

    if args.resume and not checkpoint.exists(args.out):
        raise UsageError(f"--resume: no checkpoint in {args.out}")
    return args


def _check_data(args, given, data):
    """The dataset's options: frames (--size, --split-by, --cache-dir), --T, --augment."""
    for option in ("split_by", "cache_dir"):
        if option in given and data.kind == "image":
            raise UsageError(
                f"--{option.replace('_', '-')} applies to the event and spike datasets "
                f"({', '.join(n for n in DATASETS if datasets.get(n).kind != 'image')}), "
                f"not {args.dataset}"
            )
    if args.size is not None:
        if data.kind != "events":
            raise UsageError(f"--size applies to event-camera datasets, not {args.dataset}")
        if not 1 <= args.size <= max(data.size):
            raise UsageError(
                f"--size must be in [1, {max(data.size)}] ({args.dataset}'s sensor is "
                f"{data.size[1]} x {data.size[0]}), got {args.size}"
            )
    elif data.kind == "events":
        args.size = data.default_size
    if args.T is None:
        args.T = data.default_T
    if args.T < 1:
        raise UsageError(f"--T must be >= 1, got {args.T}")
    try:
        augments.check(args.dataset, args.augment)
    except ValueError as e:
        raise UsageError(str(e)) from None


def _check_model(args, given, data, model):
    """The model takes the data's kind and size; its own options get their defaults, and
    another model's options are refused."""
    size = (args.size, args.size) if args.size else data.size
    if not model.supports(size, data.kind):
        fits = [m for m in MODELS if models.get(m).supports(size, data.kind)]
        shape = "x".join(map(str, size))
        raise UsageError(
            f"{args.model} takes {model.sizes}; {args.dataset} gives {data.kind} of {shape}: "
            f"use --model {' or '.join(fits[:2])}"
        )
    for name, option in models.OPTIONS.items():
        if name in model.options:
            if getattr(args, name) is None:
                setattr(args, name, option.default)
        elif getattr(args, name) is not None:
            raise UsageError(
                f"--{name} applies to {', '.join(models.taking(name))}, not {args.model}"
            )


def _check_training(args, data):
    """Length, batch, optimiser, loss and surrogate."""
    if args.epochs is None:
        args.epochs = data.default_epochs
    if args.epochs < 1:
        raise UsageError(f"--epochs must be >= 1, got {args.epochs}")
    if args.batch_size < 1:
        raise UsageError(f"--batch-size must be >= 1, got {args.batch_size}")
    if args.lr is None:
        args.lr = (data.default_lr or 3e-3) if args.optimizer == "adam" else 0.1
    _finite("lr", args.lr, 0.0, low_open=True)
    _finite("lamb", args.lamb, 0.0, 1.0)
    _finite("weight-decay", args.weight_decay, 0.0)
    if args.surrogate not in SURROGATES:
        raise UsageError(
            f"unknown surrogate {args.surrogate!r}: choose one of {', '.join(SURROGATES)}"
        )
    _finite("alpha", args.alpha, 0.0, low_open=True)


def _check_neuron(args):
    """--tau for every neuron, then the chosen neuron's own check."""
    _finite("tau", args.tau, 1.0)
    for name in ("tau-syn", "tau-adapt", "beta"):
        _finite(name, getattr(args, name.replace("-", "_")), None)
    check = neurons.get(args.neuron).check
    problem = check(args) if check else None
    if problem:
        raise UsageError(problem)


def _check_system(args):
    """Processes, seed, device, backend and strategy."""
    _finite("ddp-timeout", args.ddp_timeout, 0.0, low_open=True)
    if args.workers is not None and args.workers < 0:
        raise UsageError(f"--workers must be >= 0, got {args.workers}")
    if not 0 <= args.seed < 2**32:
        raise UsageError(f"--seed must be in [0, 2**32 - 1], got {args.seed}")
    import torch

    if args.device is None:
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    _device(args.device)
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
                f"--backend cuda needs snetx-cuda: {install_hint('snetx-cuda', 'cuda12')} ({e})"
            ) from None
    if args.strategy == "none" and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise UsageError(
            "--strategy none runs one process; under torchrun use --strategy ddp or fsdp"
        )


def _check_out(args):
    """Choose the output folder; refuse to mix a fresh run into an existing one."""
    if args.resume and args.overwrite:
        raise UsageError(
            "--resume continues the run in --out and --overwrite replaces it: choose one"
        )
    if args.out is None:
        base = os.path.join("runs", f"{args.dataset}-{args.model}")
        if args.resume:
            args.out = str(outdir.newest(base))
        elif args.overwrite:
            args.out = base
        else:
            args.out = str(outdir.fresh(base))
    elif not args.out.strip():
        raise UsageError("--out must name a folder, got an empty string")
    if os.path.exists(args.out) and not os.path.isdir(args.out):
        raise UsageError(f"--out {args.out} is a file, not a folder")
    links = outdir.planted_links(args.out)
    if links:
        raise UsageError(
            f"--out {args.out}: {', '.join(links)} is a symbolic link; snetx-train does not "
            "write through links (remove it, or choose another --out)"
        )
    if not (args.resume or args.overwrite) and outdir.holds_run(args.out):
        raise UsageError(
            f"--out {args.out} already holds a run: continue it with --resume, replace it "
            "with --overwrite, or choose another --out (without --out, a fresh run takes "
            "a new numbered folder)"
        )


def _check_memory(args, data):
    """Refuse a batch of frames that cannot fit in this machine's memory, before any
    allocation (a MemoryError traceback otherwise, after the cache fill)."""
    shape = (args.size, args.size) if args.size else data.size
    # a sequence's channels are its features, the size it has already (SHD: 700)
    channels = 1 if data.kind == "sequence" else data.channels
    per_sample = args.T * channels * math.prod(shape) * 4  # float32
    try:
        memory = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):  # pragma: no cover - not POSIX
        return
    need = per_sample * max(args.batch_size, 1)
    if need > memory // 2:
        raise UsageError(
            f"one batch of {args.batch_size} samples of {args.T} x {channels} x "
            f"{' x '.join(map(str, shape))} float32 frames needs {need / 2**30:.1f} GiB, more "
            f"than half of this machine's {memory / 2**30:.1f} GiB: use a smaller --T, "
            "--size or --batch-size"
        )


def _check_cpu_kernel(args):
    """SNETX_CPU_KERNEL, checked once here: a bad value, or host without a kernel that
    builds, is a one-line error rather than a traceback from inside the first forward."""
    if args.device != "cpu" or args.backend != "torch":
        return
    from snetx.snn import _host_kernel

    try:
        mode = _host_kernel.mode()
    except ValueError as e:
        raise UsageError(str(e)) from None
    if mode == "host":
        try:
            _host_kernel.load()
        except _host_kernel.KernelUnavailable as e:
            first = str(e).strip().splitlines()[0]
            raise UsageError(
                f"SNETX_CPU_KERNEL=host but the host C++ kernel is unavailable ({first}); "
                "unset it to fall back to the eager path"
            ) from None


def main(argv=None):
    """Run snetx-train; the exit code: 0 done, 2 a bad argument or input (one line on
    stderr), 1 a failure during the run (one line), 130 interrupted (checkpoint saved)."""
    from snetx.dataset import DatasetError

    from .build import TooFewSamples
    from .checkpoint import CheckpointError, NoUsableCheckpoint
    from .distributed import RankTimeout
    from .outdir import SymlinkedOutput
    from .stop import Interrupted
    from .trainer import NonFiniteLoss

    try:
        args = parse(sys.argv[1:] if argv is None else argv)
        if args.list_recipes:
            print("\n\n".join(recipes.describe(r) for r in recipes.RECIPES.values()))
            return 0
        from .engine import train

        return train(args)
    except (UsageError, NoUsableCheckpoint, TooFewSamples, SymlinkedOutput) as e:
        return _error(e, 2)
    except DatasetError as e:
        return _error(
            f"{e}. Put the files there, allow the download, or use --dataset digits (offline)"
            if isinstance(e, FileNotFoundError)
            else e,
            2,
        )
    except (CheckpointError, NonFiniteLoss, RankTimeout) as e:
        return _error(e, 1)
    except Interrupted as e:
        return _error(e, e.code, "")
    except KeyboardInterrupt:  # Ctrl-C before the run's own handler was installed
        return _error("interrupted before training started; nothing saved", 130, "")
    except OSError as e:  # a folder that cannot be written, a full disk, ...
        return _error(e, 1)


def one_line(e) -> str:
    """The message of ``e`` on one line; for an error re-raised from a data-loader
    worker, its own message without the worker's traceback."""
    text = str(e)
    if "Original Traceback" in text:
        last = [line for line in text.strip().splitlines() if line.strip()][-1]
        text = last.split(": ", 1)[1] if ": " in last else last
    return " ".join(text.split())


def _error(e, code, kind="error: "):
    print(f"snetx-train: {kind}{one_line(e)}", file=sys.stderr)
    return code
