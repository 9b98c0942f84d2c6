"""From train_level.py's weights to `pynet-bokeh render`, evaluate.py and export_tflite.py, each
with `--weights`: the file a user gets from training works everywhere."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from pynet_bokeh import image_io

REPO = Path(__file__).resolve().parents[1]


def _script(*argv, timeout=600):
    res = subprocess.run(
        [sys.executable, *map(str, argv)], capture_output=True, text=True, timeout=timeout, cwd=REPO
    )
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    return res


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Level 7 trained for 2 eager steps on a tiny synthetic set by train_level.py."""
    from pynet_bokeh.data.synthetic import ensure_synthetic

    root = tmp_path_factory.mktemp("e2e")
    data = ensure_synthetic(root / "data", n_train=2, n_test=2, size=(128, 192))
    _script(
        "train_level.py", "--level", "7", "--dataset_dir", data, "--model_dir", root / "runs",
        "--steps", "2", "--patch_size", "32", "--batch_size", "1", "--eval_batches", "0",
        "--run_eagerly",
    )  # fmt: skip
    weights = root / "runs" / "level_7" / "final.weights.h5"
    assert weights.is_file()
    return root, Path(data), weights


@pytest.mark.slow  # heavy: the default suite keeps under 15 min on 2 cores
def test_trained_weights_render_evaluate_and_export(trained):
    from pynet_bokeh.inference import render_bokeh
    from pynet_bokeh.renderers.pynet import load_pynet

    root, data, weights = trained
    model = load_pynet(weights)
    photos = data / "test" / "original"

    out = root / "rendered"
    _script("-m", "pynet_bokeh.cli", "render", photos, "--method", "pynet", "--weights", weights,
            "--level", "7", "--output_dir", out)  # fmt: skip
    for photo_path in sorted(photos.glob("*.jpg")):
        photo = image_io.read_photo(photo_path)
        depth = image_io.read_depth(data / "test" / "original_depth" / f"{photo_path.stem}.png")
        got = image_io.read_photo(out / f"{photo_path.stem}.png")
        assert got.shape == photo.shape == (128, 192, 3)
        np.testing.assert_allclose(got, render_bokeh(model, photo, depth, 7), atol=2 / 255)

    report = root / "eval"
    _script("evaluate.py", "--weights", weights, "--level", "7", "--dataset_dir", data,
            "--baselines", "identity", "--border", "8", "--num_panels", "0",
            "--out_dir", report)  # fmt: skip
    summary = json.loads((report / "summary.json").read_text())
    assert list(summary["methods"]) == ["pynet L7 (final.weights.h5)", "identity"]
    assert summary["count"] == 2 and np.isfinite(summary["methods"]["identity"]["psnr"])

    tflite = root / "pynet.tflite"
    res = _script("export_tflite.py", "--weights", weights, "--level", "7", "--height", "64",
                  "--width", "96", "--repeats", "1", "--output", tflite)  # fmt: skip
    meta = json.loads(tflite.with_suffix(".json").read_text())
    assert meta["level"] == 7 and meta["inputs"][0]["shape"] == [1, 64, 96, 4]
    assert meta["parity"]["max_abs_diff"] < 1e-4, res.stdout
