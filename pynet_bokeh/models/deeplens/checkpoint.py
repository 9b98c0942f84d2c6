"""The authors' TF1 checkpoint (488 variables under `Network/Network/`) and the trainer's
`.weights.h5`, into a `DeepLens` model."""

import os

import keras
import numpy as np
import tensorflow as tf

from pynet_bokeh.errors import WeightsMismatchError
from pynet_bokeh.models.deeplens.networks import SCOPES
from pynet_bokeh.weights.keras_h5 import load_weights_by_name
from pynet_bokeh.weights.tf1 import resolve_prefix

# One error class per kind across the package; the old name stays importable.
DeepLensCheckpointError = WeightsMismatchError


_CONV_VARS = ("weights", "biases")
_BN_VARS = ("gamma", "beta", "moving_mean", "moving_variance")


def checkpoint_variables(model):
    """{TF1 variable name: keras variable} for every weight of the four modules."""
    out = {}
    for attr, scope in SCOPES.items():
        for layer in getattr(model, attr).layers:
            if isinstance(layer, keras.layers.Conv2D):
                names = _CONV_VARS[: len(layer.weights)]
            elif isinstance(layer, keras.layers.BatchNormalization):
                names = _BN_VARS
            else:
                continue
            for var_name, var in zip(names, layer.weights, strict=True):
                out[f"Network/Network/{scope}/{layer.name}/{var_name}"] = var
    return out


def resolve_checkpoint(prefix):
    """The checkpoint prefix (accepts PREFIX, PREFIX.index, a folder), or FileNotFoundError."""
    try:
        return resolve_prefix(prefix)
    except FileNotFoundError:
        raise FileNotFoundError(
            f"DeepLens checkpoint not found at {str(prefix)!r}: pass the prefix of the authors' "
            "release (scott89/deeplens_eval, model/model_end2end/model), i.e. the path before "
            ".index / .data-00000-of-00001, both files side by side."
        ) from None


def resolve_weights(path):
    """A TF1 checkpoint prefix, or a trainer's `.weights.h5` (a stage folder gives its
    `final.weights.h5`); FileNotFoundError saying what to pass when neither exists."""
    path = os.fspath(path)
    if os.path.isdir(path) and os.path.isfile(os.path.join(path, "final.weights.h5")):
        path = os.path.join(path, "final.weights.h5")
    if path.endswith(".weights.h5"):
        if not os.path.isfile(path):
            raise FileNotFoundError(f"DeepLens weights file not found: {path!r}.")
        return path
    return resolve_checkpoint(path)


def is_deeplens_tf1_checkpoint(path):
    """True when `path` resolves to a TF checkpoint holding `Network/Network/...` variables."""
    try:
        prefix = resolve_checkpoint(path)
    except FileNotFoundError:
        return False
    return any(n.startswith("Network/Network/") for n, _ in tf.train.list_variables(prefix))


def load_deeplens_checkpoint(model, prefix):
    """Loads the authors' TF1 checkpoint (488 variables under `Network/Network/`) into `model`.

    Optimizer slots (`.../Adam`, `.../Adam_1`), beta powers and `global_step` are ignored.
    Raises `DeepLensCheckpointError` naming the variable when one is missing or has another shape;
    nothing is assigned unless every variable fits. Also accepts the trainer's weights
    (`<stage folder>/final.weights.h5`, or the folder), matched by module name.
    """
    path = resolve_weights(prefix)
    if path.endswith(".weights.h5"):
        load_weights_by_name(model, path)
        return model
    prefix = path
    reader = tf.train.load_checkpoint(prefix)
    shapes = reader.get_variable_to_shape_map()
    wanted = checkpoint_variables(model)
    missing = [n for n in wanted if n not in shapes]
    if len(missing) == len(wanted):
        raise WeightsMismatchError(
            f"{prefix!r} holds none of the {len(wanted)} DeepLens variables "
            "(Network/Network/{Depth,Lensblur,Feature,SR}/...): is it a DeepLens checkpoint?"
        )
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise WeightsMismatchError(
            f"variable {missing[0]!r} is missing from checkpoint {prefix!r}{more}; "
            "expected the layout of model/model_end2end/model from scott89/deeplens_eval."
        )
    for name, var in wanted.items():
        if tuple(shapes[name]) != tuple(var.shape):
            raise WeightsMismatchError(
                f"variable {name!r} in {prefix!r} has shape {list(shapes[name])}, "
                f"DeepLens expects {list(var.shape)}."
            )
    for name, var in wanted.items():
        var.assign(reader.get_tensor(name).astype(np.float32))
    return model
