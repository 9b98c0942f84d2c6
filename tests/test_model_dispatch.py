"""evaluate.py / export_tflite.py with --model deeplens and --model bradcn (the dispatch points)."""

import csv
import json
import sys
from pathlib import Path

import numpy as np
import pytest
from absl import flags

from pynet_bokeh.data.synthetic import generate_dataset
from pynet_bokeh.errors import UsageError

REPO = Path(__file__).resolve().parents[1]


def _script(name):
    sys.path.insert(0, str(REPO))
    try:
        return __import__(name)
    finally:
        sys.path.remove(str(REPO))


def _run(name, argv):
    module = _script(name)
    flag_values = module.define_flags(flags.FlagValues())
    flag_values([f"{name}.py", *argv])
    module.main([], flag_values)


@pytest.fixture(scope="module")
def synthetic_set(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth")
    generate_dataset(root, n_train=0, n_test=2, size=(128, 192), seed=3)
    return root


@pytest.fixture(scope="module")
def bradcn_weights(tmp_path_factory):
    import keras

    from pynet_bokeh.models.bradcn import build_bradcn
    from pynet_bokeh.training.checkpointing import save_weights

    keras.utils.set_random_seed(0)
    path = tmp_path_factory.mktemp("bradcn") / "final.weights.h5"
    save_weights(build_bradcn("tiny"), path)
    return path


@pytest.fixture(scope="module")
def deeplens_prefix(tmp_path_factory):
    import keras
    from deeplens_weights import save_deeplens_checkpoint

    from pynet_bokeh.models.deeplens import build_deeplens

    keras.utils.set_random_seed(0)
    prefix = tmp_path_factory.mktemp("deeplens") / "model"
    save_deeplens_checkpoint(build_deeplens(), prefix)
    return prefix


def _summary(out):
    return json.loads((out / "summary.json").read_text())


@pytest.mark.slow  # heavy: the default suite keeps under 15 min on 2 cores
def test_evaluate_bradcn(synthetic_set, bradcn_weights, tmp_path):
    from pynet_bokeh.models.bradcn import load_bradcn
    from pynet_bokeh.renderers.bradcn import render_bradcn

    out = tmp_path / "eval"
    _run(
        "evaluate",
        [
            "--model=bradcn",
            "--bradcn_config=tiny",
            f"--weights={bradcn_weights}",
            f"--dataset_dir={synthetic_set}",
            "--baselines=identity",
            "--border=16",
            "--num_panels=1",
            f"--out_dir={out}",
        ],
    )
    summary = _summary(out)
    assert list(summary["methods"]) == ["bradcn (final.weights.h5)", "identity"]
    assert summary["count"] == 2
    # The report's score is the one render_bradcn gives on the same photo.
    from pynet_bokeh import image_io, metrics

    net = load_bradcn(bradcn_weights, config="tiny")
    photo = image_io.read_photo(synthetic_set / "test" / "original" / "0.jpg")
    target = image_io.read_photo(synthetic_set / "test" / "bokeh" / "0.jpg")
    rendered = render_bradcn(net, photo)
    assert rendered.shape == photo.shape
    psnr = metrics.image_metrics(rendered, target, border=16)["psnr"]
    with open(out / "per_image.csv") as f:
        rows = list(csv.DictReader(f))
    row = next(r for r in rows if r["stem"] == "0" and r["method"].startswith("bradcn"))
    assert float(row["psnr"]) == pytest.approx(psnr, abs=1e-3)


@pytest.mark.slow  # heavy: the default suite keeps under 15 min on 2 cores
def test_evaluate_deeplens(synthetic_set, deeplens_prefix, tmp_path):
    out = tmp_path / "eval"
    _run(
        "evaluate",
        [
            "--model=deeplens",
            f"--tf1_checkpoint={deeplens_prefix}",
            "--aperture=0.25",
            f"--dataset_dir={synthetic_set}",
            "--baselines=identity",
            "--border=16",
            "--num_panels=0",
            f"--out_dir={out}",
        ],
    )
    summary = _summary(out)
    assert list(summary["methods"]) == ["deeplens A=0.25 (model)", "identity"]
    assert np.isfinite(summary["methods"]["deeplens A=0.25 (model)"]["psnr"])


@pytest.mark.slow  # heavy: the default suite keeps under 15 min on 2 cores
def test_export_bradcn_builtin_ops(bradcn_weights, tmp_path):
    out = tmp_path / "bradcn.tflite"
    _run(
        "export_tflite",
        [
            "--model=bradcn",
            "--bradcn_config=tiny",
            f"--weights={bradcn_weights}",
            "--height=64",
            "--width=96",
            "--repeats=1",
            f"--output={out}",
        ],
    )
    meta = json.loads(out.with_suffix(".json").read_text())
    assert meta["model"] == "bradcn"
    assert meta["parity"]["max_abs_diff"] < 1e-4


def test_dispatch_usage_errors(synthetic_set, bradcn_weights, deeplens_prefix, tmp_path):
    with pytest.raises(UsageError, match="int8 is calibrated .* PyNET only"):
        _run(
            "export_tflite",
            [
                "--model=bradcn",
                f"--weights={bradcn_weights}",
                "--quantization=int8",
                "--calibration_dir=.",
                f"--output={tmp_path / 'x.tflite'}",
            ],
        )
    with pytest.raises(FileNotFoundError, match="pass train_level.py --model bradcn's final"):
        _run(
            "evaluate",
            [
                "--model=bradcn",
                f"--tf1_checkpoint={deeplens_prefix}",
                f"--dataset_dir={synthetic_set}",
                f"--out_dir={tmp_path / 'o'}",
            ],
        )


@pytest.mark.slow
def test_export_deeplens_cli(deeplens_prefix, tmp_path):
    out = tmp_path / "deeplens.tflite"
    _run(
        "export_tflite",
        [
            "--model=deeplens",
            f"--tf1_checkpoint={deeplens_prefix}",
            "--height=240",
            "--width=320",
            "--repeats=1",
            f"--output={out}",
        ],
    )
    meta = json.loads(out.with_suffix(".json").read_text())
    assert meta["model"] == "deeplens"
    assert set(meta["inputs_meaning"]) == {"image", "focus_xy", "aperture"}
