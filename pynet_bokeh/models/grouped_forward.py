"""A functional Keras model's forward pass with a smaller peak memory, for inference.

Same layers, same weights, same outputs (to float32 rounding: sums over input channels are
taken in another order). Three things lower the memory the feature maps hold at once:

- **No concatenations.** A `Concatenate` output stays a list of channel groups (`ChannelGroups`);
  a convolution on it sums one convolution per group with the matching slice of its kernel, and
  channel-wise layers (activations, instance norms, pooling, residual adds) work group by group.
  PyNET's level 3 concatenates four 32-channel branches into a 128-channel map that it then also
  keeps for a residual add: the concatenated copy is gone.
- **Depth-first order.** Layers are traced depth-first from the output (each branch to its end
  before the next starts), and the convolutions run one after another in that order (control
  dependencies): a branch's maps are freed before the next branch allocates its own, and a map
  needed only late (PyNET's level-4 upsampling for level 3's last blocks) is made late.
- **Recomputing cheap maps** (`recompute`): the named layers' outputs are not kept; each use
  computes them again from their inputs. PyNET's level-3 encoder (two 3 x 3 convolutions on the
  input) is used by five blocks far apart; recomputing it costs about 1% of the forward pass.

Layers it does not know are called as they are, on their inputs concatenated.
"""

from __future__ import annotations

import itertools

import keras
import tensorflow as tf

from pynet_bokeh.models.layers import ScaledTanh, SpaceToDepth


class ChannelGroups:
    """A feature map held as channel groups: the map is their concatenation on the last axis.

    Not a list or tuple on purpose: Keras' tree utilities would flatten those.
    """

    def __init__(self, tensors):
        self.tensors = tuple(tensors)


def _groups(x):
    """The tensors of `x` (a ChannelGroups or one tensor)."""
    return list(x.tensors) if isinstance(x, ChannelGroups) else [x]


def _whole(x):
    """`x` as one tensor (concatenated where it is held as groups)."""
    parts = _groups(x)
    return parts[0] if len(parts) == 1 else tf.concat(parts, axis=-1)


def _wrap(parts):
    return parts[0] if len(parts) == 1 else ChannelGroups(parts)


def _cast(x, dtype):
    """`x` (groups or one tensor) in `dtype`, as a Keras layer autocasts its inputs."""
    parts = [p if p.dtype == dtype else tf.cast(p, dtype) for p in _groups(x)]
    return _wrap(parts)


def _weight(layer, variable):
    """A layer's variable as the layer reads it: in its compute dtype (mixed precision)."""
    value = variable.value
    return value if value.dtype == layer.compute_dtype else tf.cast(value, layer.compute_dtype)


def _split_at(x, bounds):
    """The groups of `x` split further so that every channel offset in `bounds` is a boundary."""
    out, start = [], 0
    for t in _groups(x):
        width = int(t.shape[-1])
        cuts = [b - start for b in bounds if start < b < start + width]
        if cuts:
            sizes = [c - p for c, p in zip([*cuts, width], [0, *cuts], strict=True)]
            out += tf.split(t, sizes, axis=-1)
        else:
            out.append(t)
        start += width
    return out


def _widths(x):
    """The channel count of each group of `x`."""
    return [int(t.shape[-1]) for t in _groups(x)]


def _bounds(x):
    """The channel offsets where the groups of `x` end."""
    return list(itertools.accumulate(_widths(x)))


class _Tracer:
    """Traces one forward pass of a functional model (inside a tf.function)."""

    def __init__(self, recompute):
        self.recompute = frozenset(recompute)
        self.values = {}
        self.last_conv = None

    def _after_previous_conv(self):
        """A context in which the ops traced wait for the previous convolution."""
        return tf.control_dependencies([] if self.last_conv is None else [self.last_conv])

    def _serial(self, make):
        """Runs `make()` (one convolution) after the previous one traced."""
        with self._after_previous_conv():
            out = make()
        self.last_conv = out
        return out

    def _sum_over_groups(self, x, kernel, conv, in_axis):
        """sum_j conv(group_j, kernel sliced to group j's input channels), one at a time."""
        parts = _groups(x)
        if len(parts) == 1:
            kernels = [kernel]
        else:  # the slices are copies: made when this layer runs, not all at the start
            with self._after_previous_conv():
                kernels = tf.split(kernel, _widths(x), axis=in_axis)
        total = None
        for part, k in zip(parts, kernels, strict=True):
            y = self._serial(lambda part=part, k=k: conv(part, k))
            total = y if total is None else total + y
            # The next group's convolution waits for this sum: otherwise Grappler rewrites the
            # chain of adds into one AddN, which holds every group's output at once.
            self.last_conv = total
        return total

    def conv2d(self, layer, x):
        plain = layer.strides == (1, 1) and layer.dilation_rate == (1, 1) and layer.groups == 1
        if not plain or layer.data_format != "channels_last":
            return self.call_as_is(layer, x)
        padding = layer.padding.upper()
        y = self._sum_over_groups(
            _cast(x, layer.compute_dtype),
            _weight(layer, layer.kernel),
            lambda p, k: tf.nn.conv2d(p, k, 1, padding),
            in_axis=2,
        )
        if layer.use_bias:
            y = tf.nn.bias_add(y, _weight(layer, layer.bias))
        return self._activate(layer, y)

    def conv2d_transpose(self, layer, x):
        plain = layer.padding == "same" and layer.dilation_rate == (1, 1)
        if not plain or layer.output_padding is not None or layer.data_format != "channels_last":
            return self.call_as_is(layer, x)
        sy, sx = layer.strides
        first = _groups(x)[0]
        shape = tf.shape(first)
        out_shape = tf.stack([shape[0], shape[1] * sy, shape[2] * sx, layer.filters])

        def conv(p, k):
            return tf.nn.conv2d_transpose(p, k, out_shape, (sy, sx), "SAME")

        x = _cast(x, layer.compute_dtype)
        y = self._sum_over_groups(x, _weight(layer, layer.kernel), conv, in_axis=3)
        if layer.use_bias:
            y = tf.nn.bias_add(y, _weight(layer, layer.bias))
        return self._activate(layer, y)

    def _activate(self, layer, y):
        if layer.activation is keras.activations.linear:
            return y
        return layer.activation(y)

    def instance_norm(self, layer, x):
        """GroupNormalization with one channel per group, group by group."""
        parts = _groups(x)

        def split(variable):
            return [variable.value] if len(parts) == 1 else tf.split(variable.value, _widths(x))

        gammas = split(layer.gamma) if layer.scale else [None] * len(parts)
        betas = split(layer.beta) if layer.center else [None] * len(parts)
        out = []
        for part, gamma, beta in zip(parts, gammas, betas, strict=True):
            mean, variance = tf.nn.moments(part, [1, 2], keepdims=True)
            inv = tf.math.rsqrt(variance + layer.epsilon)
            if gamma is not None:
                inv = inv * gamma
            shift = -mean * inv
            if beta is not None:
                shift = shift + beta
            out.append(part * inv + shift)
        return _wrap(out)

    def add(self, xs):
        bounds = sorted({b for x in xs for b in _bounds(x)})
        aligned = [_split_at(x, bounds) for x in xs]
        return _wrap([tf.add_n(list(parts)) for parts in zip(*aligned, strict=True)])

    def call_as_is(self, layer, *args, **kwargs):
        args = [[_whole(a) for a in arg] if isinstance(arg, list) else _whole(arg) for arg in args]
        return layer(*args, **kwargs)

    def apply(self, layer, args, kwargs):
        L = keras.layers
        x = args[0] if args else None
        if isinstance(layer, L.Conv2DTranspose):
            return self.conv2d_transpose(layer, x)
        if isinstance(layer, L.Conv2D):
            return self.conv2d(layer, x)
        if isinstance(layer, L.Concatenate) and layer.axis in (-1, 3):
            return ChannelGroups([t for i in x for t in _groups(_cast(i, layer.compute_dtype))])
        if isinstance(layer, L.Add):
            return self.add([_cast(i, layer.compute_dtype) for i in x])
        if isinstance(layer, L.GroupNormalization) and layer.axis in (-1, 3):
            # float32 only: Keras computes a float16 layer's moments in float32, as is
            if layer.groups == sum(_widths(x)) and layer.compute_dtype == "float32":
                return self.instance_norm(layer, x)
        if isinstance(layer, (L.LeakyReLU, L.MaxPooling2D, ScaledTanh)):
            return _wrap([layer(part) for part in _groups(x)])  # channel-wise
        if isinstance(layer, SpaceToDepth):
            return layer(_whole(x))
        return self.call_as_is(layer, *args, **kwargs)

    def value(self, target):
        """The value of Keras tensor `target`: each node's inputs first, depth-first in argument
        order (a stack, not recursion: PyNET's longest path is hundreds of layers)."""
        if id(target) in self.values:
            return self.values[id(target)]
        stack, result = [_Frame(target)], None
        while stack:
            frame = stack[-1]
            if result is not None:  # a child frame finished
                frame.gathered[id(frame.inputs[frame.next])] = result
                result = None
            while frame.next < len(frame.inputs):
                key = id(frame.inputs[frame.next])
                if key not in frame.gathered and key not in self.values:
                    break
                frame.gathered.setdefault(key, self.values.get(key))
                frame.next += 1
            if frame.next < len(frame.inputs):
                stack.append(_Frame(frame.inputs[frame.next]))
                continue
            result = self._apply_node(frame)
            stack.pop()
        return result

    def _apply_node(self, frame):
        args, kwargs = frame.node.arguments.fill_in(frame.gathered)
        kwargs.pop("training", None)
        outputs = self.apply(frame.layer, args, kwargs)
        outputs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
        if frame.layer.name not in self.recompute:
            for t, y in zip(frame.node.outputs, outputs, strict=True):
                self.values[id(t)] = y
        return outputs[frame.tensor_index]


class _Frame:
    """One layer call waiting for its inputs (`_Tracer.value`)."""

    def __init__(self, keras_tensor):
        self.layer, node_index, self.tensor_index = keras_tensor._keras_history
        self.node = self.layer._inbound_nodes[node_index]
        self.inputs = list(self.node.input_tensors)
        self.gathered = {}
        self.next = 0


@tf.autograph.experimental.do_not_convert
def grouped_forward(model, inputs, recompute=()):
    """`model(inputs)` for inference (a functional Keras model with one input), traced with
    feature maps as channel groups, depth-first, with the layers named in `recompute` computed
    again at each use (see the module docstring). Call it inside a tf.function."""
    if len(model.inputs) != 1:
        raise ValueError(
            f"grouped_forward takes a model with one input, {model.name!r} has {len(model.inputs)}"
        )
    unknown = sorted(set(recompute) - {layer.name for layer in model.layers})
    if unknown:
        raise ValueError(f"recompute names no layer of {model.name!r}: {unknown}")
    tracer = _Tracer(recompute)
    tracer.values[id(model.inputs[0])] = inputs
    outputs = keras.tree.map_structure(lambda t: _whole(tracer.value(t)), model.output)
    return outputs
