"""What a run is made of, built from its configuration: loaders, model, optimiser, lr."""

import functools
import math

import torch
from snetx.dataset import augment as augments
from snetx.dataset import registry as datasets
from snetx.models import registry as models
from snetx.snn import algorithm
from snetx.snn import neuron as snn_neuron

from . import neurons

TEST_BATCH_SIZE = 256


class TooFewSamples(ValueError):
    """The training set does not fill one batch."""


def loaders(args, run):
    """(train, test) loaders of the run's dataset, single process or DDP, from its spec."""
    from snetx.dataset.loaders import make_loaders

    spec = datasets.get(args.dataset)
    size = (args.size, args.size) if getattr(args, "size", None) else None
    # fresh workers each epoch, seeded from the loader's generator: their random
    # augmentation is then part of the state a checkpoint restores
    train, test = make_loaders(
        spec, args.data_dir, args.batch_size, TEST_BATCH_SIZE,
        args.T if spec.kind != "image" else None,
        augments.transforms(args.dataset, getattr(args, "augment", "default")),
        distributed=run.distributed, download=not args.no_download,
        num_workers=workers(args), seed=args.seed, persistent_workers=False,
        split_by=args.split_by, size=size, cache_dir=getattr(args, "cache_dir", None),
    )  # fmt: skip
    if len(train) == 0:
        n = len(train.dataset)
        per = f" per process ({run.world} processes)" if run.distributed else ""
        raise TooFewSamples(
            f"--batch-size {args.batch_size}{per} is larger than the training set "
            f"({n} samples): use a smaller --batch-size"
        )
    return train, test


def workers(args):
    """The loader processes a run uses (``--workers``, else the loaders' default; the
    bundled digits load in the main process)."""
    from snetx.dataset._common import default_num_workers

    if args.workers is not None:
        return args.workers
    default = datasets.get(args.dataset).default_workers
    return default_num_workers() if default is None else default


def encoder(args):
    """Static images are repeated over T (direct encoding); event data carry T already."""
    if datasets.get(args.dataset).kind == "image":
        return algorithm.DirectEncoder(args.T)
    return torch.nn.Identity()


def neuron_factory(args, alpha):
    """The zero-argument neuron factory the models call: the ``--neuron`` choice
    (:mod:`.neurons`), hard or soft reset, from snetx.snn or (``--backend cuda``)
    snetx.cuend."""
    if args.backend == "cuda":
        from snetx.cuend import neuron as backend
    else:
        backend = snn_neuron
    choice = neurons.get(args.neuron)
    cls = getattr(backend, choice.cls)
    v_reset = None if args.reset == "soft" else 0.0
    return functools.partial(
        cls, tau=args.tau, v_reset=v_reset, sg=args.surrogate, alpha=alpha,
        **choice.options(args),
    )  # fmt: skip


def surrogate_alpha(args):
    """(the neurons' alpha, its schedule or None): a number, or an EvolvedAlpha following
    a schedule of its own that spans the run (not the process-wide shared one)."""
    if not args.evolved_alpha:
        return args.alpha, None
    schedule = algorithm.AlphaSchedule(epoch=args.epochs, e_max=1.0, current=0)
    return algorithm.EvolvedAlpha(args.alpha, schedule=schedule), schedule


def model(args, alpha):
    data = datasets.get(args.dataset)
    size = (args.size, args.size) if getattr(args, "size", None) else data.size
    spec = models.get(args.model)
    options = {name: getattr(args, name) for name in spec.options}
    return spec.build(
        num_classes=data.classes,
        in_channels=data.channels,
        neuron=neuron_factory(args, alpha),
        size=size,
        **options,
    )


def optimizer(args, params):
    if args.optimizer == "adam":
        return torch.optim.Adam(params, lr=args.lr, weight_decay=args.weight_decay)
    return torch.optim.SGD(params, lr=args.lr, momentum=0.9, weight_decay=args.weight_decay)


def lr_at(args, epoch: int) -> float:
    """The learning rate of epoch ``epoch`` (0-based): constant, or the closed-form cosine
    ``lr (1 + cos(pi epoch / epochs)) / 2`` -- a function of the epoch alone, so a resumed
    (or extended) run needs no scheduler state."""
    if args.schedule == "cosine":
        return args.lr * (1 + math.cos(math.pi * epoch / args.epochs)) / 2
    return args.lr


def loss_fn(args, criterion):
    if args.loss == "tet":
        return lambda out, y: algorithm.TETLoss(criterion, y, out, lamb=args.lamb)
    return lambda out, y: criterion(out.mean(1), y)


def amp_dtype(device):
    return torch.float16 if device.type == "cuda" else torch.bfloat16
