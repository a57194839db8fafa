"""The training loop of snetx-train, as a :class:`Trainer` with small named steps.

Position. A run is at ``(epoch, step, phase)``: ``phase`` is ``"train"`` (``step``
batches of ``epoch`` done) or ``"evaluate"`` (the epoch's training is done, its
evaluation is not). Every checkpoint stores the position, the RNG and loader states at
the start of the epoch and now, and the running sums of the epoch.

Exact resume. Resuming restores the states of the moment the checkpoint was written:
at a step > 0 it replays the epoch's data order from the epoch's start up to that step
(consuming the same randomness), then restores the states of the interrupted process;
at step 0 or in evaluation it restores them directly. The parameters and metrics of a
resumed run are then bit-identical to those of an uninterrupted one.

Stopping. Ctrl-C (SIGINT) or SIGTERM asks the loop to stop at the next safe point (a
batch, in training or evaluation): it writes a checkpoint and exits with code 130 (143 for
SIGTERM); a second signal aborts at once, keeping the last checkpoint. Under DDP the
request is shared by all ranks so they stop together. A
non-finite training loss stops the run before the optimiser applies it, with a
checkpoint of the last finite state. For tests, ``SNETX_TRAIN_INTERRUPT_AT`` makes a
stop request at a global training step (``"30"``) or in an epoch's evaluation
(``"evaluate:2"``).
"""

import hashlib
import math
import os
import sys
import time
from pathlib import Path

import torch
from snetx.dataset._common import batches
from snetx.snn import memory as saving
from snetx.snn import monitor
from snetx.snn.energy import SynapticOpsCounter
from torch import nn

from . import build, checkpoint, config, outdir, report
from . import strategy as strategies

EXIT_INTERRUPTED = 130


class NonFiniteLoss(Exception):
    """The training loss became NaN or infinite; the last finite state was saved."""


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


def _optimizer_tensors(opt):
    return [v for state in opt.state.values() for v in state.values() if torch.is_tensor(v)]


def param_digest(state_dict):
    """SHA-256 of a full model state dict's tensors (parameters and buffers)."""
    h = hashlib.sha256()
    for t in state_dict.values():
        if torch.is_tensor(t):
            h.update(t.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def _seed(seed):
    import random

    import numpy as np

    torch.manual_seed(seed)
    random.seed(seed)
    np.random.seed(seed)


class Trainer:
    """Builds the run from ``args`` (see :mod:`snetx.train.cli`) and trains it.

    ``run`` is a :class:`snetx.train.distributed.Run`, ``stop`` a :class:`StopRequest`.
    """

    def __init__(self, args, run, stop):
        self.args, self.run, self.stop = args, run, stop
        self.device = run.device
        self.out = Path(args.out)
        _seed(args.seed)
        self.train_loader, self.test_loader = build.loaders(args, run)
        self.alpha, self.alpha_schedule = build.surrogate_alpha(args)
        self.model = build.model(args, self.alpha).to(self.device)
        if getattr(args, "memory", "compact") == "checkpoint":
            saving.checkpoint_layers(self.model)  # names unchanged: checkpoints load as usual
        self.strategy = strategies.get(getattr(args, "strategy", "ddp"))
        self.net = self.strategy.wrap(self.model, run)  # DDP, FSDP or the model itself
        self.opt = build.optimizer(args, self.model.parameters())
        self.scaler = torch.amp.GradScaler("cuda", enabled=args.amp and self.device.type == "cuda")
        self.criterion = nn.CrossEntropyLoss()
        self.compute_loss = build.loss_fn(args, self.criterion)
        self.encode = build.encoder(args)
        self.history = []
        self.epoch, self.step, self.phase = 0, 0, "train"
        self.sums = [0.0, 0.0, 0.0]  # loss * n, correct, n
        self.epoch_start = None
        self._resume = None
        # test hook: "<global step>" or "evaluate:<epoch>" (1-based) requests a stop there
        hook = os.environ.get("SNETX_TRAIN_INTERRUPT_AT", "")
        self._interrupt_at = int(hook) if hook and ":" not in hook else -1
        self._interrupt_eval = int(hook.split(":")[1]) if hook.startswith("evaluate:") else -1

    # ---- files -------------------------------------------------------------------
    @property
    def metrics_path(self):
        return self.out / "metrics.jsonl"

    def write_config(self):
        """config.json (what this run was started or resumed with) and metrics.jsonl holding
        exactly the epochs done so far."""
        if not self.run.main:
            return
        outdir.write_text(self.out / "config.json", config.dumps(vars(self.args), indent=1))
        outdir.write_text(self.metrics_path, "".join(config.dumps(h) + "\n" for h in self.history))

    # ---- checkpoints ---------------------------------------------------------------
    def state(self):
        """The checkpoint's contents; every rank calls it (FSDP gathers the shards)."""
        model_state, optim_state = self.strategy.state(self.net, self.model, self.opt)
        return {
            "args": config.plain(vars(self.args)),
            "world_size": self.run.world,
            "model": model_state,
            "optimizer": optim_state,
            "scaler": self.scaler.state_dict(),
            "alpha_schedule": self.alpha_schedule and self.alpha_schedule.state_dict(),
            "history": config.plain(self.history),
            "epoch": self.epoch,
            "step": self.step,
            "phase": self.phase,
            "epoch_start": self.epoch_start,
            "rng": checkpoint.rng_states(),
            "loader": _loader_state(self.train_loader),
            "sums": list(self.sums),
        }

    def save(self):
        state = self.state()
        if self.run.main:
            checkpoint.save(state, self.out)
        self.run.barrier()

    def restore(self, ckpt):
        """Load a checkpoint's model, optimiser and position (already checked to match
        this configuration by the command line)."""
        try:
            self.strategy.load(self.net, self.model, self.opt, ckpt["model"], ckpt["optimizer"])
        except (RuntimeError, ValueError, KeyError) as e:
            first = str(e).strip().splitlines()[0]
            raise checkpoint.CheckpointError(
                f"the checkpoint does not match the model built from these options ({first})"
            ) from None
        self.scaler.load_state_dict(ckpt["scaler"])
        if self.alpha_schedule is not None:
            self.alpha_schedule.load_state_dict(ckpt["alpha_schedule"])
            self.alpha_schedule.epoch = self.args.epochs  # a longer run stretches it
        steps = len(self.train_loader)
        if ckpt["step"] > steps or (ckpt["phase"] == "evaluate" and ckpt["step"] != steps):
            raise checkpoint.NoUsableCheckpoint(
                f"malformed snetx-train checkpoint: field 'step' is {ckpt['step']} in phase "
                f"{ckpt['phase']!r}, but an epoch of this run has {steps} batches"
            )
        self.history = list(ckpt["history"])
        self.epoch, self.step, self.phase = ckpt["epoch"], ckpt["step"], ckpt["phase"]
        self.sums = list(ckpt["sums"])
        self.epoch_start = ckpt["epoch_start"]
        self._resume = ckpt
        if self.phase == "evaluate" or self.epoch_start is None:
            # between epochs, or between training and evaluation: the states of that moment
            checkpoint.set_rng_states(ckpt["rng"])
            _set_loader_state(self.train_loader, ckpt["loader"])
        # inside an epoch's training, train_epoch replays it from the epoch's start

    # ---- the loop ----------------------------------------------------------------
    def fit(self) -> int:
        """Train from the current position to ``args.epochs``; the exit code."""
        self.stop.armed = True  # from here a signal waits for the next safe point
        if self._resume is None:
            self.save()  # the starting state: there is always a finite state to go back to
        while self.epoch < self.args.epochs:
            if self.phase == "train":
                if not self.train_epoch():
                    return self._stopped(f"in epoch {self.epoch + 1} after {self.step} batches")
                self.end_training_part()
            test = self.evaluate(stoppable=True)
            if test is None:
                self.save()
                return self._stopped(f"while evaluating epoch {self.epoch + 1}")
            self.record(*test)
            self.epoch, self.step, self.phase = self.epoch + 1, 0, "train"
            self.sums, self.epoch_start, self._resume = [0.0, 0.0, 0.0], None, None
            self.save()
            if self.run.any(self.stop.requested) and self.epoch < self.args.epochs:
                return self._stopped(f"after epoch {self.epoch}")
        self.finish()
        return 0

    def _set_lr(self):
        lr = build.lr_at(self.args, self.epoch)
        for group in self.opt.param_groups:
            group["lr"] = lr

    def train_epoch(self) -> bool:
        """Train the rest of the current epoch; False when stopped (checkpoint written)."""
        skip = self.step
        if self._resume is not None and self.epoch_start is not None:
            # resumed inside this epoch: replay its data order and randomness from its start
            checkpoint.set_rng_states(self.epoch_start["rng"])
            _set_loader_state(self.train_loader, self.epoch_start["loader"])
        else:
            self.epoch_start = {
                "rng": checkpoint.rng_states(),
                "loader": _loader_state(self.train_loader),
            }
            self.sums = [0.0, 0.0, 0.0]
        self._set_lr()
        self.model.train()
        self._t0 = time.perf_counter()
        steps_per_epoch = len(self.train_loader)
        with batches(self.train_loader) as stream:
            bar = self._bar(stream, f"epoch {self.epoch + 1}/{self.args.epochs}")
            for step, (x, y) in enumerate(bar):
                if step < skip:
                    continue
                if step == skip and skip > 0:
                    checkpoint.set_rng_states(self._resume["rng"])
                if self.epoch * steps_per_epoch + step == self._interrupt_at:
                    self.stop.requested = True
                if self.run.any(self.stop.requested):
                    bar.close()
                    self.save()
                    return False
                self.train_step(x, y)
                self.step = step + 1
                s = self.sums
                bar.set_postfix(loss=f"{s[0] / s[2]:.4f}", acc=f"{s[1] / s[2]:.2%}")
            bar.close()
        self._train_time = time.perf_counter() - self._t0
        return True

    def train_step(self, x, y):
        args, device = self.args, self.device
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        compact = saving.compact(getattr(args, "memory", "compact") != "plain")
        with torch.autocast(device.type, enabled=args.amp, dtype=build.amp_dtype(device)), compact:
            out = self.net(self.encode(x))
            loss = self.compute_loss(out.float(), y)
        value = float(loss.detach())
        if self.run.any(not math.isfinite(value)):
            self._stop_non_finite(value)
        self.opt.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.opt)
        self.scaler.update()
        with torch.no_grad():
            self.sums[0] += value * len(y)
            self.sums[1] += float((out.float().mean(1).argmax(1) == y).sum())
            self.sums[2] += len(y)

    def _stop_non_finite(self, value):
        """Save the current state if it is finite (only this batch's loss blew up); else
        the checkpoint on disk stays the last finite state. Raises NonFiniteLoss."""
        tensors = [*self.model.state_dict().values(), *_optimizer_tensors(self.opt)]
        tensors = [t.to_local() if hasattr(t, "to_local") else t for t in tensors]  # FSDP
        finite = all(torch.isfinite(t).all() for t in tensors if t.is_floating_point())
        if self.run.any(not finite):
            where = "the checkpoint written before"
        else:
            self.save()
            where = "this batch's checkpoint"
        raise NonFiniteLoss(
            f"the training loss became {value} in epoch {self.epoch + 1} at batch "
            f"{self.step + 1}; stopped. The last finite state is {where}, "
            f"{self.out / checkpoint.LATEST} (try a lower --lr)"
        )

    def end_training_part(self):
        """The epoch's training is done: advance the alpha schedule; evaluation is next."""
        if self.alpha_schedule is not None:
            self.alpha_schedule.step()
        self.phase = "evaluate"

    def evaluate(self, stoppable=False):
        """(test loss, test accuracy) over every rank; None when a stop was requested."""
        self.net.eval()
        args, device = self.args, self.device
        loss = correct = count = 0.0
        amp = torch.autocast(device.type, enabled=args.amp, dtype=build.amp_dtype(device))
        with torch.no_grad(), amp, batches(self.test_loader) as stream:
            for x, y in stream:
                if stoppable and self.epoch + 1 == self._interrupt_eval:
                    self.stop.requested = True
                if stoppable and self.run.any(self.stop.requested):
                    return None
                x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
                out = self.net(self.encode(x)).float().mean(1)
                loss += float(self.criterion(out, y)) * len(y)
                correct += float((out.argmax(1) == y).sum())
                count += len(y)
        loss, correct, count = self.run.sum([loss, correct, count])
        return loss / max(count, 1), correct / max(count, 1)

    def record(self, test_loss, test_acc):
        loss_sum, correct, count = self.run.sum(self.sums)
        train_time = getattr(self, "_train_time", None)
        record = {
            "epoch": self.epoch + 1,
            "train_loss": loss_sum / max(count, 1),
            "train_acc": correct / max(count, 1),
            "test_loss": test_loss,
            "test_acc": test_acc,
            "lr": build.lr_at(self.args, self.epoch),
            "epoch_time_s": round(time.perf_counter() - self._t0, 4) if train_time else None,
            "train_images_per_s": round(count / train_time, 1) if train_time else None,
        }
        self.history.append(record)
        self._train_time = None
        if self.run.main:
            line = config.dumps(record)
            outdir.append_text(self.metrics_path, line + "\n")
            if not self._interactive():
                print(line, file=sys.stderr)

    # ---- the end -----------------------------------------------------------------
    def finish(self):
        """Measure firing rates on the test set, then write summary.json and the plots."""
        full = self.strategy.model_state(self.net, self.model)  # FSDP: gathered
        digests = self.run.gather(param_digest(full))  # each rank's view of the full model
        # hooks that only read the layers' inputs and outputs: no result changes
        with monitor.FiringRateMonitor(self.model) as mon, SynapticOpsCounter(self.model) as ops:
            self.evaluate()
            rates = mon.rates()
        if self.run.main:
            report.write(
                self.out, self.history, rates, self.run.world, digests, self.args.no_plots, ops
            )

    # ---- helpers -----------------------------------------------------------------
    def _interactive(self):
        return not self.args.quiet and sys.stderr.isatty()

    def _bar(self, iterable, desc):
        from tqdm import tqdm

        return tqdm(
            iterable,
            desc=desc,
            file=sys.stderr,
            disable=not (self.run.main and self._interactive()),
            dynamic_ncols=True,
        )

    def _stopped(self, where):
        if self.run.main:
            print(
                f"snetx-train: {'stopped by SIGTERM' if self.stop.code == 143 else 'interrupted'} "
                f"{where}; checkpoint saved to "
                f"{self.out / checkpoint.LATEST}; continue with --resume",
                file=sys.stderr,
            )
        return self.stop.code if self.stop.signal is not None else EXIT_INTERRUPTED
