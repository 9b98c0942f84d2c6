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
MODEL_NAME_ATTR = "pynet_bokeh_model_name"


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
            f.attrs[MODEL_NAME_ATTR] = model.name
    return path


def describe_weights_file(path) -> str:
    """What a weights file seems to hold, in a few words: the network's name where the file
    records it (`save_weights`, a `.keras` config), else its first layer names."""
    import json
    import zipfile

    path = os.fspath(path)
    try:
        if zipfile.is_zipfile(path):  # .keras: config.json names the model
            with zipfile.ZipFile(path) as zf, zf.open("config.json") as f:
                config = json.loads(f.read(16 << 20))
            layers = config.get("config", {}).get("layers", [])
            layers = [x for x in layers if x.get("class_name") != "InputLayer"]
            name = config.get("config", {}).get("name", "?")
            return f"network {name!r} ({len(layers)} layers)"
        with h5py.File(path, "r") as f:
            name = f.attrs.get(MODEL_NAME_ATTR)
            layers = f.get("layers")
            names = []
            for key in layers or []:
                if not len(layers[key].get("vars", {})):
                    continue  # inputs, activations: no weights
                tagged = layers[key].attrs.get(LAYER_NAME_ATTR)
                names.append(tagged.decode() if isinstance(tagged, bytes) else str(tagged or key))
    except (OSError, KeyError, ValueError) as err:
        return f"no readable weights ({err})"
    if name is not None:
        name = name.decode() if isinstance(name, bytes) else str(name)
        return f"network {name!r} ({len(names)} layers)"
    shown = ", ".join(repr(n) for n in names[:3])
    return f"a network of {len(names)} layers named like {shown}"


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


def _open_named_layers(path):
    """(open h5py.File, {layer name: its `vars` group}) of a file written by `save_weights`.

    Nothing is read yet: callers check shapes on the datasets before reading any data."""
    path = os.fspath(path)
    try:
        f = h5py.File(path, "r")
    except OSError as err:
        raise WeightsMismatchError(
            f"{path} is not a readable HDF5 weights file ({err}): truncated or not a "
            ".weights.h5; re-copy it or save it again"
        ) from None
    layers = f.get("layers")
    if layers is None:
        f.close()
        raise WeightsMismatchError(f"{path} is not a Keras .weights.h5 file (no 'layers' group)")
    groups = {}
    for key in layers:
        group = layers[key]
        name = group.attrs.get(LAYER_NAME_ATTR)
        if name is None or "vars" not in group:
            continue
        name = name.decode() if isinstance(name, bytes) else str(name)
        groups[name] = group["vars"]
    if not groups:
        f.close()
        raise WeightsMismatchError(
            f"{path} has no layer names recorded: it was not written by pynet_bokeh's trainer; "
            "load it with model.load_weights instead"
        )
    return f, groups


def _datasets(vars_group):
    return [vars_group[str(i)] for i in range(len(vars_group))]


def read_weights_by_name(path) -> dict:
    """{layer name: [arrays]} from a file written by `save_weights`."""
    f, groups = _open_named_layers(path)
    with f:
        return {name: [np.asarray(d) for d in _datasets(g)] for name, g in groups.items()}


def load_weights_by_name(model, path, strict: bool = True) -> list:
    """Assigns weights from a `save_weights` file to `model`'s layers of the same name.

    Returns the names of the layers loaded. With `strict`, every layer of `model` that has
    weights must be in the file with the same shapes; otherwise layers absent from the file are
    left as they are (shape mismatches always raise). Shapes are checked before any data is
    read, and the data is read one layer at a time (the file is never held in memory whole).
    """
    f, groups = _open_named_layers(path)
    with f:
        loaded, missing, wrong = [], [], []
        for layer in model.layers:
            if not layer.weights:
                continue
            group = groups.get(layer.name)
            if group is None:
                missing.append(layer.name)
                continue
            shapes = [tuple(w.shape) for w in layer.weights]
            stored = [tuple(d.shape) for d in _datasets(group)]
            if stored != shapes:
                wrong.append(f"{layer.name}: file {stored}, model {shapes}")
                continue
            loaded.append((layer, group))
        if wrong or (strict and missing):
            with_weights = sum(1 for layer in model.layers if layer.weights)
            parts = [f"{len(missing)} of its {with_weights} layers missing"] if missing else []
            if wrong:
                parts.append(f"{len(wrong)} with other shapes, e.g. {wrong[0]}")
            raise WeightsMismatchError(
                f"{os.fspath(path)} holds {describe_weights_file(path)}, not the weights of "
                f"network {model.name!r} ({'; '.join(parts)})"
            )
        for layer, group in loaded:
            layer.set_weights([np.asarray(d) for d in _datasets(group)])
    return [layer.name for layer, _ in loaded]


def layer_variables(model) -> dict:
    """{layer name: [variables]} of every layer with weights: a checkpoint keyed by name."""
    return {layer.name: list(layer.weights) for layer in model.layers if layer.weights}
