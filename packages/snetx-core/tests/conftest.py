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


@pytest.fixture(params=["host", "eager"])
def cpu_kernel(request):
    """Run a test on both CPU paths of the fused LIF (host C++ kernel, eager torch ops)."""
    from snetx.snn import _host_kernel

    previous = _host_kernel._state["mode"]
    if request.param == "host":
        try:
            _host_kernel.load()
        except _host_kernel.KernelUnavailable as e:
            pytest.skip(f"no host C++ compiler could build the CPU kernel: {e}")
    _host_kernel.set_mode(request.param)
    yield request.param
    _host_kernel._state["mode"] = previous
