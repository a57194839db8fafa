"""The torch.library wiring of snetx.cuend, exercised without a GPU on fake CUDA tensors:
the fake implementations, the registered autograd and what is saved for backward."""

import pytest
import torch
from snetx.cuend import _ops
from torch._subclasses.fake_tensor import FakeTensorMode

C = [1.0, 0.0, 0.0, 0.0]  # v_th, v_reset and two unused constants


def KF(x):
    return torch.full((1, x[0, 0].numel()), 0.5, device=x.device)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16])
def test_forward_backward_wiring_on_meta_tensors(dtype):
    # register_fake also serves the meta device, where autograd runs without any GPU
    x = torch.empty(4, 3, 8, 8, device="meta", dtype=dtype, requires_grad=True)
    saved = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t) or t, lambda t: t):
        spikes, ckpt, u_last = _ops.neuron("lif", x, None, KF(x), C, False, 4.0, "arctan", False)
    assert spikes.shape == x.shape and spikes.dtype == dtype
    state = torch.float64 if dtype == torch.float64 else torch.float32
    assert u_last.shape == (1, 4, 64) and u_last.dtype == state
    # saved: the input itself (no new memory), the state before each chunk of steps and
    # the decays (one per feature)
    assert ckpt.shape == (4, 1, 1, 64) and ckpt.dtype == state  # T = 3: one chunk
    assert len(saved) == 3 and saved[0] is x and saved[1].shape == (4, 1, 1, 64)
    assert saved[2].shape == (1, 64)
    (gx,) = torch.autograd.grad(spikes, x, torch.ones_like(spikes))
    assert gx.shape == x.shape and gx.dtype == dtype and gx.device.type == "meta"


@pytest.mark.parametrize("name,states", [("lif", 1), ("cubalif", 2), ("alif", 2)])
@pytest.mark.parametrize("soft", [False, True])
def test_state_and_decay_gradients_on_meta_tensors(soft, name, states):
    # st0 (STATES x N x F) and the decays kf (DECAYS x F) get gradients of their own shape
    # through the registered backward; what is saved is the input, the checkpoints and them
    x = torch.empty(4, 3, 8, 8, device="meta", requires_grad=True)
    u0 = torch.empty(states, 4, 64, device="meta", requires_grad=True)
    kf = torch.empty(states, 64, device="meta", requires_grad=True)  # as many decays
    saved = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t) or t, lambda t: t):
        spikes, _, u_last = _ops.neuron(name, x, u0, kf, C, soft, 4.0, "arctan", False)
    assert sorted(tuple(t.shape) for t in saved) == sorted(
        [(4, 1, states, 64), (4, 3, 8, 8), (states, 4, 64), (states, 64)]
    )
    gx, gu0, gk = torch.autograd.grad(
        (spikes, u_last), (x, u0, kf), (torch.ones_like(spikes), torch.ones_like(u_last))
    )
    assert gx.shape == x.shape and gu0.shape == u0.shape and gk.shape == kf.shape


def test_forward_on_fake_cuda_tensors():
    with FakeTensorMode():
        x = torch.empty(4, 3, 8, device="cuda", dtype=torch.bfloat16)
        kf = torch.empty(1, 8, device="cuda")
        spikes, ckpt, u_last = _ops.neuron("lif", x, None, kf, C, False, 4.0, "arctan", False)
        assert spikes.device.type == "cuda" and spikes.shape == x.shape
        assert ckpt.shape == (4, 1, 1, 8) and ckpt.dtype == torch.float32
        assert u_last.shape == (1, 4, 8) and u_last.dtype == torch.float32


def test_ops_are_registered_with_schemas():
    schema = str(torch.ops.snetx_cuend.neuron.default._schema)
    assert "str name" in schema and "float[] consts" in schema and "str sg" in schema
    assert "Tensor? st0" in schema and "Tensor kf" in schema and "bool soft" in schema
    assert "Tensor" in str(torch.ops.snetx_cuend.neuron_backward.default._schema)


def test_opcheck_fake_and_autograd_registration_on_meta():
    # torch.library.opcheck's static checks need no device: run them on fake tensors
    with FakeTensorMode():
        x = torch.empty(2, 3, 5, device="cuda")
        kf = torch.empty(1, 5, device="cuda")
        rule = (C, True, 4.0, "sigmoid", True)
        out = torch.ops.snetx_cuend.neuron("lif", x, None, kf, *rule)
        g = torch.ops.snetx_cuend.neuron_backward(
            "lif", x, out[1], out[0], None, None, kf, *rule, False, False
        )
    assert g[0].shape == (2, 3, 5) and g[1].shape == g[2].shape == (0,)


@pytest.mark.parametrize(
    "dtype,scalar",
    [
        (torch.float32, "float32"),
        (torch.float64, "float64"),
        (torch.bfloat16, "float32"),
        (torch.float16, "float32"),
    ],
)
def test_launch_passes_explicitly_typed_arguments(monkeypatch, dtype, scalar):
    # The kernel and device calls are stubbed; what is checked is the argument tuple the
    # kernel receives: pointers as uint64, sizes as int64, scalars in the state type.
    import contextlib
    import sys
    import types

    import numpy as np
    from snetx.cuend import _compile

    calls = []
    monkeypatch.setattr(
        _compile,
        "get_kernel",
        lambda io, name, dev, neuron: lambda grid, block, args: calls.append(
            (io, name, grid, block, args)
        ),
    )
    monkeypatch.setattr(_ops, "_cupy_stream", lambda cupy, s: contextlib.nullcontext())
    monkeypatch.setattr(torch.cuda, "device", lambda d: contextlib.nullcontext())
    monkeypatch.setattr(torch.cuda, "current_stream", lambda d: None)
    monkeypatch.setattr(
        torch.cuda,
        "get_device_properties",
        lambda d: types.SimpleNamespace(multi_processor_count=2),
    )
    monkeypatch.setitem(sys.modules, "cupy", types.ModuleType("cupy"))
    x, s = (torch.zeros(3, 4, 5, dtype=dtype) for _ in range(2))
    ckpt, u_last, kf = torch.zeros(3, 1, 1, 5), torch.zeros(1, 3, 5), torch.zeros(1, 5)
    name = _compile.forward_name(_ops.DTYPES[dtype])
    _ops._launch(x, "lif", name, (x, ckpt, s, None, u_last, kf), C)
    _ops._launch(x, "lif", name, (x, None, s, None, None, kf), C)
    (io, name, grid, block, args), (*_, no_ckpt) = calls
    # evaluation: ckpt = nullptr
    assert no_ckpt[1] == np.uint64(0) and type(no_ckpt[1]) is np.uint64
    assert io == _ops.DTYPES[dtype] and name.startswith("snetx::forward<snetx::Lif, ")
    assert block == (_ops.THREADS,) and grid == (1,)
    assert [type(a) for a in args[:6]] == [np.uint64] * 6
    assert args[0] == x.data_ptr() and args[2] == s.data_ptr() and args[4] == u_last.data_ptr()
    assert args[3] == 0 and args[5] == kf.data_ptr()  # no st0 (rest); the decays
    assert [type(a) for a in args[6:9]] == [np.int64] * 3
    assert (int(args[6]), int(args[7]), int(args[8])) == (15, 4, 5)  # N*F, T, F
    assert [np.dtype(type(a)).name for a in args[9:]] == [scalar] * 4


def test_kernels_are_compiled_once_and_looked_up_once(monkeypatch):
    # CuPy is stubbed (no GPU here): what is checked is snetx's caching, which keeps every
    # launch after the first free of compilation and module/function lookups, the driver
    # calls that CUDA graph capture does not allow
    import contextlib
    import sys
    import types

    from snetx.cuend import _compile

    made, looked_up = [], []

    class Module:
        def __init__(self, **kw):
            made.append(kw)

        def get_function(self, name):
            looked_up.append(name)
            return ("kernel", name)

    cupy = types.ModuleType("cupy")
    cupy.RawModule = Module
    cupy.cuda = types.SimpleNamespace(Device=lambda i: contextlib.nullcontext())
    monkeypatch.setitem(sys.modules, "cupy", cupy)
    monkeypatch.setattr(_compile, "_modules", {})
    monkeypatch.setattr(_compile, "_kernels", {})
    fwd = _compile.forward_name("float32")
    bwd = _compile.backward_name("float32", "sigmoid", True)
    for _ in range(3):
        assert _compile.get_kernel("float32", fwd, 0) == ("kernel", fwd)
        assert _compile.get_kernel("float32", bwd, 0) == ("kernel", bwd)
    _compile.get_kernel("float32", fwd, 1)  # another device: its own module
    _compile.get_kernel("bfloat16", _compile.forward_name("bfloat16"), 0)
    alif = _compile.forward_name("float32", neuron="alif")
    _compile.get_kernel("float32", alif, 0, "alif")  # another neuron: its own module
    assert len(made) == 4 and looked_up.count(fwd) == 2 and looked_up.count(bwd) == 1
    assert alif in made[3]["name_expressions"] and fwd not in made[3]["name_expressions"]
    assert made[0]["options"] == _compile.OPTIONS and fwd in made[0]["name_expressions"]


def test_torch_compile_fullgraph_traces_the_custom_op(monkeypatch):
    # Dynamo + AOTAutograd over cu.LIF without a GPU: meta tensors stand in for CUDA ones
    # (the op's fake implementation serves them), so only the device check is relaxed
    from snetx.cuend import neuron as cu
    from snetx.snn import functional as F

    monkeypatch.setattr(cu, "check_cuda_input", F.check_input)
    monkeypatch.setattr(cu, "_runtime_check", lambda: None)
    lif = cu.LIF(v_reset=-0.2, alpha=lambda: 3.0)

    def f(x):
        return lif(torch.relu(x)) * 2

    torch._dynamo.reset()
    x = torch.empty(4, 8, 64, device="meta", requires_grad=True)
    y = torch.compile(f, backend="aot_eager", fullgraph=True)(x)
    y.sum().backward()
    assert y.shape == x.shape and x.grad.shape == x.shape
    # training records the graph op (alpha, sg, detach reach it); evaluation the spikes-only op
    for requires_grad, call in (
        (True, "neuron.default('lif', contiguous, None, "),
        (False, "neuron_spikes.default('lif', contiguous, None, "),
    ):
        x = torch.empty(4, 8, 64, device="meta", requires_grad=requires_grad)
        explained = torch._dynamo.explain(f)(x)
        assert explained.graph_count == 1 and explained.graph_break_count == 0
        assert f"torch.ops.snetx_cuend.{call}" in explained.graphs[0].code


def test_evaluation_launches_the_spikes_only_op(monkeypatch):
    # no graph to record (no_grad, or an input without requires_grad) -> neuron_spikes, which
    # writes no checkpoints; otherwise neuron (spikes and checkpoints, with the backward)
    from snetx.cuend import neuron as cu
    from snetx.snn import functional as F

    monkeypatch.setattr(cu, "check_cuda_input", F.check_input)
    monkeypatch.setattr(cu, "_runtime_check", lambda: None)
    called = []
    for name in ("neuron", "neuron_spikes"):
        op = getattr(_ops, name)
        monkeypatch.setattr(_ops, name, lambda *a, _op=op, _n=name: called.append(_n) or _op(*a))
    x = torch.empty(2, 3, 8, device="meta", requires_grad=True)
    assert cu.LIF()(x).requires_grad and called == ["neuron"]
    with torch.no_grad():
        assert not cu.LIF()(x).requires_grad
    y = cu.LIF()(x.detach())
    assert called == ["neuron", "neuron_spikes", "neuron_spikes"] and y.shape == x.shape
    assert "Tensor" in str(torch.ops.snetx_cuend.neuron_spikes.default._schema)


def test_torch_compile_fullgraph_with_state_and_plif(monkeypatch):
    # state in and out, soft reset and a per-channel learnable decay through the custom op
    from snetx.cuend import neuron as cu
    from snetx.snn import functional as F

    monkeypatch.setattr(cu, "check_cuda_input", F.check_input)
    monkeypatch.setattr(cu, "_runtime_check", lambda: None)
    plif = cu.PLIF(v_reset=None, channels=3).to("meta")

    def f(x, u0):
        s, (u,) = plif._run(x, 4.0, u0)
        return s, u

    torch._dynamo.reset()
    x = torch.empty(2, 5, 3, 4, device="meta", requires_grad=True)
    u0 = torch.empty(2, 3, 4, device="meta", requires_grad=True)
    s, u = torch.compile(f, backend="aot_eager", fullgraph=True)(x, u0)
    (s.sum() + u.sum()).backward()
    assert x.grad.shape == x.shape and u0.grad.shape == u0.shape
    assert plif.w.grad.shape == (3,)
    explained = torch._dynamo.explain(f)(x, u0)
    assert explained.graph_count == 1 and explained.graph_break_count == 0


@pytest.mark.parametrize("cls", ["CubaLIF", "ALIF"])
def test_new_members_run_through_the_same_ops(monkeypatch, cls):
    from snetx.cuend import neuron as cu
    from snetx.snn import functional as F
    from snetx.snn import neuron as core

    monkeypatch.setattr(cu, "check_cuda_input", F.check_input)
    monkeypatch.setattr(cu, "_runtime_check", lambda: None)
    m = getattr(cu, cls)(stateful=True, learn=True).to("meta")
    assert isinstance(m, getattr(core, cls)) and m.backend == "cuda"
    x = torch.empty(2, 5, 3, device="meta", requires_grad=True)
    m(x).sum().backward()
    assert isinstance(m.state, m.description.state) and m.state[0].shape == (2, 3)
    assert all(p.grad is not None for p in m.parameters())
