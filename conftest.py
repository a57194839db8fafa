"""Repository-wide pytest setup: ``gpu`` tests skip (with a reason) when no CUDA device is
visible, unless selected explicitly with ``-m gpu`` (nox -s tests-gpu), where they fail."""

import pytest


def pytest_collection_modifyitems(config, items):
    import torch

    if torch.cuda.is_available():
        return
    selected_gpu = "gpu" in (config.getoption("-m") or "")
    skip = pytest.mark.skip(
        reason="needs a CUDA device (none visible); run nox -s tests-gpu on a GPU machine"
    )
    for item in items:
        if "gpu" in item.keywords and not selected_gpu:
            item.add_marker(skip)
