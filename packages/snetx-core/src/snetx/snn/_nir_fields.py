"""Reading and writing the numeric fields of NIR neuron nodes, for the neurons' own
``to_nir``/``from_nir`` (no dependency on the ``nir`` package: nodes are read by their
attributes). Problems raise ValueError naming the field; :mod:`snetx.nir` adds the node."""

import numpy as np
import torch


def finite(field, a):
    a = np.asarray(a, dtype=np.float64)
    if not np.isfinite(a).all():
        raise ValueError(f"{field} holds NaN or infinite values")
    return a


def uniform(field, a):
    """The one value of ``a`` (every neuron the same)."""
    a = finite(field, a)
    if a.size and not np.all(a == a.flat[0]):
        raise ValueError(f"{field} differs between neurons; snetx needs one value")
    return float(a.flat[0]) if a.size else 0.0


def channel_values(field, a):
    """A value per channel (dim 0), constant over the other dims."""
    a = finite(field, a)
    if a.ndim == 0:
        return a.reshape(1)
    flat = a.reshape(a.shape[0], -1)
    if not np.all(flat == flat[:, :1]):
        raise ValueError(
            f"{field} varies within a channel; snetx runs one value per layer or per channel"
        )
    return flat[:, 0]


def decay(field, tau, dt):
    """``1 - dt / tau``, the Euler step's decay, which must lie in (0, 1)."""
    k = 1.0 - dt / tau
    if np.any(k <= 0) or np.any(k >= 1):
        raise ValueError(
            f"{field} {tau.min():g}..{tau.max():g} with dt {dt:g} gives a decay outside "
            "(0, 1): give load() the dt the graph was made for"
        )
    return k


def one_value(k):
    """The value of ``k`` when every entry is the same, else None."""
    return float(k[0]) if k.size == 1 or np.all(k == k[0]) else None


def set_learned(module, param, k):
    """Store the decay(s) ``k`` in the learned parameter ``param`` (``sigmoid(w) = k``),
    frozen: an imported graph runs as written."""
    with torch.no_grad():
        getattr(module, param).copy_(torch.as_tensor(np.log(k / (1.0 - k))))
    getattr(module, param).requires_grad_(False)


def per_neuron(value, shape):
    """``value`` (scalar or per-channel along dim 0) as an array of the layer's shape."""
    value = np.asarray(value, dtype=np.float64)
    if value.ndim == 1:
        value = value.reshape((-1,) + (1,) * (len(shape) - 1))
    return np.broadcast_to(value, shape).copy()


def learned_decay(neuron, name):
    """The neuron's decay of the time constant ``name``: a float, or a per-channel array
    when learned per channel."""
    if name in neuron.learn:
        param = "w" if name == "tau" else "w_" + name
        k = torch.sigmoid(getattr(neuron, param).detach().double()).cpu().numpy()
        return float(k) if k.ndim == 0 else k
    return 1.0 / float(getattr(neuron, name))
