"""The control estimator: finds the known focus and blur of synthetic pairs; resumable CLI."""

import json

import numpy as np
import pytest

from pynet_bokeh.data import controls
from pynet_bokeh.data.synthetic import generate_dataset


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    root = tmp_path_factory.mktemp("syn")
    return generate_dataset(
        root, 2, 0, size=(64, 96), seed=3, variants=1, aperture_range=(0.06, 0.12)
    )


def test_cli_finds_known_controls_and_resumes(synthetic, capsys):
    assert controls.main([str(synthetic), "--fit_side", "96"]) == 0
    printed = capsys.readouterr().out
    assert "2/2 pairs" in printed
    errors = json.loads(printed.split("(params/*.json): ")[1])
    assert errors["pairs"] == 2
    assert errors["focus_abs_error_median"] < 0.06
    assert errors["blur_rel_error_median"] < 0.15
    written = sorted((synthetic / "train" / "original_controls").glob("*.json"))
    assert [p.name for p in written] == ["0.json", "1.json"]
    record = json.loads(written[0].read_text())
    true_f, true_k = controls.known_controls(synthetic / "train" / "params" / "0.json")
    assert abs(record["focus_depth01"] - true_f) < 0.06
    assert abs(record["blur"] - true_k) / true_k < 0.15
    assert record["l1"] < record["l1_identity"]
    assert controls.read_controls(written[0]) == (record["focus_depth01"], record["blur"])
    # A rerun reads the finished pairs back instead of fitting them again.
    stamps = [p.stat().st_mtime_ns for p in written]
    assert controls.main([str(synthetic), "--fit_side", "96"]) == 0
    assert [p.stat().st_mtime_ns for p in written] == stamps


def test_sharp_target_gives_no_blur():
    rng = np.random.default_rng(0)
    photo = rng.uniform(0, 1, (32, 48, 3)).astype(np.float32)
    depth = np.tile(np.linspace(0, 1, 48, dtype=np.float32), (32, 1))
    est = controls.estimate_controls(photo, depth, photo)
    assert est.blur == 0.0 and est.l1 == 0.0


def test_bad_folder_is_one_line(tmp_path, capsys):
    assert controls.main([str(tmp_path / "nope")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "nope" in err
    assert not (tmp_path / "nope").exists()


def test_bad_controls_file_is_named(tmp_path):
    bad = tmp_path / "x.json"
    bad.write_text("{")
    with pytest.raises(controls.BadDataError, match="x.json"):
        controls.read_controls(bad)
