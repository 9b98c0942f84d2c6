"""Serializable layers reproducing the numerics of the DeepLens TF1 graph (no `Lambda`).

- `LegacyBilinearResize` / `ResizeLike`: TF1 `resize_bilinear` with `align_corners=False`,
  `half_pixel_centers=False` (src = dst * in / out, floor, upper neighbour clamped). Keras
  `Resizing` and `tf.image.resize` use half-pixel centres and give different numbers.
- `SymmetricPad`: TF `SYMMETRIC` padding (edge pixel repeated) before DeepLens' feature convs.
- `Uint8Quantize`: the truncating `uint8(x * 255)` cast the SR module applies to its input DoF.
- `NormalizeKernel` / `ApplyKernel`: per-pixel kernel normalised by its sum, then the weighted sum
  of candidate layers (channel `3 j + c` is candidate j of colour c).
- `MinMaxNormalize`: the depth post-processing `(d - min) / (max - min + eps)` per image.
"""

import keras
from keras import ops

FLOAT32_EPS = 1.1920929e-07
FLOAT64_EPS = 2.220446049250313e-16


def _legacy_coords(in_size, out_size):
    """Lower/upper source indices and lerp weights of TF1 legacy bilinear resizing."""
    scale = ops.cast(in_size, "float32") / ops.cast(out_size, "float32")
    src = ops.cast(ops.arange(out_size), "float32") * scale
    low = ops.floor(src)
    lerp = src - low
    low = ops.cast(low, "int32")
    high = ops.minimum(ops.cast(ops.ceil(src), "int32"), ops.cast(in_size, "int32") - 1)
    return low, high, lerp


def legacy_bilinear_resize(x, out_h, out_w):
    """NHWC `x` resized to (out_h, out_w) exactly as TF1 `resize_bilinear` (legacy mode) does."""
    shape = ops.shape(x)
    y0, y1, wy = _legacy_coords(shape[1], out_h)
    x0, x1, wx = _legacy_coords(shape[2], out_w)
    wx = ops.reshape(wx, (1, 1, -1, 1))
    wy = ops.reshape(wy, (1, -1, 1, 1))
    rows = []
    for yi in (y0, y1):
        r = ops.take(x, yi, axis=1)
        left = ops.take(r, x0, axis=2)
        right = ops.take(r, x1, axis=2)
        rows.append(left + (right - left) * wx)  # same operation order as the TF kernel
    top, bottom = rows
    return top + (bottom - top) * wy


@keras.saving.register_keras_serializable(package="pynet_bokeh")
class LegacyBilinearResize(keras.layers.Layer):
    """Resizes to a fixed `size=(h, w)` or by an integer `scale`, TF1 legacy bilinear."""

    def __init__(self, size=None, scale=None, **kwargs):
        super().__init__(**kwargs)
        if (size is None) == (scale is None):
            raise ValueError("LegacyBilinearResize needs exactly one of size=(h, w) or scale=k.")
        self.size = None if size is None else (int(size[0]), int(size[1]))
        self.scale = None if scale is None else int(scale)

    def call(self, x):
        if self.size is not None:
            return legacy_bilinear_resize(x, *self.size)
        shape = ops.shape(x)
        return legacy_bilinear_resize(x, shape[1] * self.scale, shape[2] * self.scale)

    def compute_output_shape(self, input_shape):
        n, h, w, c = input_shape
        if self.size is not None:
            return (n, *self.size, c)
        return (n, None if h is None else h * self.scale, None if w is None else w * self.scale, c)

    def get_config(self):
        return {**super().get_config(), "size": self.size, "scale": self.scale}


@keras.saving.register_keras_serializable(package="pynet_bokeh")
class ResizeLike(keras.layers.Layer):
    """`[x, reference]` -> x resized to reference's height and width (TF1 legacy bilinear)."""

    def call(self, inputs):
        x, ref = inputs
        shape = ops.shape(ref)
        return legacy_bilinear_resize(x, shape[1], shape[2])

    def compute_output_shape(self, input_shapes):
        x, ref = input_shapes
        return (x[0], ref[1], ref[2], x[3])


@keras.saving.register_keras_serializable(package="pynet_bokeh")
class SymmetricPad(keras.layers.Layer):
    """Pads height and width by `padding` on both sides, TF `SYMMETRIC` mode."""

    def __init__(self, padding=1, **kwargs):
        super().__init__(**kwargs)
        self.padding = int(padding)

    def call(self, x):
        p = self.padding
        return ops.pad(x, [[0, 0], [p, p], [p, p], [0, 0]], mode="symmetric")

    def compute_output_shape(self, input_shape):
        n, h, w, c = input_shape
        p = 2 * self.padding
        return (n, None if h is None else h + p, None if w is None else w + p, c)

    def get_config(self):
        return {**super().get_config(), "padding": self.padding}


@keras.saving.register_keras_serializable(package="pynet_bokeh")
class Uint8Quantize(keras.layers.Layer):
    """`uint8(x * 255)` as float: truncation, saturated to [0, 255] (TF's CPU cast saturates).

    Piecewise constant: no gradient flows through it (as in the original graph).
    """

    def call(self, x):
        return ops.floor(ops.clip(x * 255.0, 0.0, 255.0))

    def compute_output_shape(self, input_shape):
        return input_shape


@keras.saving.register_keras_serializable(package="pynet_bokeh")
class NormalizeKernel(keras.layers.Layer):
    """`k / (sum_j k_j + eps)` over the channel axis (not a softmax; all-zero stays zero)."""

    def __init__(self, epsilon=FLOAT64_EPS, **kwargs):
        super().__init__(**kwargs)
        self.epsilon = float(epsilon)

    def call(self, k):
        return k / (ops.sum(k, axis=-1, keepdims=True) + self.epsilon)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "epsilon": self.epsilon}


@keras.saving.register_keras_serializable(package="pynet_bokeh")
class ApplyKernel(keras.layers.Layer):
    """`[kernel (J ch), features (3 J ch)]` -> out[..., c] = sum_j kernel_j * features[..., 3 j + c]."""

    def call(self, inputs):
        kernel, features = inputs
        # One batched matmul per pixel; stride-3 channel slices are ~15x slower on CPU.
        shape = ops.shape(features)
        candidates = ops.reshape(features, (shape[0], shape[1], shape[2], -1, 3))
        return ops.einsum("nhwj,nhwjc->nhwc", kernel, candidates)

    def compute_output_shape(self, input_shapes):
        k = input_shapes[0]
        return (k[0], k[1], k[2], 3)


@keras.saving.register_keras_serializable(package="pynet_bokeh")
class MinMaxNormalize(keras.layers.Layer):
    """Per-image `(x - min) / (max - min + eps)` over height, width and channels."""

    def __init__(self, epsilon=FLOAT32_EPS, **kwargs):
        super().__init__(**kwargs)
        self.epsilon = float(epsilon)

    def call(self, x):
        lo = ops.min(x, axis=(1, 2, 3), keepdims=True)
        hi = ops.max(x, axis=(1, 2, 3), keepdims=True)
        return (x - lo) / (hi - lo + self.epsilon)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "epsilon": self.epsilon}


@keras.saving.register_keras_serializable(package="pynet_bokeh")
class ReverseChannels(keras.layers.Layer):
    """RGB <-> BGR (a gather on the channel axis: a TFLite builtin)."""

    def call(self, x):
        return ops.take(x, [2, 1, 0], axis=-1)

    def compute_output_shape(self, input_shape):
        return input_shape


@keras.saving.register_keras_serializable(package="pynet_bokeh")
class FocalDepthAt(keras.layers.Layer):
    """`[depth (N,H,W,1), focus_xy (N,2)]` -> depth at (x // scale, y // scale) per sample, (N, 1).

    focus_xy is in pixels of an image `scale` times larger than `depth` (clamped to the map).
    """

    def __init__(self, scale=1, **kwargs):
        super().__init__(**kwargs)
        self.scale = int(scale)

    def call(self, inputs):
        depth, focus = inputs
        shape = ops.shape(depth)
        h, w = shape[1], shape[2]
        xy = ops.floor(ops.cast(focus, "float32") / float(self.scale))
        x = ops.clip(ops.cast(xy[:, 0], "int32"), 0, w - 1)
        y = ops.clip(ops.cast(xy[:, 1], "int32"), 0, h - 1)
        flat = ops.reshape(depth, (-1, h * w))
        return ops.take_along_axis(flat, ops.expand_dims(y * w + x, 1), axis=1)

    def compute_output_shape(self, input_shapes):
        return (input_shapes[0][0], 1)

    def get_config(self):
        return {**super().get_config(), "scale": self.scale}


@keras.saving.register_keras_serializable(package="pynet_bokeh")
class SignedDefocus(keras.layers.Layer):
    """`[depth (N,H,W,1), focal_depth (N,1), aperture (N,1)]` -> (depth - focal_depth) * aperture."""

    def call(self, inputs):
        depth, focal, aperture = inputs
        focal = ops.reshape(focal, (-1, 1, 1, 1))
        return (depth - focal) * ops.reshape(aperture, (-1, 1, 1, 1))

    def compute_output_shape(self, input_shapes):
        return input_shapes[0]
