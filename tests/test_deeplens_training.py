"""DeepLens stage-wise training through the project's Trainer, on a tiny synthetic set."""

import numpy as np
import pytest
from deeplens_weights import save_deeplens_checkpoint

from pynet_bokeh.errors import UsageError
from pynet_bokeh.models.deeplens import (
    build_deeplens,
    checkpoint_variables,
    load_deeplens_checkpoint,
)
from pynet_bokeh.training.checkpointing import FINAL_WEIGHTS, read_weights_by_name
from pynet_bokeh.training.deeplens_task import (
    APERTURE_RADIUS_FRACTION,
    DeepLensDataError,
    DeepLensStageTask,
    HandOffError,
    find_samples,
)
from pynet_bokeh.training.trainer import TrainConfig, Trainer


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    from pynet_bokeh.data.synthetic import generate_dataset

    return generate_dataset(tmp_path_factory.mktemp("syn"), 4, 1, size=(64, 96), variants=2)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    return tmp_path_factory.mktemp("runs")


def train(stage, data, runs, steps, lr=1e-3, eager=False, **kwargs):
    task = DeepLensStageTask(stage, data, runs, batch_size=2, **kwargs)
    config = TrainConfig(
        work_dir=task.work_dir, steps=steps, learning_rate=lr, checkpoint_every=1000,
        eval_every=1000, log_every=5, eval_batches=1, verbose=False, run_eagerly=eager,
    )  # fmt: skip
    return task, Trainer(task, config).run()


def test_samples_and_lens_units(data):
    import json

    samples = find_samples(data, "train")
    assert len(samples) == 8  # 4 scenes x 2 focus/aperture variants
    params = json.loads((data / "train" / "params" / "0_1.json").read_text())
    s = next(s for s in samples if s["photo"].endswith("0_1.jpg"))
    assert s["focus"] == pytest.approx(params["focus_depth01"])
    assert s["aperture"] == pytest.approx(params["aperture_depth01"] / APERTURE_RADIUS_FRACTION)


def test_batches_per_stage(data):
    shapes = {
        "depth": ({"image_320": (2, 32, 48, 3)}, (2, 32, 48, 1)),
        "blur": ({"image_320": (2, 32, 48, 3), "depth_signed": (2, 32, 48, 1)}, (2, 32, 48, 3)),
        "sr": (
            {"image_320": (2, 32, 48, 3), "dof_320": (2, 32, 48, 3), "depth_signed": (2, 32, 48, 1), "image_640": (2, 64, 96, 3)},
            (2, 64, 96, 3),
        ),
        "all": (
            {"image_320": (2, 32, 48, 3), "image_640": (2, 64, 96, 3), "aperture": (2, 1), "focal_depth": (2, 1)},
            (2, 64, 96, 3),
        ),
    }  # fmt: skip
    for stage, (inputs, target) in shapes.items():
        task = DeepLensStageTask(stage, data, "unused", batch_size=2)
        x, y = next(iter(task.dataset("train", seed=0, repeat=True)))
        assert {k: tuple(v.shape) for k, v in x.items()} == inputs, stage
        assert tuple(y.shape) == target, stage
    # the signed defocus is (depth01 - focus01) * A, zero exactly at the focus depth
    x, _ = next(
        iter(DeepLensStageTask("blur", data, "unused", batch_size=8).dataset("test", 0, False))
    )
    assert np.all(np.abs(x["depth_signed"].numpy()) <= 1.0 / APERTURE_RADIUS_FRACTION)


@pytest.mark.slow  # heavy: the default suite keeps under 15 min on 2 cores
def test_blur_then_sr_hand_off(data, runs, tmp_path):
    with pytest.raises(HandOffError, match="stage 'depth'"):
        DeepLensStageTask("blur", data, runs).preflight(resuming=False)
    # blur starts from a DeepLens TF1 checkpoint (here: random weights written by this package)
    start = save_deeplens_checkpoint(build_deeplens(), tmp_path / "start" / "model")
    task, blur = train("blur", data, runs, steps=25, init_from=start)
    assert blur.end_step == 25
    assert blur.last_loss < 0.5 * blur.first_loss, (blur.first_loss, blur.last_loss)
    _, sr = train("sr", data, runs, steps=25)
    assert sr.last_loss < 0.5 * sr.first_loss, (sr.first_loss, sr.last_loss)
    after_blur = read_weights_by_name(runs / "deeplens_blur" / FINAL_WEIGHTS)
    after_sr = read_weights_by_name(runs / "deeplens_sr" / FINAL_WEIGHTS)
    assert set(after_sr) == {"Depth", "Lensblur", "Feature", "SR"}
    for name in ("Depth", "Lensblur", "Feature"):  # handed on unchanged (sr trains SR only)
        for a, b in zip(after_blur[name], after_sr[name], strict=True):
            np.testing.assert_array_equal(a, b, err_msg=name)
    assert any(
        not np.array_equal(a, b) for a, b in zip(after_blur["SR"], after_sr["SR"], strict=True)
    )
    # blur trained Lensblur and Feature away from the starting checkpoint, not Depth or SR
    import tensorflow as tf

    reader = tf.train.load_checkpoint(start)
    trained = load_deeplens_checkpoint(build_deeplens(), runs / "deeplens_blur")  # folder works
    changed = {
        name.split("/")[2]
        for name, var in checkpoint_variables(trained).items()
        if not np.array_equal(reader.get_tensor(name), var.numpy())
    }
    assert changed == {"Lensblur", "Feature"}


def test_errors(data, tmp_path):
    with pytest.raises(ValueError, match="--stage must be one of depth, blur, sr, all"):
        DeepLensStageTask("lens", data, tmp_path)
    (tmp_path / "train" / "original").mkdir(parents=True)
    with pytest.raises(DeepLensDataError, match="params does not exist.*--variants"):
        find_samples(tmp_path, "train")


def test_task_from_flags_needs_stage():
    from pynet_bokeh.training.deeplens_task import task_from_flags

    class Flags:
        stage = None

    with pytest.raises(UsageError, match="needs --stage"):
        task_from_flags(Flags)


@pytest.mark.slow  # ResNet-50 at 320 x 320: several seconds a step on a CPU
def test_depth_and_end_to_end_stages(data, runs):
    _, depth = train("depth", data, runs / "chain", steps=30, lr=3e-4)
    assert depth.last_loss < depth.first_loss
    _, blur = train("blur", data, runs / "chain", steps=5)
    _, sr = train("sr", data, runs / "chain", steps=5)
    _, full = train("all", data, runs / "chain", steps=20, lr=3e-4)
    assert full.last_loss < full.first_loss
    weights = read_weights_by_name(runs / "chain" / "deeplens_depth" / FINAL_WEIGHTS)
    handed = read_weights_by_name(runs / "chain" / "deeplens_blur" / FINAL_WEIGHTS)
    for a, b in zip(weights["Depth"], handed["Depth"], strict=True):
        np.testing.assert_array_equal(a, b)
