"""The host kernels' buffer pool: a large output reuses the memory of one nobody holds
any more, never of one still referenced (a view, a saved tensor, a grad), and gives
memory back."""

import torch
from snetx.snn import _buffers, neuron

BIG = (_buffers.MIN_BYTES // 4,)  # float32 elements of the pool's smallest size


def _ptr(t):
    return t.untyped_storage().data_ptr()


def test_a_free_buffer_is_reused_and_a_held_one_is_not():
    _buffers.release()
    a = _buffers.empty(BIG, torch.float32)
    a_ptr = _ptr(a)
    view = a[:10]  # a view still holds the memory
    del a
    b = _buffers.empty(BIG, torch.float32)
    assert _ptr(b) != a_ptr
    del view
    c = _buffers.empty(BIG, torch.float32)
    assert _ptr(c) == a_ptr  # nothing held it any more: its pages are reused
    b.fill_(1.0)
    c.fill_(3.0)
    assert torch.all(b == 1.0)  # separate memory: c's writes do not reach b
    d = _buffers.empty(BIG, torch.float64)  # another size in bytes: another buffer
    assert d.dtype == torch.float64 and _ptr(d) not in (_ptr(b), _ptr(c))


def test_small_outputs_and_the_switch_bypass_the_pool(monkeypatch):
    small = _buffers.empty((10,), torch.float32)
    assert small.shape == (10,)
    monkeypatch.setenv("SNETX_BUFFER_POOL", "0")
    before = len(_buffers._buffers)
    _buffers.empty(BIG, torch.float32)
    assert len(_buffers._buffers) == before


def test_release_returns_free_buffers_and_keeps_used_ones():
    _buffers.release()
    held = _buffers.empty(BIG, torch.float32)
    tmp = _buffers.empty(BIG, torch.float32)
    del tmp
    assert len(_buffers._buffers) == 2
    _buffers.release()
    base = _buffers._buffers[0][0].ctypes.data
    assert len(_buffers._buffers) == 1 and base <= _ptr(held) < base + _buffers.ALIGN


def test_pooled_outputs_start_on_a_cache_line_like_torch_s_own():
    # NumPy's large arrays start 16 bytes into a page; the kernels' streaming stores need
    # whole cache lines
    _buffers.release()
    held = [_buffers.empty(BIG, dtype) for dtype in (torch.float32, torch.float64)]
    assert all(_ptr(t) % _buffers.ALIGN == 0 for t in held)
    assert _ptr(torch.empty(BIG)) % _buffers.ALIGN == 0  # what torch does


def test_training_steps_with_pooled_outputs_give_the_same_gradients(cpu_kernel):
    """Outputs of one step are never overwritten by the next while the graph holds them."""
    torch.manual_seed(0)
    x = (torch.rand(4, 4, 1 << 18) * 1.5).requires_grad_()  # 16 MiB: pooled
    assert x.numel() * 4 >= _buffers.MIN_BYTES
    lif = neuron.LIF()
    grads = []
    for _ in range(3):
        y1 = lif(x)
        y2 = lif(x * 0.9)
        ((y1 * 2 + y2).sum()).backward()
        grads.append(x.grad.clone())
        x.grad = None
    assert torch.equal(grads[0], grads[1]) and torch.equal(grads[1], grads[2])
    _buffers.release()
