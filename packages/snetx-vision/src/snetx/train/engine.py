"""The training loop of snetx-train.

Resume is exact: a checkpoint records the epoch, the number of batches done in it, the
RNG states at the epoch's start and now; resuming replays the epoch's data order up to
that batch (consuming the same randomness), then restores the states of the interrupted
process.

Ctrl-C (SIGINT) asks the loop to stop: it finishes the batch in flight, writes a
checkpoint and exits with code 130 (a second Ctrl-C aborts at once). Under DDP the
request is shared by all ranks so they stop at the same batch.
``SNETX_TRAIN_INTERRUPT_AT=<global step>`` makes the same request at that step, for tests.
"""

import functools
import hashlib
import json
import os
import random
import signal
import sys
import time

import numpy as np
import torch
import torch.distributed as dist
from snetx.dataset._common import LOADER_NAMES
from snetx.snn import algorithm, monitor
from snetx.snn import neuron as snn_neuron
from torch import nn

from . import checkpoint, plots

CLASSES = {"digits": 10, "mnist": 10, "fmnist": 10, "cifar10": 10, "cifar100": 100}
CHANNELS = {"digits": 1, "mnist": 1, "fmnist": 1, "cifar10": 3, "cifar100": 3}


class Run:
    """Process-group facts: rank 0 writes files; metrics are summed over ranks."""

    def __init__(self, args):
        self.distributed = int(os.environ.get("WORLD_SIZE", "1")) > 1
        self.rank, self.world, self.local = 0, 1, 0
        if self.distributed:
            cuda = args.device.startswith("cuda")
            self.local = int(os.environ.get("LOCAL_RANK", "0"))
            if cuda:
                torch.cuda.set_device(self.local)
            dist.init_process_group("nccl" if cuda else "gloo")
            self.rank, self.world = dist.get_rank(), dist.get_world_size()
        self.device = torch.device(
            f"cuda:{self.local}"
            if args.device.startswith("cuda") and self.distributed
            else args.device
        )

    @property
    def main(self):
        return self.rank == 0

    def sum(self, values):
        t = torch.tensor(values, dtype=torch.float64, device=self.device)
        if self.distributed:
            dist.all_reduce(t)
        return t.tolist()

    def any(self, flag):
        """True on every rank when any rank says True."""
        if not self.distributed:
            return flag
        t = torch.tensor([1.0 if flag else 0.0], device=self.device)
        dist.all_reduce(t)
        return bool(t.item() > 0)

    def barrier(self):
        if self.distributed:
            dist.barrier()

    def close(self):
        if self.distributed and dist.is_initialized():
            dist.destroy_process_group()


def neuron_factory(args, alpha):
    if args.backend == "cuda":
        from snetx.cuend import neuron as cu

        return functools.partial(cu.LIF, tau=args.tau, sg=args.surrogate, alpha=alpha)
    return functools.partial(snn_neuron.LIF, tau=args.tau, sg=args.surrogate, alpha=alpha)


def build_model(args, alpha):
    neuron = neuron_factory(args, alpha)
    classes, channels = CLASSES[args.dataset], CHANNELS[args.dataset]
    if args.model == "scnn":
        from snetx.models.scnn import SpikingCNN

        return SpikingCNN(channels, classes, neuron=neuron)
    from snetx.models import svggnet

    return getattr(svggnet, args.model)(
        num_classes=classes, in_channels=channels, neuron=neuron, head="compact", dropout=0.1
    )


def build_loaders(args, run):
    if run.distributed:
        from snetx.dataset.ddp import vision
    else:
        from snetx.dataset import vision
    workers = (
        args.workers if args.workers is not None else (0 if args.dataset == "digits" else None)
    )
    return getattr(vision, LOADER_NAMES[args.dataset])(
        args.data_dir,
        args.batch_size,
        256,
        download=not args.no_download,
        num_workers=workers,
        seed=args.seed,
    )


def loss_fn(args, criterion):
    if args.loss == "tet":
        return lambda out, y: algorithm.TETLoss(criterion, y, out, lamb=args.lamb)
    return lambda out, y: criterion(out.mean(1), y)


def evaluate(model, loader, args, run, criterion, device):
    model.eval()
    encode = algorithm.DirectEncoder(args.T)
    loss = correct = count = 0.0
    with torch.no_grad(), torch.autocast(device.type, enabled=args.amp, dtype=_amp_dtype(device)):
        for x, y in loader:
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            out = model(encode(x)).float().mean(1)
            loss += float(criterion(out, y)) * len(y)
            correct += float((out.argmax(1) == y).sum())
            count += len(y)
    loss, correct, count = run.sum([loss, correct, count])
    return loss / max(count, 1), correct / max(count, 1)


def _amp_dtype(device):
    return torch.float16 if device.type == "cuda" else torch.bfloat16


def _loader_state(loader):
    gen = getattr(loader, "generator", None)
    return {
        "generator": gen.get_state() if gen is not None else None,
        "epoch": getattr(loader, "next_epoch", None),
    }


def _set_loader_state(loader, state):
    if state["generator"] is not None:
        loader.generator.set_state(state["generator"])
    if state["epoch"] is not None:
        loader.set_epoch(state["epoch"])


class StopRequest:
    """SIGINT sets a flag the loop checks at safe points; a second SIGINT aborts."""

    def __init__(self):
        self.requested = False
        self._previous = None

    def _handler(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def __enter__(self):
        try:
            self._previous = signal.signal(signal.SIGINT, self._handler)
        except ValueError:  # not the main thread: leave Ctrl-C as it is
            self._previous = None
        return self

    def __exit__(self, *exc):
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)


def train(args):
    run = Run(args)
    try:
        with StopRequest() as stop:
            return _train(args, run, stop)
    finally:
        run.close()


def _stopped(run, where, ckpt_path):
    if run.main:
        print(
            f"snetx-train: interrupted {where}; checkpoint saved to {ckpt_path}; "
            "continue with --resume",
            file=sys.stderr,
        )
    return 130


def _param_digest(model):
    h = hashlib.sha256()
    for p in model.parameters():
        h.update(p.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def _seed(seed):
    torch.manual_seed(seed)
    random.seed(seed)
    np.random.seed(seed)


def _train(args, run, stop):
    from tqdm import tqdm

    device = run.device
    _seed(args.seed)
    train_loader, test_loader = build_loaders(args, run)
    alpha = args.alpha
    if args.evolved_alpha:
        alpha = algorithm.EvolvedAlpha(args.alpha)
        algorithm.EvolvedAlpha.reset(epoch=args.epochs, e_max=1.0, current=0)
    model = build_model(args, alpha).to(device)
    net = model
    if run.distributed:
        net = nn.parallel.DistributedDataParallel(
            model, device_ids=[run.local] if device.type == "cuda" else None
        )
    if args.optimizer == "adam":
        opt = torch.optim.Adam(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    else:
        opt = torch.optim.SGD(
            model.parameters(), lr=args.lr, momentum=0.9, weight_decay=args.weight_decay
        )
    sched = (
        torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=args.epochs)
        if args.schedule == "cosine"
        else None
    )
    scaler = torch.amp.GradScaler("cuda", enabled=args.amp and device.type == "cuda")
    criterion = nn.CrossEntropyLoss()
    compute_loss = loss_fn(args, criterion)
    encode = algorithm.DirectEncoder(args.T)
    ckpt_path = os.path.join(args.out, "checkpoint.pt")
    metrics_path = os.path.join(args.out, "metrics.jsonl")

    start_epoch, start_step, history, resume = 0, 0, [], None
    if args.resume:
        resume = checkpoint.load(ckpt_path, device)
        model.load_state_dict(resume["model"])
        opt.load_state_dict(resume["optimizer"])
        if sched is not None and resume["scheduler"] is not None:
            sched.load_state_dict(resume["scheduler"])
        scaler.load_state_dict(resume["scaler"])
        algorithm.EvolvedAlpha.load_state_dict(resume["evolved_alpha"])
        start_epoch, start_step, history = resume["epoch"], resume["step"], resume["history"]
    if run.main:
        os.makedirs(args.out, exist_ok=True)
        with open(os.path.join(args.out, "config.json"), "w") as f:
            json.dump(vars(args), f, indent=1)
        with open(metrics_path, "w") as f:  # on resume: exactly the epochs in the checkpoint
            f.writelines(json.dumps(h) + "\n" for h in history)

    interrupt_at = int(os.environ.get("SNETX_TRAIN_INTERRUPT_AT", "-1"))
    steps_per_epoch = len(train_loader)

    def save(epoch, step, epoch_start, sums):
        if run.main:
            checkpoint.save_atomic(
                {
                    "model": model.state_dict(),
                    "optimizer": opt.state_dict(),
                    "scheduler": sched.state_dict() if sched is not None else None,
                    "scaler": scaler.state_dict(),
                    "epoch": epoch,
                    "step": step,
                    "epoch_start": epoch_start,
                    "rng": checkpoint.rng_states(),
                    "sums": sums,
                    "evolved_alpha": algorithm.EvolvedAlpha.state_dict(),
                    "history": history,
                    "args": vars(args),
                },
                ckpt_path,
            )
        run.barrier()

    for epoch in range(start_epoch, args.epochs):
        if resume is not None and start_step > 0 and epoch == start_epoch:
            epoch_start = resume["epoch_start"]
            checkpoint.set_rng_states(epoch_start["rng"])
            _set_loader_state(train_loader, epoch_start["loader"])
        else:
            epoch_start = {"rng": checkpoint.rng_states(), "loader": _loader_state(train_loader)}
        skip = start_step if epoch == start_epoch else 0
        sums = [0.0, 0.0, 0.0]  # loss * n, correct, n
        model.train()
        t0 = time.perf_counter()
        bar = tqdm(
            train_loader,
            desc=f"epoch {epoch + 1}/{args.epochs}",
            file=sys.stderr,
            disable=args.quiet or not run.main,
            dynamic_ncols=True,
        )
        stopped_at = None
        for step, (x, y) in enumerate(bar):
            if step < skip:
                continue
            if step == skip and skip > 0:
                checkpoint.set_rng_states(resume["rng"])
                sums = list(resume["sums"])
            if epoch * steps_per_epoch + step == interrupt_at:
                stop.requested = True
            if run.any(stop.requested):
                stopped_at = step
                break
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            with torch.autocast(device.type, enabled=args.amp, dtype=_amp_dtype(device)):
                out = net(encode(x))
                loss = compute_loss(out.float(), y)
            opt.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
            with torch.no_grad():
                sums[0] += float(loss) * len(y)
                sums[1] += float((out.float().mean(1).argmax(1) == y).sum())
                sums[2] += len(y)
            bar.set_postfix(loss=f"{sums[0] / sums[2]:.4f}", acc=f"{sums[1] / sums[2]:.2%}")
        bar.close()
        if stopped_at is not None:
            save(epoch, stopped_at, epoch_start, sums)
            return _stopped(run, f"in epoch {epoch + 1} after {stopped_at} batches", ckpt_path)
        train_time = time.perf_counter() - t0
        if sched is not None:
            sched.step()
        if args.evolved_alpha:
            algorithm.EvolvedAlpha.step()
        loss_sum, correct, count = run.sum(sums)
        test_loss, test_acc = evaluate(net, test_loader, args, run, criterion, device)
        record = {
            "epoch": epoch + 1,
            "train_loss": loss_sum / count,
            "train_acc": correct / count,
            "test_loss": test_loss,
            "test_acc": test_acc,
            "lr": opt.param_groups[0]["lr"],
            "epoch_time_s": round(time.perf_counter() - t0, 4),
            "train_images_per_s": round(count / train_time, 1),
        }
        history.append(record)
        if run.main:
            with open(metrics_path, "a") as f:
                f.write(json.dumps(record) + "\n")
            if args.quiet:
                print(json.dumps(record), file=sys.stderr)
        save(epoch + 1, 0, None, None)
        resume, start_step = None, 0
        if run.any(stop.requested) and epoch + 1 < args.epochs:
            return _stopped(run, f"after epoch {epoch + 1}", ckpt_path)

    digests = [_param_digest(model)]
    if run.distributed:  # proof that DDP kept every rank's parameters identical
        digests = [None] * run.world
        dist.all_gather_object(digests, _param_digest(model))
    # firing rates on the test set, measured by hooks that change no result
    with monitor.FiringRateMonitor(model) as mon:
        evaluate(net, test_loader, args, run, criterion, device)
        rates = mon.rates()
    if run.main:
        summary = {
            "final_test_acc": history[-1]["test_acc"],
            "best_test_acc": max(h["test_acc"] for h in history),
            "mean_epoch_time_s": sum(h["epoch_time_s"] for h in history) / len(history),
            "mean_train_images_per_s": sum(h["train_images_per_s"] for h in history) / len(history),
            "firing_rates": rates,
            "world_size": run.world,
            "rank_parameter_sha256": digests,
        }
        with open(os.path.join(args.out, "summary.json"), "w") as f:
            json.dump(summary, f, indent=1)
        if not args.no_plots:
            try:
                plots.curves(history, args.out)
                plots.firing_rates(rates, args.out)
            except ImportError:
                print(
                    "snetx-train: matplotlib not installed, no plots "
                    "(pip install 'snetx-vision[plot]')",
                    file=sys.stderr,
                )
        print(
            f"snetx-train: test accuracy {summary['final_test_acc']:.2%} "
            f"(best {summary['best_test_acc']:.2%}), "
            f"{summary['mean_epoch_time_s']:.2f} s/epoch, "
            f"{summary['mean_train_images_per_s']:.0f} train images/s; results in {args.out}"
        )
    return 0
