"""Shared fixtures. Core-engine tests run in float64 where tolerances are tight."""
from __future__ import annotations

import os
import sys

import numpy as np
import pytest
import torch

sys.path.insert(0, os.path.dirname(__file__))

from molecules import molecule_box, triclinic_box  # noqa: E402

# one thread: the test systems are small, and extra threads only add overhead on a busy 2-core machine
torch.set_num_threads(1)


def pytest_collection_modifyitems(config, items):
    if not torch.cuda.is_available():
        skip = pytest.mark.skip(reason="CUDA is not available on this machine")
        for item in items:
            if "cuda" in item.keywords:
                item.add_marker(skip)


@pytest.fixture
def electrolyte_box():
    """A periodic orthorhombic box of Li+, PF6-, EC and EMC (ASE Atoms, grain index)."""
    return molecule_box({"Li": 3, "PF6": 3, "EC": 6, "EMC": 5}, np.diag([20.0, 20.0, 20.0]), seed=3)


@pytest.fixture
def triclinic_electrolyte_box():
    """The same species in a reduced triclinic box."""
    return molecule_box({"Li": 3, "PF6": 3, "EC": 6, "EMC": 5}, triclinic_box(), seed=4)
