import os
import sys

sys.path.insert(0, os.path.dirname(__file__))


import pytest  # noqa: E402


@pytest.fixture
def cifar_md5_ok(monkeypatch):
    # torchvision verifies the md5 of the real CIFAR archives: the only thing patched
    import torchvision

    monkeypatch.setattr(torchvision.datasets.cifar, "check_integrity", lambda *a, **k: True)
