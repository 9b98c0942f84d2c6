"""Trains one level of PyNET-Bokeh (7 first, then 6 ... 1), as the authors did.

    python train_level.py --level 7 --synthetic          # generated data, minutes on a CPU
    python train_level.py --level 6 --synthetic          # starts from level 7's final weights
    python train_level.py --level 7 --dataset_dir EBB    # the real EBB! data, authors' schedule

Rerunning the same command resumes from the last checkpoint in `--model_dir/level_<L>`.
Batch size, steps, learning rate, patch size and eval interval default to the authors' schedule
(or a small one with --synthetic); each flag overrides its default.
"""

from __future__ import annotations

import logging
import os
import sys

from absl import app, flags

FLAGS = flags.FLAGS

# --model -> module providing `task_from_flags(FLAGS) -> (TrainingTask, TrainConfig)` (see
# pynet_bokeh.training.trainer.TrainingTask). PyNET's is `build` below; other models plug into the
# same Trainer through their own module, reading --stage and the shared flags.
TASK_MODULES = {
    "pynet": None,
    "deeplens": "pynet_bokeh.training.deeplens_task",
    "bradcn": "pynet_bokeh.training.bradcn_task",
    "pynet-controllable": "pynet_bokeh.training.controllable_task",
}

flags.DEFINE_enum("model", "pynet", sorted(TASK_MODULES), "Which network to train.")
flags.DEFINE_string("stage", None, "Stage of a multi-stage model (e.g. DeepLens, BRADCN).")
flags.DEFINE_enum(
    "bradcn_config",
    None,
    ["paper", "tiny"],
    "BRADCN configuration (default: tiny with --synthetic, else paper).",
)
flags.DEFINE_integer("level", None, "PyNET level to train: 7 (coarsest, first) .. 1 (full size).")
flags.DEFINE_string("dataset_dir", None, "Data set root in the EBB! layout (train/, test/).")
flags.DEFINE_bool(
    "synthetic",
    False,
    "Train on a small generated data set (made on first use in --dataset_dir, or in "
    "$XDG_CACHE_HOME/pynet_bokeh) with a small CPU schedule.",
)
flags.DEFINE_string("model_dir", "runs/pynet", "Parent folder of the level_<L> folders.")
flags.DEFINE_integer("batch_size", None, "Batch size (default: the level's schedule).")
flags.DEFINE_integer("patch_size", None, "Input patch side, a multiple of 32 (default: schedule).")
flags.DEFINE_integer("steps", None, "Total training steps of this level (default: schedule).")
flags.DEFINE_float("learning_rate", None, "Adam learning rate (default: schedule).")
flags.DEFINE_integer("eval_every", None, "Evaluate on the test split every N steps.")
flags.DEFINE_integer("eval_batches", 8, "Test batches per evaluation (0: no evaluation).")
flags.DEFINE_integer(
    "checkpoint_every", None, "Checkpoint every N steps (default 1000; 100 with --synthetic)."
)
flags.DEFINE_integer("keep_checkpoints", 3, "How many recent checkpoints to keep.")
flags.DEFINE_string(
    "init_from",
    None,
    "Start a fresh run from these weights instead of level L+1's: a .weights.h5 file, a "
    "level folder, a checkpoint prefix, or the authors' TF1 checkpoint prefix.",
)
flags.DEFINE_enum("strategy", "default", ["default", "mirrored"], "tf.distribute strategy.")
flags.DEFINE_bool("mixed_precision", False, "mixed_float16 compute (losses stay float32).")
flags.DEFINE_bool(
    "run_eagerly", False, "Run steps eagerly (no tf.function): for debugging and very short runs."
)
flags.DEFINE_string(
    "vgg_weights",
    None,
    "VGG-19 weights for level 1's loss: vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5 "
    "(Keras) or imagenet-vgg-verydeep-19.mat (MatConvNet).",
)
flags.DEFINE_bool("no_vgg", False, "Level 1 without the VGG term (an ablation).")
flags.DEFINE_bool("skip_bad", False, "Leave out broken pairs instead of stopping.")
flags.DEFINE_integer("seed", 0, "Seed of the data pipeline.")
flags.DEFINE_string(
    "ebb_dir",
    None,
    "pynet-controllable: EBB! root whose pairs join the synthetic set, with controls estimated "
    "by `python -m pynet_bokeh.data.controls EBB/`.",
)
flags.DEFINE_float(
    "ebb_fraction", 0.0, "pynet-controllable: share of training samples drawn from --ebb_dir."
)

SYNTHETIC_SET = {"n_train": 64, "n_test": 8, "size": (256, 384)}
SYNTHETIC_CHECKPOINT_EVERY = 100
CHECKPOINT_EVERY = 1000


def default_cache_dir() -> str:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "pynet_bokeh")


def _dataset_root() -> str:
    if FLAGS.synthetic:
        from pynet_bokeh.data.synthetic import ensure_synthetic

        cache = FLAGS.dataset_dir or default_cache_dir()
        print(f"synthetic data set in {cache} (generated on first use) ...", flush=True)
        return os.fspath(ensure_synthetic(cache, **SYNTHETIC_SET))
    if not FLAGS.dataset_dir:
        raise app.UsageError("pass --dataset_dir (the EBB! root) or --synthetic")
    if not os.path.isdir(FLAGS.dataset_dir):
        raise app.UsageError(f"--dataset_dir {FLAGS.dataset_dir} is not a folder")
    return FLAGS.dataset_dir


def _vgg(level):
    if level != 1:
        return None
    if FLAGS.no_vgg:
        if FLAGS.vgg_weights:
            raise app.UsageError("pass either --vgg_weights or --no_vgg, not both")
        return False
    if not FLAGS.vgg_weights:
        from pynet_bokeh.training.vgg import WHERE_TO_GET

        raise app.UsageError(
            f"level 1's loss has a VGG-19 term: {WHERE_TO_GET}; or pass --no_vgg to leave it out"
        )
    from pynet_bokeh.training.vgg import load_vgg19

    return load_vgg19(FLAGS.vgg_weights)


def build(argv=None):
    """(task, TrainConfig) from the flags; prints the chosen schedule."""
    from pynet_bokeh.training.pynet_task import PyNetLevelTask
    from pynet_bokeh.training.schedule import check_level, resolve_schedule
    from pynet_bokeh.training.trainer import TrainConfig

    if FLAGS.level is None:
        raise app.UsageError("pass --level (7 first, then 6 ... 1)")
    try:
        level = check_level(FLAGS.level)
        sched = resolve_schedule(
            level,
            synthetic=FLAGS.synthetic,
            batch_size=FLAGS.batch_size,
            steps=FLAGS.steps,
            learning_rate=FLAGS.learning_rate,
            patch_size=FLAGS.patch_size,
            eval_every=FLAGS.eval_every,
        )
    except ValueError as err:
        raise app.UsageError(str(err)) from None
    origin = "synthetic CPU schedule" if FLAGS.synthetic else "authors' schedule"
    print(f"{sched.describe()} ({origin}; flags override)", flush=True)
    vgg = _vgg(level)
    root = _dataset_root()
    task = PyNetLevelTask(
        level,
        root,
        FLAGS.model_dir,
        patch_size=sched.patch_size,
        batch_size=sched.batch_size,
        init_from=FLAGS.init_from,
        vgg=vgg,
        skip_bad=FLAGS.skip_bad,
    )
    every = FLAGS.checkpoint_every or (
        SYNTHETIC_CHECKPOINT_EVERY if FLAGS.synthetic else CHECKPOINT_EVERY
    )
    config = TrainConfig(
        work_dir=task.work_dir,
        steps=sched.steps,
        learning_rate=sched.learning_rate,
        checkpoint_every=every,
        eval_every=sched.eval_every,
        keep_checkpoints=FLAGS.keep_checkpoints,
        eval_batches=FLAGS.eval_batches,
        seed=FLAGS.seed,
        strategy=FLAGS.strategy,
        mixed_precision=FLAGS.mixed_precision,
        run_eagerly=FLAGS.run_eagerly,
    )
    return task, config


def _task_from_flags():
    module_name = TASK_MODULES[FLAGS.model]
    if module_name is None:
        return build()
    import importlib

    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as err:
        if err.name != module_name:
            raise
        raise app.UsageError(
            f"--model {FLAGS.model}: no training task yet ({module_name} is missing)"
        ) from None
    return module.task_from_flags(FLAGS)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    # TF logs a line per checkpoint save ("Sharding callback duration"); keep progress readable.
    logging.getLogger("absl").addFilter(
        lambda record: "Sharding callback" not in record.getMessage()
    )
    from pynet_bokeh.data.ebb import EbbValidationError
    from pynet_bokeh.errors import PynetBokehError
    from pynet_bokeh.training.checkpointing import WeightsMismatchError
    from pynet_bokeh.training.pynet_task import HandOffError
    from pynet_bokeh.training.trainer import NonFiniteLossError, Trainer
    from pynet_bokeh.training.vgg import VGGWeightsError

    try:
        task, config = _task_from_flags()
        result = Trainer(task, config).run()
    except (
        HandOffError,
        EbbValidationError,
        VGGWeightsError,
        WeightsMismatchError,
        NonFiniteLossError,
        FileNotFoundError,
        PynetBokehError,
    ) as err:
        print(f"\nerror: {err}", file=sys.stderr, flush=True)
        return 1
    print(
        f"done: steps {result.start_step} -> {result.end_step}, loss {result.first_loss:.4f} -> "
        f"{result.last_loss:.4f}, {result.steps_per_second:.2f} steps/s; "
        f"weights: {result.final_weights}",
        flush=True,
    )
    return 0


def run():
    app.run(main)


if __name__ == "__main__":
    run()
