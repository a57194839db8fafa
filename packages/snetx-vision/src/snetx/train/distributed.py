"""The process group of a run: who writes files, how metrics are summed, timeouts.

Under torchrun (``WORLD_SIZE > 1``) every rank joins one process group (NCCL on CUDA,
gloo on CPU) with a timeout of ``--ddp-timeout`` seconds: when one rank stops responding,
the others raise :class:`RankTimeout` within that time instead of waiting for half an
hour.
"""

import contextlib
import datetime
import os

import torch
import torch.distributed as dist


class RankTimeout(Exception):
    """A collective operation did not complete: another rank stopped responding."""


_PEER_SIGNS = ("gloo", "nccl", "timed out", "connection closed", "connection reset")


def lost_peer(e: BaseException) -> bool:
    """Whether an error raised inside a distributed step means a peer is gone."""
    if isinstance(e, dist.DistError):
        return True
    msg = str(e).lower()
    return any(sign in msg for sign in _PEER_SIGNS)


class Run:
    """Process-group facts: rank 0 writes files; metrics are summed over ranks."""

    def __init__(self, device: str, timeout_s: float = 600.0):
        self.distributed = int(os.environ.get("WORLD_SIZE", "1")) > 1
        self.rank, self.world, self.local = 0, 1, 0
        self.timeout_s = timeout_s
        cuda = device.startswith("cuda")
        if self.distributed:
            self.local = int(os.environ.get("LOCAL_RANK", "0"))
            if cuda:
                torch.cuda.set_device(self.local)
            dist.init_process_group(
                "nccl" if cuda else "gloo", timeout=datetime.timedelta(seconds=timeout_s)
            )
            self.rank, self.world = dist.get_rank(), dist.get_world_size()
        self.device = torch.device(f"cuda:{self.local}" if cuda and self.distributed else device)

    @property
    def main(self):
        return self.rank == 0

    def _timeout(self, e):
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        return RankTimeout(
            f"rank {self.rank}: another process of the run stopped responding "
            f"(no answer within --ddp-timeout {self.timeout_s:g} s: {first})"
        )

    def _collective(self, fn, *args):
        try:
            return fn(*args)
        except RuntimeError as e:  # gloo/NCCL report a timed-out or broken peer this way
            raise self._timeout(e) from None

    @contextlib.contextmanager
    def watch(self):
        """Turn a lost peer met outside our own collectives (DDP's gradient all-reduce in
        ``backward``, its buffer broadcast in ``forward``) into :class:`RankTimeout`;
        any other error passes through unchanged."""
        try:
            yield
        except RuntimeError as e:
            if not (self.distributed and lost_peer(e)):
                raise
            raise self._timeout(e) from None

    def sum(self, values):
        t = torch.tensor(values, dtype=torch.float64, device=self.device)
        if self.distributed:
            self._collective(dist.all_reduce, t)
        return t.tolist()

    def any(self, flag):
        """True on every rank when any rank says True."""
        if not self.distributed:
            return bool(flag)
        t = torch.tensor([1.0 if flag else 0.0], device=self.device)
        self._collective(dist.all_reduce, t)
        return bool(t.item() > 0)

    def barrier(self):
        if self.distributed:
            self._collective(dist.barrier)

    def gather(self, obj):
        if not self.distributed:
            return [obj]
        out = [None] * self.world
        self._collective(dist.all_gather_object, out, obj)
        return out

    def close(self):
        if self.distributed and dist.is_initialized():
            dist.destroy_process_group()
