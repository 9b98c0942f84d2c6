"""The controllable PyNET's training data: 5th channel from each sample's known or estimated
controls, EBB! pairs mixed in; clear errors when controls are missing."""

import json

import numpy as np
import pytest

from pynet_bokeh.data.synthetic import generate_dataset
from pynet_bokeh.errors import BadDataError
from pynet_bokeh.training.controllable_task import ControllableLevelTask


@pytest.fixture(scope="module")
def sets(tmp_path_factory):
    base = tmp_path_factory.mktemp("sets")
    syn = generate_dataset(base / "syn", 1, 1, size=(64, 96), seed=2, variants=2)
    ebb = generate_dataset(base / "ebb", 1, 0, size=(64, 96), seed=9)
    return syn, ebb


def _task(sets, tmp_path, **kwargs):
    return ControllableLevelTask(7, sets[0], tmp_path, patch_size=32, batch_size=2, **kwargs)


def _expected_c(inputs, d_f, k):
    return np.clip((inputs[..., 3] - d_f) * k / 64.0, -1.0, 1.0)


def test_test_batches_carry_each_samples_known_controls(sets, tmp_path):
    task = _task(sets, tmp_path)
    task.preflight(resuming=False)
    inputs, targets = next(iter(task.dataset("test", seed=0, repeat=False)))
    inputs = inputs.numpy()
    assert inputs.shape == (2, 32, 32, 5) and targets.shape == (2, 1, 1, 3)
    for i, stem in enumerate(("0_0", "0_1")):  # stem order, no shuffling in test
        p = json.loads((sets[0] / "test" / "params" / f"{stem}.json").read_text())
        d_f, k = p["focus_depth01"], p["aperture_depth01"] * 96
        np.testing.assert_allclose(inputs[i, ..., 4], _expected_c(inputs[i], d_f, k), atol=1e-6)
    assert np.abs(inputs[0, ..., 4] - inputs[1, ..., 4]).max() > 0  # two variants, two maps


def test_ebb_pairs_need_estimated_controls_then_join(sets, tmp_path):
    syn, ebb = sets
    task = _task(sets, tmp_path, ebb_dir=ebb, ebb_fraction=1.0)
    with pytest.raises(BadDataError, match="pynet_bokeh.data.controls"):
        task.preflight(resuming=False)
    folder = ebb / "train" / "original_controls"
    folder.mkdir()
    (folder / "0.json").write_text(json.dumps({"focus_depth01": 0.25, "blur": 32.0}))
    task = _task(sets, tmp_path, ebb_dir=ebb, ebb_fraction=1.0)
    task.preflight(resuming=False)
    inputs, _ = next(iter(task.dataset("train", seed=0, repeat=True)))
    inputs = inputs.numpy()
    assert inputs.shape == (2, 32, 32, 5)
    np.testing.assert_allclose(inputs[..., 4], _expected_c(inputs, 0.25, 32.0), atol=1e-6)


def test_synthetic_set_needs_params(sets, tmp_path):
    task = ControllableLevelTask(7, sets[1], tmp_path, patch_size=32, batch_size=1)
    for p in (sets[1] / "train" / "params").glob("*.json"):
        p.rename(p.with_suffix(".bak"))
    try:
        with pytest.raises(BadDataError, match="params"):
            task.preflight(resuming=False)
    finally:
        for p in (sets[1] / "train" / "params").glob("*.bak"):
            p.rename(p.with_suffix(".json"))
    with pytest.raises(ValueError, match="ebb_dir"):
        _task(sets, tmp_path, ebb_fraction=0.5)
