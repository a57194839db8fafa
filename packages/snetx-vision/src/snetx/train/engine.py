"""One run of snetx-train: process group, output-folder lock, resume checks, the Trainer.

The pieces live by concern: :mod:`.distributed` (process group), :mod:`.build` (loaders,
model, optimiser from the configuration), :mod:`.trainer` (the loop),
:mod:`.checkpoint`, :mod:`.config` (what a resume may change), :mod:`.lock`, :mod:`.stop`
(Ctrl-C), :mod:`.report` (summary and plots).
"""

import gc
from argparse import Namespace

from snetx.dataset import augment as augments

from . import build, checkpoint, config, outdir
from .cli import UsageError, parser_defaults
from .distributed import Run
from .lock import FolderBusy, FolderLock
from .memory import tune_allocator
from .stop import StopRequest
from .trainer import Trainer


def check_resume(args, ckpt, world):
    """Refuse (UsageError) a resume whose options change what is trained."""
    saved = ckpt["args"]
    diffs = config.differences(saved, config.plain(vars(args)), parser_defaults())
    if ckpt.get("world_size", 1) != world:
        diffs.append(f"processes {ckpt.get('world_size', 1)} -> {world}")
    before, now = build.workers(Namespace(**{**vars(args), **saved})), build.workers(args)
    if before != now and augments.is_random(args.dataset, args.augment):
        # each loader process draws the random augmentation of its samples: another number
        # of processes gives other augmentations, and the resumed run would silently diverge
        diffs.append(f"--workers {before} -> {now} (the random augmentation depends on it)")
    if diffs:
        raise UsageError(
            "--resume with options that change the model, the data or the optimisation: "
            + ", ".join(diffs)
            + " (resume with the original values, or start a new --out)"
        )
    done = len(ckpt["history"])
    if args.epochs < done:
        raise UsageError(f"--epochs {args.epochs} is fewer than the {done} epochs already done")


def train(args) -> int:
    tune_allocator()  # this process is ours: keep large CPU tensors in the heap
    run = Run(args.device, args.ddp_timeout)
    lock = FolderLock(args.out)
    try:
        busy = None
        if run.main:
            try:
                lock.acquire()
            except FolderBusy as e:
                busy = e
        if run.any(busy is not None):
            raise UsageError(str(busy) if busy else f"output folder {args.out} is in use")
        if run.main:
            checkpoint.clean_orphans(args.out)
        ckpt = None
        if args.resume:
            ckpt = checkpoint.load(args.out)
            check_resume(args, ckpt, run.world)
        with StopRequest() as stop:
            return _fit(args, run, stop, ckpt)
    finally:
        lock.release()
        run.close()


def _fit(args, run, stop, ckpt) -> int:
    """Build, restore and run the Trainer. Its own frame: when this returns, the model and
    its DDP wrapper (with gloo work objects) are gone before the process group is
    destroyed; torn down the other way round at exit, gloo aborts the process (seen as
    "terminate called without an active exception" about one run in ten)."""
    trainer = Trainer(args, run, stop)
    try:
        if args.overwrite and run.main:
            # the new run has its data and model: only now is the old one given up
            outdir.remove_run(args.out)
        if ckpt is not None:
            trainer.restore(ckpt)
        trainer.write_config()
        with run.watch():
            return trainer.fit()
    finally:
        del trainer
        gc.collect()  # reference cycles could keep the DDP wrapper alive past this call
