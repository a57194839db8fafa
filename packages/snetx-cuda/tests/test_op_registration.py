"""The torch.library wiring of snetx.cuend, exercised without a GPU on fake CUDA tensors:
the fake implementations, the registered autograd and what is saved for backward."""

import pytest
import torch
from snetx.cuend import _ops
from torch._subclasses.fake_tensor import FakeTensorMode


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16])
def test_forward_backward_wiring_on_meta_tensors(dtype):
    # register_fake also serves the meta device, where autograd runs without any GPU
    x = torch.empty(4, 3, 8, 8, device="meta", dtype=dtype, requires_grad=True)
    saved = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t) or t, lambda t: t):
        spikes, ckpt, u_last = _ops.lif(x, None, None, 0.5, 1.0, 0.0, False, 4.0, "arctan", False)
    assert spikes.shape == x.shape and spikes.dtype == dtype
    state = torch.float64 if dtype == torch.float64 else torch.float32
    assert u_last.shape == (4, 64) and u_last.dtype == state
    # saved: the input itself (no new memory) and the membrane before each chunk of steps
    assert ckpt.shape == (4, 1, 64) and ckpt.dtype == state  # T = 3: one chunk
    assert len(saved) == 2 and saved[0] is x and saved[1].shape == (4, 1, 64)
    (gx,) = torch.autograd.grad(spikes, x, torch.ones_like(spikes))
    assert gx.shape == x.shape and gx.dtype == dtype and gx.device.type == "meta"


@pytest.mark.parametrize("soft", [False, True])
def test_state_and_decay_gradients_on_meta_tensors(soft):
    # u0 (N x F) and a per-feature decay kf (F) get gradients of their own shape through
    # the registered backward; what is saved is the input, the checkpoints and them
    x = torch.empty(4, 3, 8, 8, device="meta", requires_grad=True)
    u0 = torch.empty(4, 64, device="meta", requires_grad=True)
    kf = torch.empty(64, device="meta", requires_grad=True)
    saved = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t) or t, lambda t: t):
        spikes, _, u_last = _ops.lif(x, u0, kf, 0.5, 1.0, 0.0, soft, 4.0, "arctan", False)
    assert sorted(tuple(t.shape) for t in saved) == [(4, 1, 64), (4, 3, 8, 8), (4, 64), (64,)]
    gx, gu0, gk = torch.autograd.grad(
        (spikes, u_last), (x, u0, kf), (torch.ones_like(spikes), torch.ones_like(u_last))
    )
    assert gx.shape == x.shape and gu0.shape == u0.shape and gk.shape == kf.shape


def test_forward_on_fake_cuda_tensors():
    with FakeTensorMode():
        x = torch.empty(4, 3, 8, device="cuda", dtype=torch.bfloat16)
        spikes, ckpt, u_last = _ops.lif(x, None, None, 0.5, 1.0, 0.0, False, 4.0, "arctan", False)
        assert spikes.device.type == "cuda" and spikes.shape == x.shape
        assert ckpt.shape == (4, 1, 8) and ckpt.dtype == torch.float32
        assert u_last.shape == (4, 8) and u_last.dtype == torch.float32


def test_ops_are_registered_with_schemas():
    schema = str(torch.ops.snetx_cuend.lif.default._schema)
    assert "float decay" in schema and "str sg" in schema and "bool detach" in schema
    assert "Tensor? u0" in schema and "Tensor? kf" in schema and "bool soft" in schema
    assert "Tensor" in str(torch.ops.snetx_cuend.lif_backward.default._schema)


def test_opcheck_fake_and_autograd_registration_on_meta():
    # torch.library.opcheck's static checks need no device: run them on fake tensors
    with FakeTensorMode():
        x = torch.empty(2, 3, 5, device="cuda")
        rule = (0.5, 1.0, 0.0, True, 4.0, "sigmoid", True)
        out = torch.ops.snetx_cuend.lif(x, None, None, *rule)
        g = torch.ops.snetx_cuend.lif_backward(
            x, out[1], out[0], None, None, None, *rule, False, False
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
        lambda io, name, dev: lambda grid, block, args: calls.append((io, name, grid, block, args)),
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
    ckpt, u_last = torch.zeros(3, 1, 5), torch.zeros(3, 5)
    name = _compile.forward_name(_ops.DTYPES[dtype])
    _ops._launch(x, name, (x, ckpt, s, None, u_last, None), (0.5, 1.0, 0.0))
    _ops._launch(x, name, (x, None, s, None, None, None), (0.5, 1.0, 0.0))
    (io, name, grid, block, args), (*_, no_ckpt) = calls
    # evaluation: ckpt = nullptr
    assert no_ckpt[1] == np.uint64(0) and type(no_ckpt[1]) is np.uint64
    assert io == _ops.DTYPES[dtype] and name.startswith("snetx::lif_forward<")
    assert block == (_ops.THREADS,) and grid == (1,)
    assert [type(a) for a in args[:6]] == [np.uint64] * 6
    assert args[0] == x.data_ptr() and args[2] == s.data_ptr() and args[4] == u_last.data_ptr()
    assert args[3] == args[5] == 0  # no u0 (rest), no per-feature decay
    assert [type(a) for a in args[6:9]] == [np.int64] * 3
    assert (int(args[6]), int(args[7]), int(args[8])) == (15, 4, 5)  # N*F, T, F
    assert [np.dtype(type(a)).name for a in args[9:]] == [scalar] * 3


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
    assert len(made) == 3 and looked_up.count(fwd) == 2 and looked_up.count(bwd) == 1
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
        (True, "lif.default(contiguous, None, None, 0.5, 1.0, -0.2, False, 3.0, 'arctan', False)"),
        (False, "lif_spikes.default(contiguous, None, None, 0.5, 1.0, -0.2, False)"),
    ):
        x = torch.empty(4, 8, 64, device="meta", requires_grad=requires_grad)
        explained = torch._dynamo.explain(f)(x)
        assert explained.graph_count == 1 and explained.graph_break_count == 0
        assert f"torch.ops.snetx_cuend.{call}" in explained.graphs[0].code


def test_evaluation_launches_the_spikes_only_op(monkeypatch):
    # no graph to record (no_grad, or an input without requires_grad) -> lif_spikes, which
    # writes no h; otherwise lif (spikes and h, with the registered backward)
    from snetx.cuend import neuron as cu
    from snetx.snn import functional as F

    monkeypatch.setattr(cu, "check_cuda_input", F.check_input)
    monkeypatch.setattr(cu, "_runtime_check", lambda: None)
    called = []
    for name in ("lif", "lif_spikes"):
        op = getattr(_ops, name)
        monkeypatch.setattr(_ops, name, lambda *a, _op=op, _n=name: called.append(_n) or _op(*a))
    x = torch.empty(2, 3, 8, device="meta", requires_grad=True)
    assert cu.LIF()(x).requires_grad and called == ["lif"]
    with torch.no_grad():
        assert not cu.LIF()(x).requires_grad
    y = cu.LIF()(x.detach())
    assert called == ["lif", "lif_spikes", "lif_spikes"] and y.shape == x.shape
    assert "Tensor" in str(torch.ops.snetx_cuend.lif_spikes.default._schema)


def test_torch_compile_fullgraph_with_state_and_plif(monkeypatch):
    # state in and out, soft reset and a per-channel learnable decay through the custom op
    from snetx.cuend import neuron as cu
    from snetx.snn import functional as F

    monkeypatch.setattr(cu, "check_cuda_input", F.check_input)
    monkeypatch.setattr(cu, "_runtime_check", lambda: None)
    plif = cu.PLIF(v_reset=None, channels=3).to("meta")

    def f(x, u0):
        return cu._run(x, 2.0, 1.0, None, "arctan", 4.0, False, u0, plif._k())

    torch._dynamo.reset()
    x = torch.empty(2, 5, 3, 4, device="meta", requires_grad=True)
    u0 = torch.empty(2, 3, 4, device="meta", requires_grad=True)
    s, u = torch.compile(f, backend="aot_eager", fullgraph=True)(x, u0)
    (s.sum() + u.sum()).backward()
    assert x.grad.shape == x.shape and u0.grad.shape == u0.shape
    assert plif.w.grad.shape == (3,)
    explained = torch._dynamo.explain(f)(x, u0)
    assert explained.graph_count == 1 and explained.graph_break_count == 0
