"""Loading a PyNET from this package's weights file or the authors' TF1 checkpoint."""

import os

import keras

from pynet_bokeh.convert.tf1 import load_tf1_checkpoint
from pynet_bokeh.models.pynet import build_pynet


def load_pynet(weights=None, tf1_checkpoint=None, **build_kwargs):
    """Builds PyNET and loads `weights` (`.weights.h5` / `.keras`) or `tf1_checkpoint` (prefix).

    Exactly one of the two must be given; a missing file raises FileNotFoundError naming it.
    """
    if (weights is None) == (tf1_checkpoint is None):
        raise ValueError(
            "Give exactly one of --weights (a .weights.h5 or .keras file written by this "
            "package) or --tf1_checkpoint (the authors' checkpoint prefix, e.g. "
            "models/original/pynet_bokeh_level_0)."
        )
    if tf1_checkpoint is not None:
        return load_tf1_checkpoint(build_pynet(**build_kwargs), tf1_checkpoint)
    weights = os.fspath(weights)
    if not os.path.isfile(weights):
        raise FileNotFoundError(
            f"--weights {weights!r} does not exist: pass a .weights.h5 file saved by "
            "train_level.py (model_dir/level_N/final.weights.h5) or converted with "
            "`pynet-bokeh convert-tf1`."
        )
    if weights.endswith(".keras"):
        return keras.saving.load_model(weights)
    if not weights.endswith(".weights.h5"):
        raise ValueError(f"--weights {weights!r}: expected a .weights.h5 or .keras file.")
    model = build_pynet(**build_kwargs)
    model.load_weights(weights)
    return model
