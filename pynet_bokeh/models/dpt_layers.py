"""Custom Keras layers for the DPT port (``pynet_bokeh.models.dpt``).

Each layer reproduces one detail of the original PyTorch code (isl-org/DPT on timm 0.4.5) that
Keras has no built-in for: the weight-standardised convolution, the class token with a
non-antialiased position-embedding resize, the readout concat, the attention core, bilinear
resizing with PyTorch's two coordinate conventions, and the NYU metric-depth conversion.
All are serializable, use ``keras.ops`` only, and run in the layer's dtype (float64 included).
"""

import keras
import numpy as np
from keras import ops

PACKAGE = "pynet_bokeh"


def _axis_coords(in_size, out_size, align_corners, dtype):
    """Source indices (i0, i1) and weight of i1 for 1-D bilinear resizing, PyTorch-style.

    ``align_corners=False`` is the half-pixel rule of ``F.interpolate`` / ``tf.image.resize``
    (negative source coordinates clamped to 0); ``True`` maps the corner pixels onto each other.
    Uses numpy when the sizes are static (constants in exported graphs), ``keras.ops`` otherwise.
    """
    if isinstance(in_size, int) and isinstance(out_size, int):
        dst = np.arange(out_size, dtype=np.float64)
        if align_corners:
            src = dst * ((in_size - 1) / (out_size - 1) if out_size > 1 else 0.0)
        else:
            src = np.maximum((dst + 0.5) * (in_size / out_size) - 0.5, 0.0)
        i0 = np.minimum(np.floor(src), in_size - 1).astype(np.int32)
        i1 = np.minimum(i0 + 1, in_size - 1).astype(np.int32)
        return i0, i1, (src - i0).astype(dtype)
    n_in = ops.cast(in_size, "float32")
    n_out = ops.cast(out_size, "float32")
    dst = ops.cast(ops.arange(out_size), "float32")
    if align_corners:
        src = dst * ops.where(n_out > 1, (n_in - 1) / ops.maximum(n_out - 1, 1), 0.0)
    else:
        src = ops.maximum((dst + 0.5) * (n_in / n_out) - 0.5, 0.0)
    i0 = ops.minimum(ops.floor(src), n_in - 1)
    frac = ops.cast(src - i0, dtype)
    i0 = ops.cast(i0, "int32")
    i1 = ops.minimum(i0 + 1, ops.cast(in_size, "int32") - 1)
    return i0, i1, frac


def _resize_axis(x, axis, out_size, align_corners):
    in_size = x.shape[axis] if x.shape[axis] is not None else ops.shape(x)[axis]
    dtype = keras.backend.standardize_dtype(x.dtype)
    i0, i1, frac = _axis_coords(in_size, out_size, align_corners, dtype)
    shape = [1] * len(x.shape)
    shape[axis] = -1
    frac = ops.reshape(ops.convert_to_tensor(frac, dtype=dtype), shape)
    x0 = ops.take(x, i0, axis=axis)
    x1 = ops.take(x, i1, axis=axis)
    return x0 * (1.0 - frac) + x1 * frac


def bilinear_resize(x, size, align_corners):
    """Bilinear NHWC resize to ``size`` (h, w) without antialiasing, as PyTorch's
    ``F.interpolate(mode="bilinear", align_corners=align_corners)`` computes it."""
    x = _resize_axis(x, 2, size[1], align_corners)
    return _resize_axis(x, 1, size[0], align_corners)


@keras.saving.register_keras_serializable(package=PACKAGE)
class StdConv2D(keras.layers.Conv2D):
    """Conv2D whose kernel is standardised per output channel at call time (timm 0.4.5
    ``StdConv2dSame``): ``(w - mean) / (std + eps)``, biased std over (kh, kw, in).

    Later timm versions use ``sqrt(var + 1e-8)``; the released DPT weights were trained with
    this formula. The stored kernel is the raw one, so checkpoints load unchanged.
    """

    def __init__(self, *args, eps=1e-5, **kwargs):
        super().__init__(*args, **kwargs)
        self.eps = eps

    def convolution_op(self, inputs, kernel):
        mean = ops.mean(kernel, axis=(0, 1, 2), keepdims=True)
        std = ops.sqrt(ops.mean(ops.square(kernel - mean), axis=(0, 1, 2), keepdims=True))
        return super().convolution_op(inputs, (kernel - mean) / (std + self.eps))

    def get_config(self):
        return {**super().get_config(), "eps": self.eps}


@keras.saving.register_keras_serializable(package=PACKAGE)
class BilinearUpsample(keras.layers.Layer):
    """Bilinear upsampling by an integer ``scale`` (DPT's ``Interpolate``; align_corners=True in
    the fusion blocks and head)."""

    def __init__(self, scale=2, align_corners=True, **kwargs):
        super().__init__(**kwargs)
        self.scale = int(scale)
        self.align_corners = bool(align_corners)

    def call(self, x):
        h, w = x.shape[1], x.shape[2]
        h = h * self.scale if h is not None else ops.shape(x)[1] * self.scale
        w = w * self.scale if w is not None else ops.shape(x)[2] * self.scale
        return bilinear_resize(x, (h, w), self.align_corners)

    def compute_output_shape(self, input_shape):
        n, h, w, c = input_shape
        return (
            n,
            None if h is None else h * self.scale,
            None if w is None else w * self.scale,
            c,
        )

    def get_config(self):
        return {**super().get_config(), "scale": self.scale, "align_corners": self.align_corners}


@keras.saving.register_keras_serializable(package=PACKAGE)
class ClassTokenPosEmbed(keras.layers.Layer):
    """Patch grid (N, h, w, D) -> tokens (N, 1 + h*w, D): flatten row-major, prepend the class
    token, add the position embedding.

    The embedding was learnt on a ``pos_grid`` (24 x 24 for 384^2 pretraining); its grid part is
    resized bilinearly to (h, w) with half-pixel centres and no antialiasing (DPT's
    ``_resize_pos_embed``); the class-token part is added unchanged.
    Weights: ``cls_token`` (1, 1, D), ``pos_embed`` (1, 1 + gh*gw, D), as in the checkpoint.
    """

    def __init__(self, pos_grid=(24, 24), **kwargs):
        super().__init__(**kwargs)
        self.pos_grid = tuple(int(g) for g in pos_grid)

    def build(self, input_shape):
        dim = input_shape[-1]
        zeros = keras.initializers.Zeros()
        normal = keras.initializers.TruncatedNormal(stddev=0.02)
        self.cls_token = self.add_weight(shape=(1, 1, dim), initializer=zeros, name="cls_token")
        n_pos = 1 + self.pos_grid[0] * self.pos_grid[1]
        self.pos_embed = self.add_weight(
            shape=(1, n_pos, dim), initializer=normal, name="pos_embed"
        )

    def call(self, grid):
        shape = ops.shape(grid)
        n, dim = shape[0], grid.shape[-1]
        h = grid.shape[1] if grid.shape[1] is not None else shape[1]
        w = grid.shape[2] if grid.shape[2] is not None else shape[2]
        tokens = ops.reshape(grid, (n, -1, dim))
        cls = ops.broadcast_to(self.cls_token, (n, 1, dim))
        tokens = ops.concatenate([cls, tokens], axis=1)
        pos_grid = ops.reshape(self.pos_embed[:, 1:], (1, *self.pos_grid, dim))
        pos_grid = ops.reshape(bilinear_resize(pos_grid, (h, w), align_corners=False), (1, -1, dim))
        pos = ops.concatenate([self.pos_embed[:, :1], pos_grid], axis=1)
        return tokens + pos

    def compute_output_shape(self, input_shape):
        n, h, w, d = input_shape
        return (n, None if h is None or w is None else 1 + h * w, d)

    def get_config(self):
        return {**super().get_config(), "pos_grid": self.pos_grid}


@keras.saving.register_keras_serializable(package=PACKAGE)
class ReadoutConcat(keras.layers.Layer):
    """Tokens (N, 1 + n, D) -> (N, n, 2D): each patch token concatenated with the class token,
    in the order [token, cls] (DPT's ``ProjectReadout``, before its Linear + GELU)."""

    def call(self, tokens):
        patches = tokens[:, 1:]
        cls = ops.broadcast_to(tokens[:, :1], ops.shape(patches))
        return ops.concatenate([patches, cls], axis=-1)

    def compute_output_shape(self, input_shape):
        n, t, d = input_shape
        return (n, None if t is None else t - 1, 2 * d)


@keras.saving.register_keras_serializable(package=PACKAGE)
class TokensToGrid(keras.layers.Layer):
    """[tokens (N, h*w, C), reference (N, h, w, *)] -> (N, h, w, C), row-major."""

    def call(self, inputs):
        tokens, ref = inputs
        shape = ops.shape(ref)
        h = ref.shape[1] if ref.shape[1] is not None else shape[1]
        w = ref.shape[2] if ref.shape[2] is not None else shape[2]
        return ops.reshape(tokens, (shape[0], h, w, tokens.shape[-1]))

    def compute_output_shape(self, input_shapes):
        tokens, ref = input_shapes
        return (ref[0], ref[1], ref[2], tokens[-1])


@keras.saving.register_keras_serializable(package=PACKAGE)
class SelfAttention(keras.layers.Layer):
    """Multi-head attention core of timm's ``Attention``: qkv (N, T, 3D) -> (N, T, D).

    The fused projection is split [q | k | v] first, then each into heads (not per head), and
    scores are scaled by (D / heads)^-0.5. The qkv and output projections are Dense layers
    around this one, so their weights map one-to-one onto ``attn.qkv`` and ``attn.proj``.
    """

    def __init__(self, num_heads, **kwargs):
        super().__init__(**kwargs)
        self.num_heads = int(num_heads)

    def call(self, qkv):
        shape = ops.shape(qkv)
        n, t = shape[0], shape[1]
        dim = qkv.shape[-1] // 3
        hd = dim // self.num_heads
        qkv = ops.reshape(qkv, (n, t, 3, self.num_heads, hd))
        qkv = ops.transpose(qkv, (2, 0, 3, 1, 4))  # 3, N, heads, T, hd
        q, k, v = qkv[0], qkv[1], qkv[2]
        scores = ops.matmul(q, ops.transpose(k, (0, 1, 3, 2))) * (hd**-0.5)
        out = ops.matmul(ops.softmax(scores, axis=-1), v)  # N, heads, T, hd
        return ops.reshape(ops.transpose(out, (0, 2, 1, 3)), (n, t, dim))

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], input_shape[-1] // 3)

    def get_config(self):
        return {**super().get_config(), "num_heads": self.num_heads}


@keras.saving.register_keras_serializable(package=PACKAGE)
class NyuMetricDepth(keras.layers.Layer):
    """DPT-NYU head output y >= 0 -> metric depth in metres: ``1 / max(scale*y + shift, 1e-8)``
    (DPT's ``invert=True`` branch; scale 0.000305, shift 0.1378, so depth <= 7.26 m)."""

    def __init__(self, scale=0.000305, shift=0.1378, **kwargs):
        super().__init__(**kwargs)
        self.scale = float(scale)
        self.shift = float(shift)

    def call(self, y):
        return 1.0 / ops.maximum(self.scale * y + self.shift, 1e-8)

    def get_config(self):
        return {**super().get_config(), "scale": self.scale, "shift": self.shift}
