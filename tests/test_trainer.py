"""pynet_bokeh.training.trainer / checkpointing / pynet_task, in-process on CPU.

A tiny toy task exercises the generic loop (resume with optimizer state, data position,
non-finite loss, mixed precision); PyNET's level task runs levels 7 -> 6 -> 5 on a tiny
synthetic set with one shared model (its weights are scrambled between levels, as a fresh
process would have them), a fixed-batch fit, and a level-1 step with a VGG file the test writes.
"""

import math
import os

import keras
import numpy as np
import pytest
import tensorflow as tf
from vgg_files import random_vgg19_weights

from pynet_bokeh.training import checkpointing
from pynet_bokeh.training.pynet_task import HandOffError, PyNetLevelTask
from pynet_bokeh.training.trainer import NonFiniteLossError, TrainConfig, Trainer, TrainingTask

# ------------------------------------------------------------------------------- toy task


class ToyTask:
    """Learns y = 2x + 1 per pixel with one 1x1 conv; batch k is a pure function of (seed, k)."""

    name = "toy"

    def __init__(self, nan_at_batch=None):
        self.nan_at_batch = nan_at_batch
        self.skips = []

    def preflight(self, resuming):
        self.resuming = resuming

    def build_model(self):
        x = keras.Input((None, None, 2))
        y = keras.layers.Conv2D(1, 1, name="toy_conv", kernel_initializer="zeros")(x)
        return keras.Model(x, y)

    def trainable_model(self, model):
        return model

    def initialize(self, model):
        return "zeros"

    def batch(self, seed, k):
        x = np.random.default_rng([seed, k]).uniform(-1, 1, (4, 3, 3, 2)).astype(np.float32)
        if k == self.nan_at_batch:
            x[:] = np.nan
        return x, 2 * x[..., :1] + 1

    def dataset(self, split, seed, repeat, skip_batches=0):
        self.skips.append((split, skip_batches))
        ks = tf.data.Dataset.range(skip_batches, 10_000 if repeat else skip_batches + 2)
        return ks.map(
            lambda k: tf.numpy_function(
                lambda k: self.batch(seed, int(k)), [k], (tf.float32, tf.float32)
            )
        ).map(lambda x, y: (tf.ensure_shape(x, (4, 3, 3, 2)), tf.ensure_shape(y, (4, 3, 3, 1))))

    def loss_terms(self, inputs, targets, outputs):
        return {"l2": tf.reduce_mean(tf.square(outputs - targets))}

    def eval_metrics(self, inputs, targets, outputs):
        return {"mae": float(np.mean(np.abs(np.asarray(outputs) - np.asarray(targets))))}

    def image_rows(self, inputs, targets, outputs):
        row = tf.concat([inputs[..., :1], outputs, targets], axis=2)
        return tf.image.grayscale_to_rgb(tf.clip_by_value(row, 0.0, 1.0))


def _config(tmp_path, **kw):
    base = dict(work_dir=str(tmp_path), steps=6, learning_rate=0.05, checkpoint_every=3)
    base.update(kw)
    return TrainConfig(**base, verbose=False)


def test_toy_task_satisfies_the_protocol():
    assert isinstance(ToyTask(), TrainingTask)


def test_resume_restores_step_weights_optimizer_slots_and_data_position(tmp_path):
    first = Trainer(ToyTask(), _config(tmp_path, steps=6))
    result = first.run()
    assert (result.start_step, result.end_step) == (0, 6)
    saved_opt = [v.numpy().copy() for v in first.optimizer.variables]
    saved_w = [w.numpy().copy() for w in first.model.weights]
    assert int(first.optimizer.iterations.numpy()) == 6
    assert sorted(os.listdir(tmp_path / "checkpoints"))[-2:] == [
        "ckpt-6.data-00000-of-00001",
        "ckpt-6.index",
    ]

    task = ToyTask()
    second = Trainer(task, _config(tmp_path, steps=9, learning_rate=0.01))
    assert second.setup() == 6
    assert task.resuming
    assert int(second.step.numpy()) == 6
    assert int(second.optimizer.iterations.numpy()) == 6
    restored = [v.numpy() for v in second.optimizer.variables]
    assert len(restored) == len(saved_opt) == 6  # iterations, lr, Adam m and v of kernel and bias
    assert float(restored[1]) == pytest.approx(0.01)  # a new --learning_rate wins over the saved
    for i, (a, b) in enumerate(zip(saved_opt, restored, strict=True)):
        if i != 1:
            np.testing.assert_array_equal(a, b)
    assert np.abs(saved_opt[2]).max() > 0  # a real Adam slot, not zeros
    for a, b in zip(saved_w, second.model.weights, strict=True):
        np.testing.assert_array_equal(a, b.numpy())
    result = second.run()
    assert (result.start_step, result.end_step) == (6, 9)
    assert task.skips[0] == ("train", 6)  # continues at batch 6, not replaying batches 0..5
    assert int(second.optimizer.iterations.numpy()) == 9


def _events(folder):
    """{tag: (plugin, [values])} from the TensorBoard event files in `folder`."""
    out = {}
    for name in os.listdir(folder):
        for event in tf.compat.v1.train.summary_iterator(os.path.join(folder, name)):
            for v in event.summary.value:
                plugin = v.metadata.plugin_data.plugin_name
                out.setdefault(v.tag, (plugin, []))[1].append(tf.make_ndarray(v.tensor))
    return out


def test_tensorboard_scalars_and_image_rows(tmp_path):
    Trainer(ToyTask(), _config(tmp_path, steps=20, log_every=10, eval_every=10)).run()
    train = _events(tmp_path / "logs" / "train")
    assert set(train) == {"loss", "l2", "steps_per_second"}
    assert train["loss"][0] == "scalars" and len(train["loss"][1]) == 2  # steps 10 and 20
    assert train["loss"][1][1] < train["loss"][1][0]
    evals = _events(tmp_path / "logs" / "eval")
    assert evals["mae"][0] == "scalars" and len(evals["mae"][1]) == 2
    plugin, images = evals["input | output | target"]
    assert plugin == "images"
    width, height, png = images[0][0], images[0][1], images[0][2]
    assert (int(width), int(height)) == (9, 3)  # three 3x3 panels side by side
    assert tf.io.decode_png(png).shape == (3, 9, 3)


def test_only_the_last_few_checkpoints_are_kept(tmp_path):
    Trainer(ToyTask(), _config(tmp_path, steps=10, checkpoint_every=2, keep_checkpoints=2)).run()
    index = sorted(f for f in os.listdir(tmp_path / "checkpoints") if f.endswith(".index"))
    assert index == ["ckpt-10.index", "ckpt-8.index"]


def test_toy_loss_falls(tmp_path):
    result = Trainer(ToyTask(), _config(tmp_path, steps=60, learning_rate=0.05)).run()
    assert result.last_loss < 0.05 * result.first_loss


def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path):
    trainer = Trainer(ToyTask(nan_at_batch=4), _config(tmp_path, steps=8, checkpoint_every=2))
    with pytest.raises(NonFiniteLossError, match=r"non-finite loss at step 5 .*ckpt-4 is kept"):
        trainer.run()
    assert tf.train.latest_checkpoint(str(tmp_path / "checkpoints")).endswith("ckpt-4")
    assert not os.path.exists(tmp_path / "final.weights.h5")
    # the kept checkpoint holds finite weights (while the model in memory is now NaN)
    assert not np.isfinite(trainer.model.weights[0].numpy()).all()
    fresh = ToyTask().build_model()
    what = checkpointing.load_initial_weights(fresh, tmp_path)
    assert what.startswith("training checkpoint") and what.endswith("ckpt-4")
    assert all(np.isfinite(w.numpy()).all() for w in fresh.weights)
    assert np.abs(fresh.weights[0].numpy()).max() > 0


def test_mixed_precision_computes_in_float16_and_keeps_float32_weights(tmp_path):
    trainer = Trainer(ToyTask(), _config(tmp_path, steps=3, mixed_precision=True))
    result = trainer.run()
    assert math.isfinite(result.last_loss)
    assert trainer.model.layers[-1].compute_dtype == "float16"
    assert trainer.model.weights[0].dtype == "float32"
    assert keras.config.dtype_policy().name == "float32"  # the global policy is restored


def test_weights_files_match_layers_by_name(tmp_path):
    def model(order):
        x = keras.Input((None, None, 3))
        outs = [keras.layers.Conv2D(4, 3, padding="same", name=n)(x) for n in order]
        return keras.Model(x, keras.layers.Add()(outs))

    src = model(["a_conv", "b_conv"])
    (tmp_path / ".tmp-killed.weights.h5").write_bytes(b"half written")
    path = checkpointing.save_weights(src, tmp_path / "w.weights.h5")
    # the same layers in the other order: Keras' positional loader would swap them
    dst = model(["b_conv", "a_conv"])
    assert checkpointing.load_weights_by_name(dst, path) == ["b_conv", "a_conv"]
    for name in ("a_conv", "b_conv"):
        np.testing.assert_array_equal(
            src.get_layer(name).kernel.numpy(), dst.get_layer(name).kernel.numpy()
        )
    # the file is also a normal Keras weights file
    src.load_weights(path)
    assert not [f for f in os.listdir(tmp_path) if f.startswith(".tmp")]
    x = keras.Input((None, None, 3))
    other = keras.Model(x, keras.layers.Conv2D(5, 3, name="a_conv")(x))
    with pytest.raises(checkpointing.WeightsMismatchError, match=r"a_conv: file"):
        checkpointing.load_weights_by_name(other, path)


def test_weights_by_name_are_read_one_layer_at_a_time(tmp_path):
    """Loading holds one layer's arrays at a time (numpy allocations, traced), not the file;
    a shape mismatch in the last layer is found before any layer is assigned."""
    import tracemalloc

    def model(last_units):
        x = keras.Input((512,))
        y = x
        for i in range(15):
            y = keras.layers.Dense(512, name=f"dense_{i}")(y)  # 1 MB of kernel each
        return keras.Model(x, keras.layers.Dense(last_units, name="last")(y))

    src = model(512)
    path = checkpointing.save_weights(src, tmp_path / "w.weights.h5")
    dst = model(512)
    tracemalloc.start()
    try:
        checkpointing.load_weights_by_name(dst, path)
        # TensorFlow may keep its numpy copy of a value as the variable's buffer: `kept` counts
        # those; what was held on top of them is the loader's.
        kept, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak - kept < 3 * 2**20, (peak, kept)  # a layer or two; the whole file is 16 MB
    np.testing.assert_array_equal(
        dst.get_layer("dense_3").kernel.numpy(), src.get_layer("dense_3").kernel.numpy()
    )
    other = model(256)
    before = other.get_layer("dense_0").kernel.numpy()
    with pytest.raises(checkpointing.WeightsMismatchError, match=r"last: file"):
        checkpointing.load_weights_by_name(other, path)
    np.testing.assert_array_equal(other.get_layer("dense_0").kernel.numpy(), before)


# ----------------------------------------------------------------------------------- PyNET


@pytest.fixture(scope="module")
def tiny_set(tmp_path_factory):
    from pynet_bokeh.data.synthetic import ensure_synthetic

    return ensure_synthetic(tmp_path_factory.mktemp("synth"), n_train=4, n_test=2, size=(128, 128))


@pytest.fixture(scope="module")
def pynet():
    """One PyNET for the module, and its initial (random) weights."""
    from pynet_bokeh import build_pynet

    model = build_pynet()
    return model, [w.numpy() for w in model.weights]


def _scramble(model, seed):
    """Other random weights everywhere, as a new process would start with."""
    rng = np.random.default_rng(seed)
    for w in model.weights:
        w.assign(rng.normal(0, 0.02, w.shape).astype(np.float32))


def _pynet_trainer(level, data, model_dir, model, steps, eval_batches=0, **kw):
    # A few eager steps cost seconds; tracing PyNET's gradient costs tens of seconds per level
    # (test_level_7_loss_on_a_fixed_batch_falls and the mirrored CLI test cover tf.function).
    task = PyNetLevelTask(level, data, model_dir, patch_size=32, batch_size=2, model=model, **kw)
    config = TrainConfig(
        work_dir=task.work_dir,
        steps=steps,
        learning_rate=1e-4,
        checkpoint_every=100,
        eval_every=100,
        eval_batches=eval_batches,
        run_eagerly=True,
        verbose=False,
    )
    return Trainer(task, config)


@pytest.mark.slow  # heavy: the default suite keeps under 15 min on 2 cores
def test_levels_7_6_5_each_start_from_the_previous_levels_final_weights(tmp_path, tiny_set, pynet):
    pynet = pynet[0]
    model_dir = tmp_path / "runs"
    with pytest.raises(HandOffError, match=r"level_6.final\.weights\.h5 does not exist.*--level 6"):
        _pynet_trainer(5, tiny_set, model_dir, pynet, 2).setup()
    previous = None
    for level in (7, 6, 5):
        _scramble(pynet, seed=level)
        trainer = _pynet_trainer(
            level, tiny_set, model_dir, pynet, steps=2, eval_batches=level == 5
        )
        trainer.setup()
        if previous is not None:
            # every layer, including all those the previous level trained, holds its final value
            stored = checkpointing.read_weights_by_name(previous)
            assert len(stored) == len([la for la in pynet.layers if la.weights]) == 225
            for name, values in stored.items():
                for v, w in zip(values, pynet.get_layer(name).weights, strict=True):
                    np.testing.assert_array_equal(v, w.numpy(), err_msg=name)
        head = pynet.get_layer(f"level{level}_logits").kernel.numpy().copy()
        result = trainer.run()
        assert result.end_step == 2 and math.isfinite(result.last_loss)
        if level == 5:
            assert set(result.eval_metrics) == {"psnr"}  # outputs under 11 px: no SSIM
            assert 5 < result.eval_metrics["psnr"] < 40
        # training moved this level's own head
        assert np.abs(pynet.get_layer(f"level{level}_logits").kernel.numpy() - head).max() > 0
        previous = result.final_weights
        assert previous == str(model_dir / f"level_{level}" / "final.weights.h5")


@pytest.mark.slow  # heavy: the default suite keeps under 15 min on 2 cores
def test_level_7_loss_on_a_fixed_batch_falls(tmp_path, tiny_set, pynet):
    model, initial = pynet
    for w, v in zip(model.weights, initial, strict=True):
        w.assign(v)  # the authors' initialisation (truncated normal 0.01, biases 0.01)
    task = PyNetLevelTask(7, tiny_set, tmp_path, patch_size=64, batch_size=4, model=model)
    config = TrainConfig(str(tmp_path / "l7"), steps=30, learning_rate=1e-4, verbose=False)
    trainer = Trainer(task, config)
    trainer.setup()
    inputs, targets = next(iter(task.dataset("train", seed=0, repeat=True)))
    losses = [trainer.train_step(inputs, targets)["loss"] for _ in range(30)]
    assert losses[-1] < 0.5 * losses[0], losses


@pytest.mark.slow  # heavy: the default suite keeps under 15 min on 2 cores
def test_level_1_step_with_a_matconvnet_vgg_file(tmp_path, tiny_set, pynet):
    pynet = pynet[0]
    from vgg_files import write_matconvnet

    from pynet_bokeh.training.vgg import MATCONVNET_FILE, load_vgg19

    path = tmp_path / MATCONVNET_FILE
    write_matconvnet(path, random_vgg19_weights(seed=3))
    vgg = load_vgg19(path)
    _scramble(pynet, seed=1)
    start = checkpointing.save_weights(pynet, tmp_path / "start.weights.h5")
    # a fresh level 1 needs level 2's weights; --init_from stands in for them here
    trainer = _pynet_trainer(
        1, tiny_set, tmp_path / "runs", pynet, steps=1, vgg=vgg, init_from=start
    )
    trainer.setup()
    inputs, targets = next(iter(trainer.task.dataset("train", seed=0, repeat=True)))
    assert targets.shape == (2, 64, 64, 3)
    terms = trainer.train_step(inputs, targets)
    assert sorted(terms) == ["l1", "loss", "ssim", "vgg"]
    assert all(math.isfinite(v) for v in terms.values())
    assert terms["vgg"] > 0
    assert terms["loss"] == pytest.approx(terms["l1"] + terms["vgg"] + terms["ssim"], rel=1e-5)
    assert int(trainer.optimizer.iterations.numpy()) == 1


@pytest.mark.slow  # heavy: the default suite keeps under 15 min on 2 cores
def test_init_from_the_authors_tf1_checkpoint(tmp_path, fixtures_dir, tiny_set, pynet):
    import subprocess
    import sys

    model = pynet[0]
    _scramble(model, seed=5)
    folder = fixtures_dir / "pynet_tf1"
    prefix = tmp_path / "pynet_bokeh_level_0"
    subprocess.run(
        [sys.executable, str(folder / "make_checkpoint.py"), str(prefix), "--extra-slots"],
        check=True,
        capture_output=True,
    )
    task = PyNetLevelTask(3, tiny_set, tmp_path, 32, 2, init_from=str(prefix), model=model)
    task.preflight(resuming=False)  # no level_4 weights needed with --init_from
    assert task.initialize(model) == f"weights from the authors' TF1 checkpoint {prefix}"
    ref = np.load(folder / "reference_seed0.npz")
    out = model(ref["input_0"])
    for level in (7, 3):
        want = ref[f"level{level}_0"]
        np.testing.assert_allclose(out[f"level{level}"].numpy(), want, atol=1e-4)


def test_pynet_eval_metrics_and_image_rows_on_known_inputs(tmp_path):
    target = np.full((2, 16, 16, 3), 0.4, np.float32)
    level3 = PyNetLevelTask(3, tmp_path, tmp_path, 32, 2)
    out = level3.eval_metrics(None, target, target + 0.1)
    assert out["psnr"] == pytest.approx(20.0, abs=1e-3)
    assert set(out) == {"psnr", "ssim", "ms_ssim"}  # MS-SSIM for levels <= 3
    assert 0.9 < out["ssim"] < 1.0
    level5 = PyNetLevelTask(5, tmp_path, tmp_path, 32, 2)
    assert set(level5.eval_metrics(None, target, target + 0.1)) == {"psnr", "ssim"}
    level7 = PyNetLevelTask(7, tmp_path, tmp_path, 32, 2)
    small = target[:, :4, :4]
    assert set(level7.eval_metrics(None, small, small)) == {"psnr"}  # 4 px: no SSIM window fits
    assert level7.eval_metrics(None, small, small)["psnr"] == 100.0  # identical: capped, not inf
    inputs = np.zeros((2, 32, 32, 4), np.float32)
    inputs[..., 0] = 1.0  # red input
    rows = level7.image_rows(inputs, small, small + 0.7).numpy()
    assert rows.shape == (2, 128, 384, 3)  # 4-px panels shown at 128 px
    np.testing.assert_allclose(rows[0, 0, 0], [1, 0, 0])  # input | output (clipped) | target
    np.testing.assert_allclose(rows[0, 0, 128], [1, 1, 1])
    np.testing.assert_allclose(rows[0, 0, 256], [0.4, 0.4, 0.4])


def test_bad_pairs_stop_before_training_unless_skip_bad(tmp_path, tiny_set):
    import shutil

    from pynet_bokeh.data.ebb import EbbValidationError

    root = tmp_path / "data"
    shutil.copytree(tiny_set, root)
    photo = sorted((root / "train" / "original").iterdir())[0]
    photo.write_bytes(photo.read_bytes()[:200])  # truncated JPEG
    task = PyNetLevelTask(7, root, tmp_path / "runs", 32, 2)
    with pytest.raises(EbbValidationError, match=photo.name):
        task.preflight(resuming=False)
    task = PyNetLevelTask(7, root, tmp_path / "runs", 32, 2, skip_bad=True)
    task.preflight(resuming=False)
    assert len(task._pairs["train"]) == 3 and len(task._pairs["test"]) == 2
