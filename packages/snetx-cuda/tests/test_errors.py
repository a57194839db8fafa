import sys
from pathlib import Path

import pytest
import torch
from snetx.cuend import neuron as cu


def test_import_needs_no_gpu_and_compiles_nothing():
    import snetx.cuend
    from snetx.cuend import _compile

    assert snetx.cuend.REGISTERED_SG_FUNCLIST == (
        "arctan",
        "sigmoid",
        "rectangular",
        "triangle",
        "fast_sigmoid",
        "ste",
    )
    if not torch.cuda.is_available():
        assert _compile._modules == {}


def test_cpu_tensor_points_to_snn():
    with pytest.raises(ValueError, match="snetx.snn.neuron classes on the CPU"):
        cu.LIF()(torch.rand(2, 3, 4))


@pytest.mark.parametrize(
    "kwargs,exc,match",
    [
        (dict(sg="tanh"), ValueError, "unknown surrogate name"),
        (dict(tau=0.2), ValueError, "tau must be >= 1"),
        (dict(v_reset=2.0), ValueError, "v_reset must be < v_th"),
        (dict(alpha=[1]), TypeError, "alpha must be"),
    ],
)
def test_bad_parameters(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        cu.LIF(**kwargs)


def test_custom_surrogate_rejected_with_hint():
    from snetx.snn import surrogate

    class Mine(surrogate.SurrogateFunction):
        @staticmethod
        def derivative(z, alpha):
            return z * 0 + 1

    with pytest.raises(ValueError, match="registered surrogates"):
        cu.LIF(sg=Mine)
    assert cu.LIF(sg=surrogate.triangle).sg == "triangle"


def test_missing_cupy_says_what_to_install(monkeypatch):
    from snetx.cuend import _runtime

    monkeypatch.setattr(_runtime, "_checked", False)
    monkeypatch.setitem(sys.modules, "cupy", None)
    with pytest.raises(ImportError, match=r"pip install './packages/snetx-cuda\[cuda12\]'"):
        _runtime.require()


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU message")
def test_no_gpu_message(monkeypatch):
    pytest.importorskip("cupy")
    from snetx.cuend import _runtime

    monkeypatch.setattr(_runtime, "_checked", False)
    with pytest.raises(RuntimeError, match="needs a CUDA GPU"):
        _runtime.require()


@pytest.mark.gpu
def test_unsupported_dtype_is_type_error():
    with pytest.raises(TypeError, match="float32/float64/float16/bfloat16"):
        cu.LIF()(torch.zeros(2, 3, device="cuda").to(torch.float8_e4m3fn))


def test_cuda_neuron_extends_the_core_neuron():
    from snetx.cuend import neuron as cu
    from snetx.snn import monitor
    from snetx.snn import neuron as core

    m = cu.LIF(tau=3.0, v_reset=-0.5, sg="sigmoid", alpha=2.0, detach=True)
    assert isinstance(m, core.LIF) and isinstance(m, core.SpikingNeuron)
    assert isinstance(cu.IF(), core.LIF) and cu.IF().tau == 1.0
    assert repr(m) == repr(core.LIF(tau=3.0, v_reset=-0.5, sg="sigmoid", alpha=2.0, detach=True))
    assert monitor.is_neuron(m) and monitor.is_neuron(cu.IF())

    class Lookalike(torch.nn.Module):  # has v_th, is no neuron: not counted any more
        v_th = 1.0

    assert not monitor.is_neuron(Lookalike())
    # the same parameter checks, word for word
    for kwargs in ({"tau": 0.5}, {"v_reset": 2.0}, {"detach": 1}, {"alpha": -1.0}):
        with pytest.raises((TypeError, ValueError)) as a:
            core.LIF(**kwargs)
        with pytest.raises(type(a.value)) as b:
            cu.LIF(**kwargs)
        assert str(a.value) == str(b.value)


def test_core_headers_come_from_the_public_include_dir():
    import snetx.snn
    from snetx.cuend import _compile

    assert _compile.CORE_CSRC == Path(snetx.snn.include_dir())
    assert "enum SurrogateId" in _compile.source()  # inlined from the core header
