"""Model weights files and training checkpoints.

- `save_weights(model, path)`: a Keras `.weights.h5` file (loadable with `model.load_weights`),
  written atomically, with each layer's name recorded next to its weights so that
  `load_weights_by_name` can match layers by name (Keras' own loader matches them by class and
  position).
- `training_checkpoint(...)`: a `tf.train.Checkpoint` of the model's weights keyed by layer name,
  the optimizer and the step; `tf.train.CheckpointManager` keeps the last few. TensorFlow writes
  the data files first and replaces the `checkpoint` index file atomically, so a run killed
  mid-save resumes from the previous checkpoint.
- `load_initial_weights(model, path)`: `--init_from`, whatever kind of file `path` is.
"""

from __future__ import annotations

import os

import tensorflow as tf

from pynet_bokeh.errors import WeightsMismatchError
from pynet_bokeh.weights.keras_h5 import (  # noqa: F401 (re-exported: the trainer's API)
    LAYER_NAME_ATTR,
    TMP_PREFIX,
    layer_variables,
    load_weights_by_name,
    read_weights_by_name,
    save_weights,
)
from pynet_bokeh.weights.tf1 import load_tf1_checkpoint

FINAL_WEIGHTS = "final.weights.h5"
CHECKPOINT_DIR = "checkpoints"


def training_checkpoint(model, optimizer, step, directory, max_to_keep=3):
    """(tf.train.Checkpoint, tf.train.CheckpointManager) of weights (by layer name), optimizer, step."""
    ckpt = tf.train.Checkpoint(weights=layer_variables(model), optimizer=optimizer, step=step)
    manager = tf.train.CheckpointManager(ckpt, os.fspath(directory), max_to_keep=max_to_keep)
    return ckpt, manager


def _is_tf1_checkpoint(prefix) -> bool:
    names = [name for name, _ in tf.train.list_variables(prefix)]
    return any(name.startswith("generator/") for name in names)


def resolve_checkpoint_prefix(path):
    """A TF checkpoint prefix from a prefix, a checkpoint folder or a level's folder; or None."""
    path = os.fspath(path)
    if os.path.isdir(path):
        for folder in (path, os.path.join(path, CHECKPOINT_DIR)):
            prefix = tf.train.latest_checkpoint(folder)
            if prefix:
                return prefix
        return None
    if os.path.exists(path + ".index"):
        return path
    return None


def load_initial_weights(model, path) -> str:
    """Loads `--init_from` into `model` and says what was loaded.

    `path` may be a `.weights.h5` file written by the trainer (matched by layer name) or by Keras
    (`model.load_weights`), a level's folder holding `final.weights.h5` or checkpoints, a
    checkpoint prefix of this trainer, or the authors' TF1 checkpoint prefix (e.g.
    `.../pynet_bokeh_level_1`, variables `generator/...`).
    """
    path = os.fspath(path)
    if os.path.isdir(path) and os.path.isfile(os.path.join(path, FINAL_WEIGHTS)):
        path = os.path.join(path, FINAL_WEIGHTS)
    if path.endswith(".h5"):
        if not os.path.isfile(path):
            raise FileNotFoundError(f"--init_from: weights file not found: {path}")
        try:
            names = load_weights_by_name(model, path, strict=False)
            return f"{len(names)} layers by name from {path}"
        except WeightsMismatchError as err:
            if "no layer names recorded" not in str(err):
                raise
        model.load_weights(path)
        return f"Keras weights file {path}"
    prefix = resolve_checkpoint_prefix(path)
    if prefix is None:
        raise FileNotFoundError(
            f"--init_from: {path} is neither a .weights.h5 file, a folder with "
            f"{FINAL_WEIGHTS} or checkpoints, nor a TF checkpoint prefix (PREFIX.index missing)"
        )
    if _is_tf1_checkpoint(prefix):
        load_tf1_checkpoint(model, prefix)
        return f"the authors' TF1 checkpoint {prefix}"
    ckpt = tf.train.Checkpoint(weights=layer_variables(model))
    ckpt.restore(prefix).expect_partial().assert_existing_objects_matched()
    return f"training checkpoint {prefix}"
