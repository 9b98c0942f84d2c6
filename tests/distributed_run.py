"""One training process for tests/test_distribute.py (run as a subprocess: logical devices and
MultiWorkerMirroredStrategy must be set up before TensorFlow starts).

    python tests/distributed_run.py mirrored DATA WORK        # PyNET level 7: 1 device vs 2
    python tests/distributed_run.py train DATA MODEL_DIR --strategy multi_worker --steps 6 ...

`mirrored` configures 2 logical CPU devices, then takes one step of the real PyNET's level 7
(patch 64, batch 4) on the default strategy and one on `mirrored` from the same weights and
batch, and prints `RESULT {json}` with the largest per-tensor max|diff| / max|weight|.

`train` runs the real `Trainer` on the real EBB pipeline with `TinyLevelTask`: PyNET's level-5
task (loss, data, shapes) on a small convolutional net standing in for PyNET's 47M weights, so
that several processes fit in seconds on 2 cores. `--wrong_split` feeds one process what two
workers would compute if both read part 0 of each global batch.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

PATCH, BATCH, LEVEL = 64, 4, 5


def tiny_pynet():
    """A small net with PyNET's input and its `level5` output (1/16 of the input side x 2)."""
    import keras

    x = keras.Input((None, None, 4), name="input")
    y = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="tiny_conv1")(x)
    y = keras.layers.AveragePooling2D(8, name="tiny_pool")(y)
    y = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="tiny_conv2")(y)
    y = keras.layers.Conv2D(3, 1, name="tiny_out")(y)
    return keras.Model(x, {f"level{LEVEL}": y}, name="tiny_pynet")


def tiny_task_class():
    from pynet_bokeh.training.pynet_task import PyNetLevelTask

    class TinyLevelTask(PyNetLevelTask):
        def preflight(self, resuming):
            super().preflight(resuming=True)  # a fresh run starts from the seeded net below

        def initialize(self, model):
            return "the tiny net's seeded initial weights"

        def build_model(self):
            import keras

            keras.utils.set_random_seed(1)  # the same start in every process
            return tiny_pynet()

    return TinyLevelTask


def mirrored(args):
    import numpy as np
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import keras

    from pynet_bokeh.training.pynet_task import PyNetLevelTask
    from pynet_bokeh.training.trainer import TrainConfig, Trainer

    weights = {}
    for strategy in ("default", "mirrored"):
        task = PyNetLevelTask(7, args.data, os.path.join(args.out, strategy), PATCH, BATCH)
        config = TrainConfig(
            task.work_dir, steps=1, learning_rate=1e-4, strategy=strategy, run_eagerly=True
        )
        keras.utils.set_random_seed(0)
        trainer = Trainer(task, config)
        trainer.setup()
        variables = trainer.train_model.trainable_variables
        start = [v.numpy().copy() for v in variables]
        inputs, targets = next(iter(trainer.distributed_dataset(0)))
        if strategy == "default":
            determined = determined_elements(trainer, inputs, targets)
        loss = trainer.train_step(inputs, targets)["loss"]
        after = [v.numpy() for v in variables]
        weights[strategy] = (start, after, loss, trainer.strategy.num_replicas_in_sync)

    (s1, a1, l1, r1), (s2, a2, l2, r2) = weights["default"], weights["mirrored"]
    same_start = all(np.array_equal(a, b) for a, b in zip(s1, s2, strict=True))

    def ratio(x, y, ref, mask=None):
        out = 0.0
        for a, b, w, m in zip(x, y, ref, mask or [True] * len(x), strict=True):
            diff = np.where(m, np.abs(a - b), 0.0)
            out = max(out, float(diff.max() / max(np.abs(w).max(), 1e-12)))
        return out

    kept = sum(int(np.sum(m)) for m in determined)
    total = sum(m.size for m in determined)
    print(
        "RESULT "
        + json.dumps(
            {
                "replicas": [r1, r2],
                "same_start": same_start,
                "loss": [l1, l2],
                "ratio": ratio(a1, a2, a1, determined),
                "ratio_all_elements": ratio(a1, a2, a1),
                "step_ratio": ratio(a1, s1, a1, determined),
                "determined_fraction": kept / total,
                "tensors": len(a1),
            }
        ),
        flush=True,
    )


def determined_elements(trainer, inputs, targets):
    """Per variable, the elements whose gradient float rounding does not decide.

    Adam's first step is about learning_rate * sign(gradient), so an element whose gradient is
    rounding noise (exactly zero in exact arithmetic: a conv feeding an instance norm over a
    1 x 1 map at level 7, a bias before any instance norm) moves +-lr on any device depending
    on the summation order. The noise is measured on one device: the gradient of the whole batch
    against the mean of its two halves' gradients (what 2 replicas sum); elements within 1000x of
    that difference are left out of the comparison.
    """
    import numpy as np
    import tensorflow as tf

    model, task = trainer.train_model, trainer.task
    variables = model.trainable_variables

    def grads(x, y):
        with tf.GradientTape() as tape:
            loss = tf.add_n(list(task.loss_terms(x, y, model(x, training=True)).values()))
        return [g.numpy() for g in tape.gradient(loss, variables)]

    half = inputs.shape[0] // 2
    whole = grads(inputs, targets)
    parts = [grads(inputs[:half], targets[:half]), grads(inputs[half:], targets[half:])]
    return [
        np.abs(g) > 1000 * np.abs(g - (p + q) / 2) for g, p, q in zip(whole, *parts, strict=True)
    ]


def train(args):
    strategy = None
    if args.strategy == "multi_worker":
        from pynet_bokeh.training.trainer import make_strategy

        strategy = make_strategy("multi_worker")
    import tensorflow as tf

    from pynet_bokeh.training.trainer import TrainConfig, Trainer

    task_class = tiny_task_class()

    class Task(task_class):
        def dataset(self, split, seed, repeat, skip_batches=0, shard=None):
            if not args.wrong_split or split != "train":
                return super().dataset(split, seed, repeat, skip_batches, shard)
            part = super().dataset(split, seed, repeat, skip_batches, shard=(0, 2))
            return part.map(lambda x, y: (tf.concat([x, x], 0), tf.concat([y, y], 0)))

    task = Task(LEVEL, args.data, args.model_dir, PATCH, BATCH)
    config = TrainConfig(
        task.work_dir,
        steps=args.steps,
        learning_rate=args.learning_rate,
        checkpoint_every=args.checkpoint_every,
        eval_batches=0,
        strategy=args.strategy,
        verbose=True,
    )
    trainer = Trainer(task, config, strategy=strategy)
    if args.step_delay:
        step = trainer.train_step

        def slow_step(inputs, targets):
            time.sleep(args.step_delay)
            return step(inputs, targets)

        trainer.train_step = slow_step
    result = trainer.run()
    print(f"RESULT {json.dumps({'end_step': result.end_step, 'chief': trainer.is_chief})}")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["mirrored", "train"])
    parser.add_argument("data")
    parser.add_argument("out")
    parser.add_argument("--strategy", default="default")
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--checkpoint_every", type=int, default=100)
    parser.add_argument("--learning_rate", type=float, default=1e-3)
    parser.add_argument("--step_delay", type=float, default=0.0)
    parser.add_argument("--wrong_split", action="store_true")
    args = parser.parse_args()
    if args.mode == "mirrored":
        mirrored(args)
    else:
        args.model_dir = args.out
        train(args)


if __name__ == "__main__":
    main()
