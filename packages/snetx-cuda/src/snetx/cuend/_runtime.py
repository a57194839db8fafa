"""What snetx.cuend needs at run time, checked once, with errors that say what to install."""

_checked = False


def require():
    global _checked
    if _checked:
        return
    try:
        import cupy  # noqa: F401
    except ImportError as e:
        from snetx import install_hint

        raise ImportError(
            f"snetx.cuend needs CuPy: {install_hint('snetx-cuda', 'cuda12')} for CUDA 12 "
            "([cuda13] for CUDA 13); on CPU use snetx.snn.neuron.LIF"
        ) from e
    import torch

    if not torch.cuda.is_available():
        raise RuntimeError(
            "snetx.cuend needs a CUDA GPU, and torch sees none; use snetx.snn.neuron.LIF on the CPU"
        )
    try:
        from cupy.cuda import nvrtc

        nvrtc.getVersion()
    except Exception as e:  # CuPy raises RuntimeError/OSError when libnvrtc cannot load
        raise RuntimeError(
            "snetx.cuend compiles its kernels with NVRTC, which CuPy cannot load: install the "
            "CUDA toolkit or pip install 'cupy-cuda12x[ctk]' / nvidia-cuda-nvrtc-cu12 "
            f"({type(e).__name__}: {e})"
        ) from e
    _checked = True
