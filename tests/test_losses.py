"""pynet_bokeh.training.losses and .vgg: the authors' loss terms, and VGG-19 from both file kinds."""

import numpy as np
import pytest
import tensorflow as tf
from vgg_files import random_vgg19_weights, write_keras_h5, write_matconvnet

from pynet_bokeh.training import losses, vgg


def _smooth(shape, seed):
    rng = np.random.default_rng(seed)
    n, h, w, c = shape
    small = rng.uniform(0.1, 0.9, (n, h // 4, w // 4, c)).astype(np.float32)
    return tf.image.resize(small, (h, w), method="bilinear").numpy()


def test_l1_is_the_mean_absolute_difference():
    a = np.zeros((2, 4, 4, 3), np.float32)
    b = np.full((2, 4, 4, 3), 0.25, np.float32)
    b[1] = -0.75
    assert float(losses.l1(a, b)) == pytest.approx(0.5)


@pytest.mark.parametrize("level", [2, 3, 4, 5, 6, 7])
def test_levels_2_to_7_use_100_times_l1(level):
    pred = np.full((1, 8, 8, 3), 0.5, np.float32)
    target = np.full((1, 8, 8, 3), 0.52, np.float32)
    terms = losses.pynet_loss_terms(level, pred, target)
    assert list(terms) == ["l1"]
    assert float(terms["l1"]) == pytest.approx(2.0, rel=1e-4)


def test_ssim_known_values_and_small_images():
    img = _smooth((2, 32, 32, 3), 0)
    assert float(losses.ssim(img, img)) == pytest.approx(1.0, abs=1e-6)
    # a constant offset c changes only the luminance term: (2 mu (mu + c) + C1) / (mu^2 + (mu + c)^2 + C1)
    flat = np.full((1, 16, 16, 3), 0.4, np.float32)
    c1 = 0.01**2
    expected = (2 * 0.4 * 0.5 + c1) / (0.4**2 + 0.5**2 + c1)
    assert float(losses.ssim(flat, flat + 0.1)) == pytest.approx(expected, abs=1e-4)
    # 4 x 4 outputs (level 7 of a 128-px patch) still work: the window shrinks to the image
    assert float(losses.ssim(flat[:, :4, :4], flat[:, :4, :4] + 0.1)) == pytest.approx(
        expected, abs=1e-4
    )


@pytest.fixture(scope="module")
def vgg_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("vgg")
    weights = random_vgg19_weights(seed=0)
    h5 = folder / vgg.KERAS_FILE
    mat = folder / vgg.MATCONVNET_FILE
    write_keras_h5(h5, weights)
    write_matconvnet(mat, weights)
    return h5, mat


@pytest.fixture(scope="module")
def vgg_nets(vgg_files):
    return vgg.load_vgg19(vgg_files[0]), vgg.load_vgg19(vgg_files[1])


def test_both_vgg_files_give_the_same_relu5_4_features(vgg_nets):
    keras_net, mat_net = vgg_nets
    assert (keras_net.channel_order, mat_net.channel_order) == ("bgr", "rgb")
    img = _smooth((2, 64, 96, 3), 1)
    a, b = keras_net(img).numpy(), mat_net(img).numpy()
    assert a.shape == (2, 4, 6, 512)
    assert np.abs(a).mean() > 1.0  # ReLU features of random He-scaled weights: not all zero
    # same network in two conventions (BGR vs RGB, [h,w] vs [w,h] kernels): same features
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-3 * np.abs(a).max())


def test_vgg_preprocessing_is_imagenet_mean_on_0_255(vgg_nets):
    keras_net, mat_net = vgg_nets
    white = np.ones((1, 2, 2, 3), np.float32)
    np.testing.assert_allclose(
        keras_net.preprocess(white)[0, 0, 0],
        [255 - 103.939, 255 - 116.779, 255 - 123.68],
        rtol=1e-6,
    )
    np.testing.assert_allclose(
        mat_net.preprocess(white)[0, 0, 0], [255 - 123.68, 255 - 116.779, 255 - 103.939], rtol=1e-6
    )


def test_level_1_terms_are_10_l1_plus_01_vgg_plus_10_one_minus_ssim(vgg_nets):
    net = vgg_nets[0]
    target = _smooth((1, 64, 64, 3), 2)
    pred = np.clip(target + 0.05, 0, 1)
    terms = losses.pynet_loss_terms(1, pred, target, vgg=net)
    assert sorted(terms) == ["l1", "ssim", "vgg"]
    l1 = np.mean(np.abs(pred - target))
    feats = net(pred).numpy() - net(target).numpy()
    ssim = float(tf.reduce_mean(tf.image.ssim(pred, target, 1.0)))
    assert float(terms["l1"]) == pytest.approx(10 * l1, rel=1e-5)
    assert float(terms["vgg"]) == pytest.approx(0.1 * np.mean(feats**2), rel=1e-4)
    assert float(terms["ssim"]) == pytest.approx(10 * (1 - ssim), rel=1e-4)
    assert float(terms["vgg"]) > 0
    no_vgg = losses.pynet_loss_terms(1, pred, target, vgg=False)
    assert sorted(no_vgg) == ["l1", "ssim"]


def test_level_1_without_vgg_weights_says_which_flags_to_pass():
    x = np.zeros((1, 16, 16, 3), np.float32)
    with pytest.raises(ValueError, match="--vgg_weights.*--no_vgg"):
        losses.pynet_loss_terms(1, x, x, vgg=None)


def test_missing_and_wrong_vgg_files_are_named(tmp_path, vgg_files):
    missing = tmp_path / "nope.h5"
    with pytest.raises(vgg.VGGWeightsError, match=r"not found: .*nope\.h5.*vgg19_weights_tf"):
        vgg.load_vgg19(missing)
    other = tmp_path / "weights.npz"
    other.write_bytes(b"x")
    with pytest.raises(vgg.VGGWeightsError, match=r"weights\.npz: unknown kind '\.npz'"):
        vgg.load_vgg19(other)
    broken = tmp_path / "broken.h5"
    broken.write_bytes(b"not hdf5")
    with pytest.raises(vgg.VGGWeightsError, match=r"broken\.h5 is not Keras' VGG-19"):
        vgg.load_vgg19(broken)
    import scipy.io

    not_vgg = tmp_path / "other.mat"
    scipy.io.savemat(not_vgg, {"x": np.zeros(3)})
    with pytest.raises(vgg.VGGWeightsError, match=r"other\.mat has no 'layers'"):
        vgg.load_vgg19(not_vgg)
