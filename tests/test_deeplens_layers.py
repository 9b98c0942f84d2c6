"""DeepLens' custom layers: TF1 numerics, serialization, and a .keras round trip."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from pynet_bokeh.models.deeplens import build_feature_net, build_sr_net
from pynet_bokeh.models.deeplens_layers import (
    ApplyKernel,
    LegacyBilinearResize,
    MinMaxNormalize,
    NormalizeKernel,
    ResizeLike,
    SymmetricPad,
    Uint8Quantize,
    legacy_bilinear_resize,
)

RNG = np.random.default_rng(0)


@pytest.mark.parametrize(
    "src, dst",
    [
        ((5, 7), (10, 14)),
        ((44, 30), (88, 60)),
        ((88, 60), (177, 121)),
        ((1, 1), (40, 40)),
        ((320, 320), (44, 30)),
        ((13, 9), (5, 4)),
    ],
)
def test_legacy_resize_equals_tf1_kernel(src, dst):
    x = RNG.random((2, *src, 3)).astype(np.float32) * 100
    ref = tf.compat.v1.image.resize_bilinear(x, dst, align_corners=False, half_pixel_centers=False)
    np.testing.assert_array_equal(legacy_bilinear_resize(x, *dst).numpy(), ref.numpy())
    # and it is not the half-pixel resize of TF2 / Keras
    if src != (1, 1):
        assert np.abs(tf.image.resize(x, dst).numpy() - ref.numpy()).max() > 1e-3


def test_resize_layers():
    x = RNG.random((1, 4, 6, 2)).astype(np.float32)
    ref = np.zeros((1, 9, 5, 1), np.float32)
    assert LegacyBilinearResize(scale=3)(x).shape == (1, 12, 18, 2)
    assert LegacyBilinearResize(size=(7, 3))(x).shape == (1, 7, 3, 2)
    assert ResizeLike()([x, ref]).shape == (1, 9, 5, 2)
    with pytest.raises(ValueError, match="exactly one of size"):
        LegacyBilinearResize()


def test_symmetric_pad():
    x = RNG.random((1, 5, 6, 2)).astype(np.float32)
    got = SymmetricPad(2)(x).numpy()
    np.testing.assert_array_equal(got, tf.pad(x, [[0, 0], [2, 2], [2, 2], [0, 0]], "SYMMETRIC"))
    np.testing.assert_array_equal(got[0, 1, 2:-2], x[0, 0])  # edge row repeated


def test_uint8_quantize_truncates_and_saturates():
    x = np.array([-0.3, 0.0, 0.5, 126.9 / 255, 1.0, 1.7], np.float32)
    np.testing.assert_array_equal(Uint8Quantize()(x).numpy(), [0, 0, 127, 126, 255, 255])


def test_kernel_normalisation_and_combination():
    k = np.array([[[[1.0, 3.0], [0.0, 0.0]]]], np.float32)  # 1 x 1 x 2 pixels x 2 candidates
    kn = NormalizeKernel()(k).numpy()
    np.testing.assert_allclose(kn[0, 0, 0], [0.25, 0.75])
    np.testing.assert_array_equal(kn[0, 0, 1], [0.0, 0.0])  # all-zero kernel stays zero
    feats = np.arange(12, dtype=np.float32).reshape(1, 1, 2, 6)  # candidate j colour c = 3j + c
    out = ApplyKernel()([kn, feats]).numpy()
    np.testing.assert_allclose(out[0, 0, 0], 0.25 * np.arange(3) + 0.75 * np.arange(3, 6))
    np.testing.assert_array_equal(out[0, 0, 1], [0, 0, 0])


def test_min_max_normalize_per_image():
    x = np.stack([np.full((3, 3, 1), 2.0), np.arange(9.0).reshape(3, 3, 1)]).astype(np.float32)
    y = MinMaxNormalize()(x).numpy()
    np.testing.assert_array_equal(y[0], 0)
    np.testing.assert_allclose(y[1].ravel(), np.arange(9) / 8, atol=1e-6)


@pytest.mark.parametrize(
    "layer",
    [
        LegacyBilinearResize(size=(3, 4), name="a"),
        LegacyBilinearResize(scale=2),
        SymmetricPad(3),
        NormalizeKernel(epsilon=1e-3),
        MinMaxNormalize(epsilon=1e-4),
        Uint8Quantize(),
        ApplyKernel(),
        ResizeLike(),
    ],
)
def test_config_round_trip(layer):
    again = keras.layers.deserialize(keras.layers.serialize(layer))
    assert type(again) is type(layer) and again.get_config() == layer.get_config()


def test_keras_file_round_trip(tmp_path):
    for net, inputs in (
        (build_feature_net(), RNG.random((1, 9, 11, 3)).astype(np.float32)),
        (
            build_sr_net(),
            [RNG.random((1, 9, 11, c)).astype(np.float32) for c in (3, 3, 1)]
            + [RNG.random((1, 19, 22, 3)).astype(np.float32)],
        ),
    ):
        path = tmp_path / f"{net.name}.keras"
        net.save(path)
        again = keras.saving.load_model(path)  # safe mode: no Lambda layers
        a, b = net(inputs), again(inputs)
        a, b = (a["dof"], b["dof"]) if isinstance(a, dict) else (a, b)
        assert a.shape[1:3] == (inputs if net.name == "Feature" else inputs[-1]).shape[1:3]
        np.testing.assert_array_equal(a.numpy(), b.numpy())
