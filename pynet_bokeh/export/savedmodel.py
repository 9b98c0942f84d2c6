"""The graph that goes into the .tflite: the served output, named inputs, 4-D instance norms,
written as a SavedModel with one `serving_default` signature."""

from __future__ import annotations

import logging
import os
import re

import keras
import tensorflow as tf

log = logging.getLogger(__name__)

PYNET_INPUT_NAME = "image_depth"
OUTPUT_NAME = "bokeh"


def serving_model(model, level=1):
    """The single-output model to export: `level_model(model, level)` for a full PyNET."""
    if isinstance(model, keras.Model) and isinstance(model.output, dict):
        from pynet_bokeh.models.pynet import level_model

        if f"level{level}" not in model.output:
            raise ValueError(
                f"level {level!r}: the model has outputs {sorted(model.output)}; "
                "pass --level 1 (full size) or 2 (the input's size)"
            )
        return level_model(model, level)
    return model


def _is_pynet(model):
    from pynet_bokeh.models.pynet import PyNET

    return isinstance(model, PyNET) or (
        isinstance(model, keras.Model) and re.fullmatch(r"pynet.*_level[1-7]", model.name)
    )


def default_input_specs(model, height, width, dynamic=False):
    """{name: tf.TensorSpec [1, H, W, C]} from a keras.Model's inputs (None, None when dynamic)."""
    if not isinstance(model, keras.Model):
        raise ValueError(
            "a callable that is not a keras.Model needs input_specs={name: tf.TensorSpec(...)}"
        )
    h, w = (None, None) if dynamic else (int(height), int(width))
    specs = {}
    for tensor in model.inputs:
        shape = tuple(tensor.shape)
        if len(shape) != 4:
            raise ValueError(
                f"input {tensor.name!r} has shape {shape}; only NHWC image inputs get default "
                "specs, pass input_specs for others"
            )
        name = PYNET_INPUT_NAME if len(model.inputs) == 1 else _input_name(tensor)
        specs[name] = tf.TensorSpec([1, h, w, shape[-1]], tf.float32, name=name)
    return specs


def _input_name(tensor):
    return re.sub(r"[^A-Za-z0-9_]", "_", tensor.name.split(":")[0])


def _endpoint(model, input_specs, output_name):
    """A function of the named inputs returning {output name: tensor}, for ExportArchive."""
    names = list(input_specs)
    keras_model = isinstance(model, keras.Model)

    def serve(*args):
        feeds = dict(zip(names, args, strict=True))
        if keras_model:
            out = model(args[0] if len(args) == 1 else feeds, training=False)
        else:
            out = model(**feeds)
        if isinstance(out, dict):
            return {re.sub(r"[^A-Za-z0-9_]", "_", k): v for k, v in out.items()}
        if isinstance(out, list | tuple):
            return {f"{output_name}_{i}": v for i, v in enumerate(out)}
        return {output_name: out}

    return serve, [input_specs[n] for n in names]


def write_saved_model(model, directory, input_specs, output_name=OUTPUT_NAME, track=()):
    """Writes `model` as a SavedModel with one `serving_default` signature of the named inputs.

    `track`: keras layers / models whose variables a plain callable uses (a keras.Model is
    tracked by itself).
    """
    archive = keras.export.ExportArchive()
    tracked = [model] if isinstance(model, keras.layers.Layer) else list(track)
    for obj in tracked:
        archive.track(obj)
    fn, signature = _endpoint(model, input_specs, output_name)
    archive.add_endpoint("serving_default", fn, input_signature=signature)
    archive.write_out(os.fspath(directory), verbose=False)
    return directory


@keras.saving.register_keras_serializable(package="pynet_bokeh")
class InstanceNorm4D(keras.layers.Layer):
    """Instance norm on 4-D tensors only: the export-time twin of
    `GroupNormalization(groups=-1)` (same weights: gamma, beta).

    Keras's GroupNormalization reshapes to 5-D (N, H, W, groups, 1); the TFLite GPU delegate
    handles at most 4-D tensors, so those ops would fall back to the CPU on a phone.
    """

    def __init__(self, epsilon=1e-3, **kwargs):
        super().__init__(**kwargs)
        self.epsilon = epsilon

    def build(self, input_shape):
        channels = input_shape[-1]
        self.gamma = self.add_weight(shape=(channels,), initializer="ones", name="gamma")
        self.beta = self.add_weight(shape=(channels,), initializer="zeros", name="beta")

    def call(self, x):
        mean = keras.ops.mean(x, axis=(1, 2), keepdims=True)
        variance = keras.ops.mean(keras.ops.square(x - mean), axis=(1, 2), keepdims=True)
        inv = keras.ops.rsqrt(variance + self.epsilon) * self.gamma
        return x * inv + (self.beta - mean * inv)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "epsilon": self.epsilon}


def _is_instance_norm(layer):
    if not isinstance(layer, keras.layers.GroupNormalization):
        return False
    channels = layer.input.shape[-1]
    return layer.axis in (-1, 3) and layer.groups in (-1, channels) and layer.scale and layer.center


def with_4d_instance_norm(model):
    """A copy of a functional `model` whose instance norms are `InstanceNorm4D` (same weights).

    Other layers are shared, not copied. Returns `model` itself when it has no instance norm.
    """
    if not any(_is_instance_norm(layer) for layer in model.layers):
        return model
    replaced = {}

    def clone(layer):
        if _is_instance_norm(layer):
            new = InstanceNorm4D(epsilon=layer.epsilon, name=layer.name)
            replaced[layer.name] = (new, layer)
            return new
        return layer

    copy = keras.models.clone_model(model, clone_function=clone)
    for new, old in replaced.values():
        new.set_weights(old.get_weights())
    return copy


def _mobile_graph(net):
    if not isinstance(net, keras.Model):
        return net
    try:
        return with_4d_instance_norm(net)
    except (ValueError, TypeError) as err:  # a subclassed model cannot be cloned
        log.warning("Instance norms kept as they are (the model cannot be cloned: %s)", err)
        return net
