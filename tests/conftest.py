"""Shared test fixtures: paths to ../shared (tests skip when it is absent)."""

import os
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


@pytest.fixture(scope="session")
def shared_dir():
    if not SHARED.is_dir():
        pytest.skip("../shared is absent")
    return SHARED


@pytest.fixture(scope="session")
def fixtures_dir(shared_dir):
    return shared_dir / "fixtures"


@pytest.fixture(scope="session")
def ebb_samples(shared_dir):
    path = shared_dir / "ebb_samples"
    if not path.is_dir():
        pytest.skip("../shared/ebb_samples is absent")
    return path
