import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))


@pytest.fixture(autouse=True)
def _restore_evolved_alpha():
    from snetx.snn.algorithm import EvolvedAlpha

    state = EvolvedAlpha.state_dict()
    yield
    EvolvedAlpha.load_state_dict(state)


@pytest.fixture(params=["compiled", "eager"])
def cpu_kernel(request):
    """Run a test on both CPU paths of the fused LIF (compiled kernel, eager torch ops)."""
    from snetx.snn import _cpu_kernel

    previous = _cpu_kernel._state["mode"]
    if request.param == "compiled":
        try:
            _cpu_kernel.load()
        except _cpu_kernel.KernelUnavailable as e:
            pytest.skip(f"no host C++ compiler could build the CPU kernel: {e}")
    _cpu_kernel.set_mode(request.param)
    yield request.param
    _cpu_kernel._state["mode"] = previous
