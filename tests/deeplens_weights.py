"""Test-only DeepLens weights: a checkpoint in the release's layout, and hand-set weights of a
layered-blur renderer whose answer is known."""

import os

import keras
import numpy as np
import tensorflow as tf

from pynet_bokeh.models.deeplens import BN_EPSILON, checkpoint_variables


def save_deeplens_checkpoint(model, prefix):
    """Writes the 488 variables in the release's layout (a TF V2 bundle the original code restores)."""
    import tempfile

    prefix = os.fspath(prefix)
    folder = os.path.dirname(os.path.abspath(prefix))
    os.makedirs(folder, exist_ok=True)
    tensors = {n: v.numpy() for n, v in checkpoint_variables(model).items()}
    names = sorted(tensors)
    with tempfile.TemporaryDirectory(dir=folder) as tmp:
        tmp_prefix = os.path.join(tmp, "model")
        tf.raw_ops.SaveV2(
            prefix=tmp_prefix,
            tensor_names=names,
            shape_and_slices=[""] * len(names),
            tensors=[tf.constant(tensors[n]) for n in names],
        )
        os.replace(tmp_prefix + ".data-00000-of-00001", prefix + ".data-00000-of-00001")
        os.replace(tmp_prefix + ".index", prefix + ".index")
    return prefix


def _identity_bn(layer):
    gamma, beta, mean, var = (w.numpy() for w in layer.weights)
    # var + eps == 1: inference BN is the identity (plus beta).
    layer.set_weights([np.ones_like(gamma), beta * 0, mean * 0, var * 0 + (1.0 - BN_EPSILON)])


def _set(layer, fill):
    """Zero weights (identity BN), then `fill(kernel, bias_or_None)` edits numpy arrays in place."""
    if isinstance(layer, keras.layers.BatchNormalization):
        _identity_bn(layer)
        return
    ws = [np.zeros(w.shape, np.float32) for w in layer.weights]
    if fill is not None:
        fill(*ws) if len(ws) == 2 else fill(ws[0], None)
    layer.set_weights(ws)


def init_layered_blur(model, blur_per_unit=8.0):
    """Hand-set Lensblur, Feature and SR weights: a layered-blur renderer, no learning involved.

    FeaNet candidates become box blurs of radius 1 (j = 1..10), 3 (11..20), 5 (21..25) and
    7 (26..30) of the image; KernelNet picks candidate 0, 1, 11, 21, 26 by hat functions of
    t = blur_per_unit * |depth_signed| (t = 0: the sharp image, exactly; t >= 4: radius 7);
    SRNet blends the sharp high-resolution image (weight max(1 - t, 0)) with the upsampled DoF
    (min(t, 1)). So aperture 0 returns the photo and the blur grows with |d - d_f| * aperture:
    the semantics the trained model should have, with weights whose answer is known (tests, demos,
    and a sane starting point for training). The depth network is left as it is.
    """
    c = float(blur_per_unit)
    lens, fea, sr = model.lensblur_net, model.feature_net, model.sr_net
    for net in (lens, fea, sr):
        for layer in net.layers:
            if layer.weights:
                _set(layer, None)

    # Box blurs, colour by colour (fea1 output 3 (j - 1) + c reads colour c); SR's own feature
    # convs stay zero: it only blends its candidates 0 and 1.
    for name, kernel_size, cout in (
        ("fea1", 3, 30),
        ("fea2", 5, 30),
        ("fea3", 5, 15),
        ("fea4", 5, 15),
    ):

        def fill(kernel, bias, kernel_size=kernel_size, cout=cout, first=name == "fea1"):
            for o in range(cout):
                kernel[:, :, o % 3 if first else o, o] = 1.0 / kernel_size**2

        _set(fea.get_layer(name), fill)

    # KernelNet: shallow channels u_{k,+-} = relu(+-c s - k), k = 0..4; ramps r_k = u_{k,+} + u_{k,-}.
    def shallow(kernel, bias):
        for k in range(5):
            kernel[3, 3, 3, 2 * k] = c
            kernel[3, 3, 3, 2 * k + 1] = -c

    _set(lens.get_layer("conv1_shallow"), shallow)
    bn = lens.get_layer("bn1_shallow")
    beta = np.zeros(64, np.float32)
    beta[:10] = -np.repeat(np.arange(5, dtype=np.float32), 2)
    bn.set_weights([*bn.get_weights()[:1], beta, *bn.get_weights()[2:]])
    for name, offset in (("res4a_branch1", 256), ("res4b_branch1", 0)):

        def route(kernel, bias, offset=offset):
            for m in range(10):
                kernel[0, 0, offset + m, m] = 1.0

        _set(lens.get_layer(name), route)

    def hats(kernel, bias):
        def ramp(k, coef, j):
            kernel[0, 0, 2 * k, j] += coef
            kernel[0, 0, 2 * k + 1, j] += coef

        bias[0] = 1.0
        ramp(0, -1, 0)
        ramp(1, 1, 0)
        for level, j in ((1, 1), (2, 11), (3, 21)):
            ramp(level - 1, 1, j)
            ramp(level, -2, j)
            ramp(level + 1, 1, j)
        ramp(3, 1, 26)
        ramp(4, -1, 26)

    _set(lens.get_layer("output"), hats)

    # SRNet: v = relu(c s), relu(-c s), relu(c s - 1), relu(-c s - 1) carried to high resolution.
    def lr1(kernel, bias):
        for i, sign in enumerate((1, -1, 1, -1)):
            kernel[1, 1, 6, i] = sign * c

    _set(sr.get_layer("lr1_1"), lr1)
    bn = sr.get_layer("lr1_1_bn")
    beta = np.zeros(32, np.float32)
    beta[2:4] = -1.0
    bn.set_weights([*bn.get_weights()[:1], beta, *bn.get_weights()[2:]])
    for name, offset in (
        ("lr8_1", 0),
        ("lr9_1", 0),
        ("pre1_1", 3),
        ("pre1_2", 0),
        ("pre1_3", 0),
        ("pre1_4", 0),
    ):

        def carry(kernel, bias, offset=offset):
            for i in range(4):
                kernel[1, 1, offset + i, i] = 1.0

        _set(sr.get_layer(name), carry)

    def blend(kernel, bias):
        bias[1] = 1.0
        for i, coef in enumerate((1, 1, -1, -1)):
            kernel[1, 1, i, 0] = coef  # min(t, 1): the upsampled DoF
            kernel[1, 1, i, 1] = -coef  # max(1 - t, 0): the sharp high-resolution image

    _set(sr.get_layer("pre1_5"), blend)
    return model
