"""`.weights.h5` files tagged with layer names, and loading them by name.

- `save_weights(model, path)`: a Keras `.weights.h5` file (loadable with `model.load_weights`),
  written atomically, with each layer's name recorded next to its weights so that
  `load_weights_by_name` can match layers by name (Keras' own loader matches them by class and
  position).
"""

from __future__ import annotations

import os

import h5py
import numpy as np

from pynet_bokeh.errors import WeightsMismatchError
from pynet_bokeh.files import TMP_PREFIX, atomic_path, remove_stale_temporaries

LAYER_NAME_ATTR = "pynet_bokeh_layer_name"


def _snake_case(name: str) -> str:
    import re

    name = re.sub(r"\W+", "", name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


def _keras_file_keys(model):
    """(key under `layers/` in a Keras weights file, layer) for each of `model.layers`.

    Keras names a functional model's layers in its weights file by class name, numbered in
    order (conv2d, conv2d_1, ...); this mirrors that rule, and `save_weights` checks it against
    the written file.
    """
    used, out = {}, []
    for layer in model.layers:
        base = _snake_case(layer.__class__.__name__)
        if base in used:
            used[base] += 1
            key = f"{base}_{used[base]}"
        else:
            used[base] = 0
            key = base
        out.append((key, layer))
    return out


def save_weights(model, path) -> str:
    """Saves `model`'s weights to a Keras `.weights.h5` file atomically, tagged with layer names."""
    path = os.fspath(path)
    if not path.endswith(".weights.h5"):
        raise ValueError(f"weights file name must end in .weights.h5, got {path}")
    folder = os.path.dirname(os.path.abspath(path))
    remove_stale_temporaries(folder, (f"{TMP_PREFIX}*.weights.h5",))  # a run killed saving
    with atomic_path(path, suffix=".weights.h5") as tmp:
        model.save_weights(tmp, overwrite=True)
        with h5py.File(tmp, "r+") as f:
            for key, layer in _keras_file_keys(model):
                if not layer.weights:
                    continue
                group = f.get(f"layers/{key}/vars")
                if (
                    group is None
                    or len(group) != len(layer.weights)
                    or any(
                        group[str(i)].shape != tuple(w.shape) for i, w in enumerate(layer.weights)
                    )
                ):
                    raise RuntimeError(
                        f"unexpected Keras weights-file layout for layer {layer.name} "
                        f"(expected layers/{key}/vars): this Keras version names layers "
                        "differently; report it"
                    )
                f[f"layers/{key}"].attrs[LAYER_NAME_ATTR] = layer.name
    return path


def has_layer_names(path) -> bool:
    """Whether `path` is a `.weights.h5` file whose layers carry their names (`save_weights`)."""
    try:
        with h5py.File(os.fspath(path), "r") as f:
            layers = f.get("layers")
            return layers is not None and any(
                LAYER_NAME_ATTR in layers[key].attrs for key in layers
            )
    except OSError as err:
        raise WeightsMismatchError(
            f"{os.fspath(path)} is not a readable HDF5 weights file ({err}); re-copy it or "
            "save it again"
        ) from None


def read_weights_by_name(path) -> dict:
    """{layer name: [arrays]} from a file written by `save_weights`."""
    path = os.fspath(path)
    out = {}
    with h5py.File(path, "r") as f:
        layers = f.get("layers")
        if layers is None:
            raise WeightsMismatchError(
                f"{path} is not a Keras .weights.h5 file (no 'layers' group)"
            )
        for key in layers:
            group = layers[key]
            name = group.attrs.get(LAYER_NAME_ATTR)
            if name is None or "vars" not in group:
                continue
            name = name.decode() if isinstance(name, bytes) else str(name)
            vars_ = group["vars"]
            out[name] = [np.asarray(vars_[str(i)]) for i in range(len(vars_))]
    if not out:
        raise WeightsMismatchError(
            f"{path} has no layer names recorded: it was not written by pynet_bokeh's trainer; "
            "load it with model.load_weights instead"
        )
    return out


def load_weights_by_name(model, path, strict: bool = True) -> list:
    """Assigns weights from a `save_weights` file to `model`'s layers of the same name.

    Returns the names of the layers loaded. With `strict`, every layer of `model` that has
    weights must be in the file with the same shapes; otherwise layers absent from the file are
    left as they are (shape mismatches always raise).
    """
    stored = read_weights_by_name(path)
    loaded, missing, wrong = [], [], []
    for layer in model.layers:
        if not layer.weights:
            continue
        values = stored.get(layer.name)
        if values is None:
            missing.append(layer.name)
            continue
        shapes = [tuple(w.shape) for w in layer.weights]
        if [v.shape for v in values] != shapes:
            wrong.append(f"{layer.name}: file {[v.shape for v in values]}, model {shapes}")
            continue
        loaded.append((layer, values))
    if wrong or (strict and missing):
        lines = [f"{os.fspath(path)} does not fit model {model.name!r}:"]
        if missing:
            lines.append(f"  {len(missing)} layers missing from the file, e.g. {missing[:5]}")
        lines += [f"  shape mismatch {w}" for w in wrong[:10]]
        raise WeightsMismatchError("\n".join(lines))
    for layer, values in loaded:
        layer.set_weights(values)
    return [layer.name for layer, _ in loaded]


def layer_variables(model) -> dict:
    """{layer name: [variables]} of every layer with weights: a checkpoint keyed by name."""
    return {layer.name: list(layer.weights) for layer in model.layers if layer.weights}
