"""How a run's model is spread over the processes of ``torchrun``: ``--strategy``.

- ``ddp`` (default): every process holds the whole model; gradients are averaged
  (``torch.nn.parallel.DistributedDataParallel``).
- ``fsdp``: parameters, gradients and optimiser state are sharded over the processes
  (``torch.distributed.fsdp.fully_shard``, FSDP2), gathered layer by layer when used:
  models larger than one device's memory.
- ``none``: one process, no wrapping (refused under ``torchrun`` with several processes,
  whose gradients would then never meet).

Checkpoints are the same whichever strategy wrote them: the full model state dict with
the model's own parameter names and the optimiser state in ``torch.optim``'s index form,
so a run may resume under another strategy and ``snetx-export`` reads any of them.
Under FSDP, gathering them is a collective: every process calls :meth:`Strategy.state`.
"""

from torch import nn

NAMES = ("ddp", "fsdp", "none")


class Strategy:
    """No wrapping: the model runs as it is (one process, or any strategy alone)."""

    name = "none"

    def wrap(self, model, run):
        return model

    def model_state(self, net, model):
        """The full model state dict, with the model's own names."""
        return model.state_dict()

    def state(self, net, model, opt):
        """(model state dict, optimiser state dict), full and in the plain form."""
        return self.model_state(net, model), opt.state_dict()

    def load(self, net, model, opt, model_state, optim_state):
        model.load_state_dict(model_state)
        opt.load_state_dict(optim_state)


class DDP(Strategy):
    name = "ddp"

    def wrap(self, model, run):
        if not run.distributed:
            return model
        ids = [run.local] if run.device.type == "cuda" else None
        return nn.parallel.DistributedDataParallel(model, device_ids=ids)


def _names(model):
    return [name for name, _ in model.named_parameters()]


def _by_index(osd, names):
    """An optimiser state dict keyed by parameter names (DCP's form) in torch.optim's
    index form, which single-process and DDP runs write."""
    index = {name: i for i, name in enumerate(names)}
    return {
        "state": {index[k]: v for k, v in osd["state"].items()},
        "param_groups": [
            {**g, "params": [index[p] for p in g["params"]]} for g in osd["param_groups"]
        ],
    }


def _by_name(osd, names):
    return {
        "state": {names[k]: v for k, v in osd["state"].items()},
        "param_groups": [
            {**g, "params": [names[p] for p in g["params"]]} for g in osd["param_groups"]
        ],
    }


def _broadcast_buffers(module, args):
    import torch.distributed as dist

    for b in module.buffers():
        dist.broadcast(b.data, src=0)


class FSDP(Strategy):
    name = "fsdp"

    def wrap(self, model, run):
        if not run.distributed:
            return model
        from torch.distributed.fsdp import fully_shard

        # each block its own unit (gathered while it runs), then the whole model
        for child in list(model.children()):
            if any(p.requires_grad for p in child.parameters()):
                fully_shard(child)
        fully_shard(model)
        # Buffers (BatchNorm's running statistics) are not sharded: each process would
        # keep its own. As DDP does, every forward starts from rank 0's, so evaluation,
        # checkpoints and every rank agree.
        model.register_forward_pre_hook(_broadcast_buffers)
        return model

    def _options(self):
        from torch.distributed.checkpoint.state_dict import StateDictOptions

        return StateDictOptions(full_state_dict=True)

    def model_state(self, net, model):
        import torch.distributed as dist

        if not dist.is_initialized():
            return super().model_state(net, model)
        from torch.distributed.checkpoint.state_dict import get_model_state_dict

        return get_model_state_dict(model, options=self._options())

    def state(self, net, model, opt):
        import torch.distributed as dist

        if not dist.is_initialized():
            return super().state(net, model, opt)
        from torch.distributed.checkpoint.state_dict import get_optimizer_state_dict

        sd = self.model_state(net, model)
        if not opt.state:  # before the first step: nothing sharded to gather (and DCP would
            return sd, opt.state_dict()  # initialise the state with a step of its own)
        osd = get_optimizer_state_dict(model, opt, options=self._options())
        return sd, _by_index(osd, _names(model))

    def load(self, net, model, opt, model_state, optim_state):
        import torch.distributed as dist

        if not dist.is_initialized():
            return super().load(net, model, opt, model_state, optim_state)
        from torch.distributed.checkpoint.state_dict import (
            set_model_state_dict,
            set_optimizer_state_dict,
        )

        set_model_state_dict(model, model_state, options=self._options())
        if not optim_state["state"]:  # saved before the first step: groups only
            opt.load_state_dict(optim_state)
            return
        named = _by_name(optim_state, _names(model))
        set_optimizer_state_dict(model, opt, named, options=self._options())


STRATEGIES = {"none": Strategy, "ddp": DDP, "fsdp": FSDP}


def get(name: str) -> Strategy:
    return STRATEGIES[name]()
