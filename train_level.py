"""Trains one level of PyNET-Bokeh (7 first, then 6 ... 1), as the authors did, or a stage of
another method (`--model deeplens|bradcn|... --stage S`).

    python train_level.py --level 7 --synthetic          # generated data, minutes on a CPU
    python train_level.py --level 6 --synthetic          # starts from level 7's final weights
    python train_level.py --level 7 --dataset_dir EBB    # the real EBB! data, authors' schedule

Rerunning the same command resumes from the last checkpoint in `--model_dir/level_<L>`.
Batch size, steps, learning rate, patch size and eval interval default to the method's schedule
(or a small one with --synthetic); each flag overrides its default. The method's training task
comes from the renderer registry (`Renderer.training_task`).
"""

from __future__ import annotations

import importlib
import logging
import sys

from absl import app, flags

from pynet_bokeh.cli import flags as cli_flags

FLAGS = flags.FLAGS

TRAIN_FLAGS = (
    "method",
    "stage",
    "bradcn_config",
    "level",
    "dataset_dir",
    "synthetic",
    "model_dir",
    "batch_size",
    "patch_size",
    "steps",
    "learning_rate",
    "eval_every",
    "eval_batches",
    "checkpoint_every",
    "keep_checkpoints",
    "init_from",
    "strategy",
    "mixed_precision",
    "run_eagerly",
    "skip_bad",
    "seed",
    "ebb_dir",
    "ebb_fraction",
)


def define_flags(fv=FLAGS):
    """This script's flags on `fv` (shared declarations from `pynet_bokeh.cli.flags`)."""
    cli_flags.define_absl(fv, TRAIN_FLAGS, level=None)
    flags.DEFINE_string(
        "vgg_weights",
        None,
        "VGG-19 weights for level 1's loss: vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5 "
        "(Keras) or imagenet-vgg-verydeep-19.mat (MatConvNet).",
        flag_values=fv,
    )
    flags.DEFINE_bool(
        "no_vgg", False, "Level 1 without the VGG term (an ablation).", flag_values=fv
    )
    return fv


define_flags()


def task_from_flags(opts=FLAGS):
    """(task, TrainConfig) for `--model`: its registry entry names the training task module."""
    from pynet_bokeh.errors import UsageError
    from pynet_bokeh.renderers import renderer_class

    module_name = renderer_class(opts.method).training_task
    if module_name is None:
        raise UsageError(f"--model {opts.method} has no training (it has no learned weights)")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as err:
        if err.name != module_name:
            raise
        raise UsageError(
            f"--model {opts.method}: no training task yet ({module_name} is missing)"
        ) from None
    return module.task_from_flags(opts)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    # TF logs a line per checkpoint save ("Sharding callback duration"); keep progress readable.
    logging.getLogger("absl").addFilter(
        lambda record: "Sharding callback" not in record.getMessage()
    )
    from pynet_bokeh.cli.errors import report
    from pynet_bokeh.errors import PynetBokehError
    from pynet_bokeh.training.trainer import NonFiniteLossError, Trainer, make_strategy

    try:
        # multi_worker and tpu set up the runtime, so before anything else runs TensorFlow.
        strategy = (
            make_strategy(FLAGS.strategy) if FLAGS.strategy in ("multi_worker", "tpu") else None
        )
        task, config = task_from_flags()
        result = Trainer(task, config, strategy=strategy).run()
    except (PynetBokehError, NonFiniteLossError, OSError) as err:
        print(file=sys.stderr)
        report(err)
        return 1
    print(
        f"done: steps {result.start_step} -> {result.end_step}, loss {result.first_loss:.4f} -> "
        f"{result.last_loss:.4f}, {result.steps_per_second:.2f} steps/s; "
        f"weights: {result.final_weights}",
        flush=True,
    )
    return 0


def run():
    from pynet_bokeh.cli.errors import absl_main

    app.run(lambda argv: absl_main(main, argv))


if __name__ == "__main__":
    run()
