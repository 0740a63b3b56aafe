"""Shared test fixtures. Tests run with fixed seeds and restore global RNG state."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"


@pytest.fixture(autouse=True)
def _restore_rng_state():
    py_state, np_state = random.getstate(), np.random.get_state()  # noqa: NPY002
    yield
    random.setstate(py_state)
    np.random.set_state(np_state)  # noqa: NPY002


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)
