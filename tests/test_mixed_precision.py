"""Mixed precision (mixed_float16) on the real PyNET: instance norms and the scaled tanh.

Level 6 at patch 64, batch 4 (its instance norms run on 2 x 2 .. 32 x 32 maps), eager steps.
"""

import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from pynet_bokeh.training.pynet_task import PyNetLevelTask
from pynet_bokeh.training.trainer import TrainConfig, Trainer

# Level 6's output (in [-0.08, 1.08]) from float16 compute against float32, same weights.
OUTPUT_TOLERANCE = 2e-2


@pytest.fixture(scope="module")
def tiny_set(tmp_path_factory):
    from pynet_bokeh.data.synthetic import ensure_synthetic

    return ensure_synthetic(tmp_path_factory.mktemp("synth"), n_train=4, n_test=2, size=(128, 128))


def _trainer(tiny_set, model_dir, steps, model=None):
    task = PyNetLevelTask(6, tiny_set, model_dir, 64, 4, init_from=None, model=model)
    task.preflight = lambda resuming: PyNetLevelTask.preflight(task, resuming=True)
    task.initialize = lambda model: "the seeded initial weights"
    config = TrainConfig(
        task.work_dir,
        steps=steps,
        learning_rate=1e-4,
        checkpoint_every=3,
        eval_batches=0,
        mixed_precision=True,
        run_eagerly=True,
        verbose=False,
    )
    return Trainer(task, config)


@pytest.mark.slow  # heavy: the default suite keeps under 15 min on 2 cores
def test_pynet_mixed_float16_steps_outputs_and_resumed_loss_scale(tmp_path, tiny_set):
    keras.utils.set_random_seed(0)
    trainer = _trainer(tiny_set, tmp_path, steps=3)
    trainer.setup()
    model = trainer.model
    by_name = {la.name: la for la in model.layers}
    assert by_name["level6_enc_conv3a"].compute_dtype == "float16"
    assert by_name["level6_enc_norm3a"].compute_dtype == "float16"
    assert by_name["level6_output"].compute_dtype == "float16"
    assert all(w.dtype == "float32" for w in model.weights)

    # the same weights in a float32 PyNET: outputs agree within the float16 tolerance
    from pynet_bokeh import build_pynet, level_model

    reference = build_pynet()
    reference.set_weights(model.get_weights())
    inputs, targets = next(iter(trainer.task.dataset("train", seed=0, repeat=True)))
    half = trainer.train_model(inputs, training=False)
    full = level_model(reference, 6)(inputs, training=False)
    assert half.dtype == tf.float16 and full.dtype == tf.float32
    out_diff = float(np.abs(half.numpy().astype(np.float32) - full.numpy()).max())
    spread = float(full.numpy().max() - full.numpy().min())
    print(f"\nlevel 6 float16 vs float32 output: max|diff| {out_diff:.2e} (spread {spread:.3f})")
    assert out_diff <= OUTPUT_TOLERANCE
    assert spread > 10 * OUTPUT_TOLERANCE  # the outputs are not a constant both get right
    del reference

    result = trainer.run()
    assert result.end_step == 3
    assert math.isfinite(result.first_loss) and math.isfinite(result.last_loss)
    saved_scale = float(trainer.optimizer.dynamic_scale.numpy())
    saved_counter = int(trainer.optimizer.step_counter.numpy())
    saved_weights = [w.numpy().copy() for w in trainer.train_model.trainable_variables]
    print(f"loss {result.first_loss:.3f} -> {result.last_loss:.3f}; loss scale {saved_scale:g}, "
          f"steps since last change {saved_counter}")  # fmt: skip
    fresh = keras.optimizers.LossScaleOptimizer(keras.optimizers.Adam())
    assert (saved_scale, saved_counter) != (fresh.initial_scale, 0)

    # a resumed run (new optimizer, weights scrambled) restores weights and loss-scale state
    for w in trainer.model.weights:
        w.assign(tf.zeros_like(w))
    resumed = _trainer(tiny_set, tmp_path, steps=4, model=trainer.model)
    assert resumed.setup() == 3
    assert float(resumed.optimizer.dynamic_scale.numpy()) == saved_scale
    assert int(resumed.optimizer.step_counter.numpy()) == saved_counter
    for a, b in zip(saved_weights, resumed.train_model.trainable_variables, strict=True):
        np.testing.assert_array_equal(a, b.numpy())
    result = resumed.run()
    assert result.end_step == 4 and math.isfinite(result.last_loss)
