"""pynet_bokeh.metrics: known answers, protocols, and agreement with scikit-image."""

import math

import cv2
import imageio.v3 as iio
import numpy as np
import pytest
from skimage.metrics import structural_similarity

from pynet_bokeh import metrics


def _smooth_image(h=96, w=128, seed=0):
    rng = np.random.default_rng(seed)
    img = rng.uniform(0.2, 0.8, size=(h // 8, w // 8, 3)).astype(np.float32)
    return cv2.resize(img, (w, h), interpolation=cv2.INTER_CUBIC).clip(0, 1)


def test_identical_images_score_perfectly():
    img = _smooth_image(256, 256)
    out = metrics.image_metrics(img, img)
    assert out["psnr"] == math.inf
    assert out["ssim"] == pytest.approx(1.0, abs=1e-6)
    assert out["ms_ssim"] == pytest.approx(1.0, abs=1e-6)
    assert out["ms_ssim_scales"] == 5


@pytest.mark.parametrize("offset, expected_db", [(0.1, 20.0), (0.01, 40.0), (0.05, 26.0206)])
def test_constant_offset_gives_exact_psnr(offset, expected_db):
    target = np.full((80, 100, 3), 0.4, np.float32)
    out = metrics.psnr(target + offset, target)
    assert out.shape == (1,)
    assert out[0] == pytest.approx(expected_db, abs=1e-3)


def test_psnr_is_per_image_on_a_batch():
    target = np.full((2, 40, 40, 3), 0.5, np.float32)
    pred = target + np.array([0.1, 0.01], np.float32)[:, None, None, None]
    np.testing.assert_allclose(metrics.psnr(pred, target), [20.0, 40.0], atol=1e-3)


def test_blurred_copy_scores_below_one_and_below_the_original():
    img = np.random.default_rng(1).uniform(0, 1, (200, 200, 3)).astype(np.float32)
    blurred = cv2.GaussianBlur(img, (0, 0), 2.0)
    out = metrics.image_metrics(blurred, img, border=0)
    assert 0.0 < out["ssim"] < 0.5
    assert 0.0 < out["ms_ssim"] < 0.9
    assert out["psnr"] < 15.0


def test_border_is_removed_before_scoring():
    target = np.full((128, 128, 3), 0.5, np.float32)
    pred = target.copy()
    pred[:32] = 0.0  # damage only the top 32 rows: invisible to the default protocol
    assert metrics.image_metrics(pred, target)["psnr"] == math.inf
    # border 16: 16 of the 96 scored rows are off by 0.5 -> MSE 0.25 / 6
    out = metrics.image_metrics(pred, target, border=16)["psnr"]
    assert out == pytest.approx(10 * math.log10(6 / 0.25), abs=1e-3)


def test_aim2020_protocol_scores_the_centre_crop():
    target = np.full((100, 160, 3), 0.5, np.float32)
    pred = target.copy()
    pred[:, :40] = 0.0  # outside the central 100 x 80 crop
    out = metrics.image_metrics(pred, target, protocol="aim2020", crop_size=(100, 80))
    assert out["psnr"] == math.inf
    assert metrics.center_crop(target, (50, 60)).shape == (50, 60, 3)
    assert metrics.center_crop(target, (500, 600)).shape == (100, 160, 3)


def test_predictions_are_clipped_unless_asked_not_to():
    target = np.ones((64, 64, 3), np.float32)
    pred = np.full_like(target, 1.08)  # PyNET's head can reach 1.08
    assert metrics.image_metrics(pred, target, border=0)["psnr"] == math.inf
    raw = metrics.image_metrics(pred, target, border=0, clip=False)["psnr"]
    assert raw == pytest.approx(-20 * math.log10(0.08), abs=1e-3)


def test_small_images_use_fewer_ms_ssim_scales():
    assert metrics.ms_ssim_scales(176, 300) == 5
    assert metrics.ms_ssim_scales(175, 300) == 4
    assert metrics.ms_ssim_scales(64, 96) == 3
    assert metrics.ms_ssim_scales(10, 96) == 0
    img = _smooth_image(64, 96)
    noisy = (img + np.random.default_rng(2).normal(0, 0.05, img.shape)).astype(np.float32)
    out = metrics.image_metrics(noisy, img, border=0)
    assert out["ms_ssim_scales"] == 3
    assert 0.0 < out["ms_ssim"] < 1.0


def test_bad_inputs_raise_clear_errors():
    a = np.zeros((64, 64, 3), np.float32)
    with pytest.raises(ValueError, match="differ in size"):
        metrics.image_metrics(a, np.zeros((64, 32, 3), np.float32))
    with pytest.raises(ValueError, match="too small to remove a 32-px border"):
        metrics.image_metrics(a, a)
    with pytest.raises(ValueError, match="unknown protocol"):
        metrics.image_metrics(a, a, protocol="ntire")
    with pytest.raises(ValueError, match="at least 11 px"):
        metrics.ms_ssim(np.zeros((8, 8, 3)), np.zeros((8, 8, 3)))
    with pytest.raises(ValueError, match="1 or 3 channels"):
        metrics.psnr(np.zeros((8, 8, 4)), np.zeros((8, 8, 4)))


def test_mean_metrics():
    rows = [
        {"psnr": 20.0, "ssim": 0.5, "ms_ssim": 0.6},
        {"psnr": 30.0, "ssim": 0.7, "ms_ssim": 0.8},
    ]
    out = metrics.mean_metrics(rows)
    assert out == pytest.approx({"count": 2, "psnr": 25.0, "ssim": 0.6, "ms_ssim": 0.7})


def test_ssim_agrees_with_scikit_image_on_real_photos(ebb_samples):
    for stem in ("5",):
        photo = iio.imread(ebb_samples / "images" / f"{stem}.jpg").astype(np.float32) / 255
        # full size: tf.image.ssim's own float32 mean is ~6e-3 off at this size
        blurred = cv2.GaussianBlur(photo, (0, 0), 1.5)
        ours = metrics.image_metrics(blurred, photo, metrics=("ssim",))["ssim"]
        a = metrics.crop_border(blurred)
        b = metrics.crop_border(photo)
        ref = structural_similarity(
            a,
            b,
            gaussian_weights=True,
            sigma=1.5,
            use_sample_covariance=False,
            data_range=1.0,
            channel_axis=-1,
        )
        assert 0.3 < ref < 0.99
        assert ours == pytest.approx(ref, abs=1e-4)  # the issue asks 1e-2; we get ~3e-6


def test_matches_tf_image_on_small_images():
    rng = np.random.default_rng(3)
    target = rng.uniform(0, 1, (2, 180, 200, 3)).astype(np.float32)
    pred = np.clip(target + rng.normal(0, 0.1, target.shape), 0, 1).astype(np.float32)
    tf = pytest.importorskip("tensorflow")
    np.testing.assert_allclose(
        metrics.psnr(pred, target), tf.image.psnr(pred, target, 1.0).numpy(), atol=1e-4
    )
    np.testing.assert_allclose(
        metrics.ssim(pred, target), tf.image.ssim(pred, target, 1.0).numpy(), atol=1e-5
    )
    np.testing.assert_allclose(
        metrics.ms_ssim(pred, target),
        tf.image.ssim_multiscale(pred, target, 1.0).numpy(),
        atol=1e-5,
    )
    # odd sizes exercise the symmetric padding before each 2x downscale
    np.testing.assert_allclose(
        metrics.ms_ssim(pred[:, :177, :191], target[:, :177, :191]),
        tf.image.ssim_multiscale(pred[:, :177, :191], target[:, :177, :191], 1.0).numpy(),
        atol=1e-5,
    )
