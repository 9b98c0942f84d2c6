"""Import of the authors' TF1 PyNET-Bokeh checkpoint (`pynet_bokeh_level_0.index` + `.data-*`).

It also loads into the 5-channel controllable model (`build_pynet(input_channels=5)`): the
kernels that read the extra input channel (the signed defocus map) are set to zero, so the model
renders exactly the authors' output whatever the control until it is trained.

The release holds 440 variables `generator/Variable`, `generator/Variable_1`, ... numbered in
graph-creation order (kernel, bias, then instance-norm shift and scale, layer by layer). Only the
TF checkpoint reader is used: no TF1 graph, no session.
"""

import logging
import os

import keras
import numpy as np
import tensorflow as tf

from pynet_bokeh.errors import WeightsMismatchError

log = logging.getLogger(__name__)

_DEFAULT_OPTIONS = {"input_channels": 4, "instance_norm": True, "instance_norm_level_1": False}
#: Input channels of the authors' model (RGB + depth) and of the controllable one it loads into.
_TF1_INPUT_CHANNELS = 4
_EXPANDABLE_INPUT_CHANNELS = (4, 5)
#: The authors' model reads its input through space_to_depth(x, 2).
_SPACE_TO_DEPTH_BLOCK = 2


# The name this module used before the package had one error class per kind.
CheckpointMismatchError = WeightsMismatchError


def tf1_variable_name(index):
    """`generator/Variable` for 0, `generator/Variable_N` otherwise (TF1 Saver naming)."""
    return "generator/Variable" if index == 0 else f"generator/Variable_{index}"


def resolve_prefix(prefix):
    """Accepts `PREFIX`, `PREFIX.index` or `PREFIX.data-...`; checks the files are there."""
    prefix = os.fspath(prefix)
    for suffix in (".index", ".meta"):
        if prefix.endswith(suffix):
            prefix = prefix[: -len(suffix)]
    if ".data-" in os.path.basename(prefix):
        prefix = prefix[: prefix.rindex(".data-")]
    if os.path.isdir(prefix):
        found = tf.train.latest_checkpoint(prefix)
        if found is None:
            raise FileNotFoundError(
                f"No TF1 checkpoint in directory {prefix!r}: pass the checkpoint prefix, e.g. "
                "models/original/pynet_bokeh_level_0 (the part before .index / .data-*)."
            )
        prefix = found
    if not os.path.exists(prefix + ".index"):
        raise FileNotFoundError(
            f"TF1 checkpoint not found: {prefix + '.index'!r} does not exist. Pass the prefix of "
            "the authors' release, e.g. models/original/pynet_bokeh_level_0, whose "
            ".index and .data-00000-of-00001 files sit side by side."
        )
    return prefix


def _model_variables(model):
    """(layer, weight slot) in TF1 creation order, with the expected shape of each variable."""
    order = getattr(model, "tf1_order", None)
    if order is None:
        raise TypeError(
            "load_tf1_checkpoint expects the full model from build_pynet(), not "
            f"{type(model).__name__} {model.name!r} (build the full model, load, then take "
            "level_model(model, L))."
        )
    slots = []
    for name in order:
        layer = model.get_layer(name)
        if isinstance(layer, keras.layers.GroupNormalization):
            # The authors create the shift before the scale.
            slots += [(layer, 1), (layer, 0)]
        else:
            slots += [(layer, i) for i in range(len(layer.weights))]
    return slots


def expand_input_kernel(kernel, channels, block=2, from_channels=_TF1_INPUT_CHANNELS):
    """A kernel reading `space_to_depth(x, block)` of a `from_channels` input, widened to read a
    `channels` input: the new channels' slices are zero.

    space_to_depth puts input channel c of block position p = dy * block + dx at
    `p * C + c`, so each position's slices move to the new stride: `[p * channels + c]`.
    """
    kernel = np.asarray(kernel)
    positions = block * block
    if kernel.shape[2] != positions * from_channels:
        raise WeightsMismatchError(
            f"input kernel has {kernel.shape[2]} input channels, expected "
            f"{positions * from_channels} (space_to_depth {block} of {from_channels} channels)"
        )
    if channels < from_channels:
        raise ValueError(f"cannot narrow an input kernel from {from_channels} to {channels}")
    grouped = kernel.reshape(kernel.shape[:2] + (positions, from_channels) + kernel.shape[3:])
    wide = np.zeros(kernel.shape[:2] + (positions, channels) + kernel.shape[3:], kernel.dtype)
    wide[:, :, :, :from_channels] = grouped
    return wide.reshape(kernel.shape[:2] + (positions * channels,) + kernel.shape[3:])


def _input_expansion(model, layer, slot):
    """Channels to widen this variable to (the kernel of an input layer of a 5-channel model),
    or None."""
    from_model = getattr(model, "input_channels", _TF1_INPUT_CHANNELS)
    if from_model == _TF1_INPUT_CHANNELS or from_model not in _EXPANDABLE_INPUT_CHANNELS:
        return None
    if layer.name in getattr(model, "input_layer_names", ()) and slot == 0:
        return from_model
    return None


def _checkpoint_shape(model, layer, slot):
    """The shape the authors' checkpoint stores for this model variable."""
    shape = tuple(layer.weights[slot].shape)
    channels = _input_expansion(model, layer, slot)
    if channels is None:
        return shape
    positions = _SPACE_TO_DEPTH_BLOCK**2
    return shape[:2] + (positions * _TF1_INPUT_CHANNELS,) + shape[3:]


def _options_note(model):
    options = {k: getattr(model, k) for k in _DEFAULT_OPTIONS}
    if options["input_channels"] in _EXPANDABLE_INPUT_CHANNELS:
        options["input_channels"] = _TF1_INPUT_CHANNELS
    if options == _DEFAULT_OPTIONS:
        return ""
    return (
        f" The model was built with {options}; the authors' release matches build_pynet() "
        f"with its defaults {_DEFAULT_OPTIONS}."
    )


def read_tf1_weights(model, prefix):
    """Reads and checks every variable the model needs; returns {layer name: [arrays]}."""
    return dict(_tf1_layer_weights(model, prefix))


def _tf1_layer_weights(model, prefix):
    """Checks every variable's name and shape first, then yields (layer name, [arrays]) one
    layer at a time, so a caller assigning as it goes never holds a second copy of all the
    weights (190 MB for PyNET)."""
    slots = _model_variables(model)
    prefix = resolve_prefix(prefix)
    reader = tf.train.load_checkpoint(prefix)
    shapes = reader.get_variable_to_shape_map()
    values = {}
    for index, (layer, slot) in enumerate(slots):
        var = tf1_variable_name(index)
        expected = _checkpoint_shape(model, layer, slot)
        if var not in shapes:
            raise WeightsMismatchError(
                f"Variable {var!r} (for layer {layer.name!r}, shape {expected}) is missing from "
                f"checkpoint {prefix!r}: the model needs {len(slots)} variables "
                f"generator/Variable ... {tf1_variable_name(len(slots) - 1)}; is this the "
                "authors' PyNET-Bokeh checkpoint?" + _options_note(model)
            )
        if tuple(shapes[var]) != expected:
            raise WeightsMismatchError(
                f"Variable {var!r} in checkpoint {prefix!r} has shape {tuple(shapes[var])}, but "
                f"layer {layer.name!r} expects {expected}." + _options_note(model)
            )
    extra = len(shapes) - len(slots)
    if extra:
        log.info("Ignored %d extra checkpoint variables (optimizer slots, counters).", extra)
    for index, (layer, slot) in enumerate(slots):
        value = reader.get_tensor(tf1_variable_name(index))
        channels = _input_expansion(model, layer, slot)
        if channels is not None:
            value = expand_input_kernel(value, channels, _SPACE_TO_DEPTH_BLOCK)
        arrays = values.setdefault(layer.name, [None] * len(layer.weights))
        arrays[slot] = value
        if all(a is not None for a in arrays):
            yield layer.name, values.pop(layer.name)


def load_tf1_checkpoint(model, prefix):
    """Loads the authors' TF1 checkpoint into a `build_pynet()` model, in place.

    A 5-channel controllable model gets the authors' weights with zero kernels on the signed
    defocus channel (see `expand_input_kernel`), so it renders the authors' output at first.
    Optimizer slots and other extra variables are ignored. A missing variable or a shape
    mismatch raises `WeightsMismatchError` naming the variable; nothing is assigned then.
    Returns the model.
    """
    for name, arrays in _tf1_layer_weights(model, prefix):
        layer = model.get_layer(name)
        layer.set_weights([np.asarray(a, dtype=layer.weights[0].dtype) for a in arrays])
    return model
