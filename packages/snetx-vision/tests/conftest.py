import os
import sys

sys.path.insert(0, os.path.dirname(__file__))


import pytest  # noqa: E402


@pytest.fixture
def cifar_md5_ok(monkeypatch):
    # torchvision verifies the md5 of the real CIFAR archives: the only thing patched
    import torchvision

    monkeypatch.setattr(torchvision.datasets.cifar, "check_integrity", lambda *a, **k: True)


@pytest.fixture(autouse=True)
def _private_frame_cache(tmp_path_factory, monkeypatch):
    """Each test's computed frames go to a cache folder of its own (the default is the
    user's ~/.cache/snetx/frames)."""
    from snetx.dataset import _frame_cache

    root = tmp_path_factory.mktemp("frames")
    monkeypatch.setattr(_frame_cache, "default_root", lambda: root)
    return root
