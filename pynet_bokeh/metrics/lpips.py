"""LPIPS v0.1 (Zhang et al., CVPR 2018) in Keras, weights read from the released PyTorch files.

    lpips = build_lpips("alex", trunk_weights="alexnet-owt-7be5be79.pth",
                        lin_weights="lpips/weights/v0.1/alex.pth")
    d = lpips(x0, x1)                       # (N,) distances; x0, x1 NHWC RGB in [0, 1]
    maps = lpips(x0, x1, spatial=True)      # (N, H, W)
    d, per_layer = lpips(x0, x1, per_layer=True)

The same numbers as the `lpips` package's `LPIPS(net="alex", version="0.1")(x0, x1,
normalize=True)` on NCHW tensors: [0, 1] inputs are mapped to [-1, 1] (`normalize=False` takes
[-1, 1] as given), shifted by (-.030, -.088, -.188) and divided by (.458, .448, .450); the
AlexNet trunk's five ReLU outputs are unit-normalised over channels (eps 1e-10 added to the
norm), their squared differences weighted by the 1x1 linear layers, averaged over space (or, with
`spatial`, each map bilinearly upsampled to the input size, align_corners=False) and summed.
torch's padding is kept (conv1 11x11 stride 4 padding 2, max-pool 3x3 stride 2 floor), which is
not TensorFlow's "same". Weights come through `pynet_bokeh.weights.torch_file` (allow-listed
pickle + NumPy): torch is never imported. torchvision's AlexNet file holds `features.*` (used)
and `classifier.*` (ignored); the linear file `lin{0..4}.model.1.weight` of shape (1, C, 1, 1).
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from pynet_bokeh.errors import WeightsMismatchError
from pynet_bokeh.weights.torch_file import load_torch_file

SHIFT = (-0.030, -0.088, -0.188)
SCALE = (0.458, 0.448, 0.450)
EPS = 1e-10
# AlexNet features: (torch index, out channels, kernel, stride, padding, max-pool before it)
ALEX_CONVS = (
    (0, 64, 11, 4, 2, False),
    (3, 192, 5, 1, 2, True),
    (6, 384, 3, 1, 1, True),
    (8, 256, 3, 1, 1, False),
    (10, 256, 3, 1, 1, False),
)
NETS = {"alex": ALEX_CONVS}


def build_lpips_trunk(net: str = "alex", name: str | None = None) -> keras.Model:
    """The LPIPS feature trunk: NHWC input already scaled -> its five ReLU feature maps."""
    if net not in NETS:
        raise ValueError(f"LPIPS trunk {net!r} is not built here; use one of {sorted(NETS)}")
    x = inputs = keras.Input((None, None, 3), name="scaled_image")
    features = []
    for index, filters, kernel, stride, pad, pool in NETS[net]:
        if pool:
            x = keras.layers.MaxPooling2D(3, 2, padding="valid", name=f"pool_{index}")(x)
        x = keras.layers.ZeroPadding2D(pad, name=f"pad_{index}")(x)
        x = keras.layers.Conv2D(filters, kernel, stride, name=f"conv_{index}")(x)
        x = keras.layers.ReLU(name=f"relu_{index}")(x)
        features.append(x)
    return keras.Model(inputs, features, name=name or f"lpips_{net}_trunk")


def _load_trunk(model, net, path):
    state = load_torch_file(path)
    for index, *_ in NETS[net]:
        w_key, b_key = f"features.{index}.weight", f"features.{index}.bias"
        if w_key not in state or b_key not in state:
            raise WeightsMismatchError(
                f"{path}: no {w_key} / {b_key}; expected torchvision's {net}net state dict "
                "(features.* keys, e.g. alexnet-owt-7be5be79.pth)"
            )
        layer = model.get_layer(f"conv_{index}")
        kernel = state[w_key].transpose(2, 3, 1, 0)  # (out, in, kh, kw) -> (kh, kw, in, out)
        want = tuple(layer.kernel.shape)
        if kernel.shape != want:
            raise WeightsMismatchError(
                f"{path}: {w_key} has shape {state[w_key].shape}, expected {want[::-1]}-like "
                f"(out, in, kh, kw) = {(want[3], want[2], want[0], want[1])}"
            )
        layer.set_weights([kernel, state[b_key]])


def _load_lin(path, channels):
    state = load_torch_file(path)
    weights = []
    for i, c in enumerate(channels):
        key = f"lin{i}.model.1.weight"
        if key not in state or state[key].shape != (1, c, 1, 1):
            got = state[key].shape if key in state else "missing"
            raise WeightsMismatchError(
                f"{path}: {key} is {got}, expected (1, {c}, 1, 1): not the LPIPS v0.1 linear "
                "weights for this trunk (lpips/weights/v0.1/<net>.pth)"
            )
        weights.append(tf.constant(state[key].reshape(c), tf.float32))
    return weights


class LPIPS:
    """LPIPS distance between two NHWC RGB batches (see the module docstring)."""

    def __init__(self, trunk: keras.Model, lin_weights):
        self.trunk = trunk
        self.lin_weights = list(lin_weights)
        self._shift = tf.constant(SHIFT, tf.float32)
        self._scale = tf.constant(SCALE, tf.float32)

    def _scaled(self, x, normalize):
        x = tf.convert_to_tensor(np.asarray(x, np.float32))
        if x.shape.rank == 3:
            x = x[None]
        if normalize:
            x = 2.0 * x - 1.0
        return (x - self._shift) / self._scale

    def layer_maps(self, x0, x1, normalize=True):
        """Each layer's (N, h, w) distance map before spatial averaging."""
        a = self._scaled(x0, normalize)
        b = self._scaled(x1, normalize)
        if a.shape != b.shape:
            raise ValueError(f"LPIPS inputs differ in shape: {a.shape} vs {b.shape}")
        f0, f1 = self.trunk(a), self.trunk(b)
        maps = []
        for u, v, w in zip(f0, f1, self.lin_weights, strict=True):
            u = u / (tf.sqrt(tf.reduce_sum(u * u, axis=-1, keepdims=True)) + EPS)
            v = v / (tf.sqrt(tf.reduce_sum(v * v, axis=-1, keepdims=True)) + EPS)
            maps.append(tf.reduce_sum(tf.square(u - v) * w, axis=-1))
        return maps

    def __call__(self, x0, x1, spatial=False, per_layer=False, normalize=True):
        """(N,) distances; with `spatial` (N, H, W) maps; with `per_layer` also (N, 5) terms.

        `normalize=True` takes inputs in [0, 1], `normalize=False` in [-1, 1] (as `lpips`).
        """
        maps = self.layer_maps(x0, x1, normalize)
        if spatial:
            size = np.shape(x0)[-3:-1]
            ups = [tf.image.resize(m[..., None], size, method="bilinear")[..., 0] for m in maps]
            layers = [u.numpy() for u in ups]
        else:
            layers = [tf.reduce_mean(m, axis=(1, 2)).numpy() for m in maps]
        total = np.sum(layers, axis=0)
        if per_layer:
            return total, np.stack(layers, axis=1)
        return total


def build_lpips(net: str = "alex", trunk_weights=None, lin_weights=None) -> LPIPS:
    """LPIPS v0.1 with `net`'s trunk (torchvision .pth) and linear layers (lpips' v0.1 .pth).

    Both files are read without PyTorch (allow-listed pickle); the trunk's `classifier.*` keys
    are ignored. Raises WeightsMismatchError when a file holds other tensors.
    """
    if trunk_weights is None or lin_weights is None:
        raise ValueError(
            "build_lpips needs trunk_weights (torchvision's alexnet-owt-7be5be79.pth) and "
            "lin_weights (the lpips package's weights/v0.1/alex.pth)"
        )
    trunk = build_lpips_trunk(net)
    _load_trunk(trunk, net, trunk_weights)
    lin = _load_lin(lin_weights, [c[1] for c in NETS[net]])
    return LPIPS(trunk, lin)
