"""Shared test fixtures: paths to ../shared (tests skip when it is absent)."""

import os
import subprocess
import sys
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


@pytest.fixture(scope="session")
def tf1_prefix(fixtures_dir, tmp_path_factory):
    """The seed-0 PyNET TF1 checkpoint, written by the fixture's own script (no Adam slots)."""
    prefix = tmp_path_factory.mktemp("pynet_tf1") / "pynet_bokeh_level_0"
    script = fixtures_dir / "pynet_tf1" / "make_checkpoint.py"
    subprocess.run(
        [sys.executable, str(script), str(prefix), "--seed", "0"], check=True, capture_output=True
    )
    return prefix
