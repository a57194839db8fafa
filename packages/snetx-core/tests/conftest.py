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
