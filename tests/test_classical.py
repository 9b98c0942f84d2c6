"""pynet_bokeh.render.classical: thin-lens layered defocus, measured on inputs with known answers."""

import cv2
import numpy as np
import pytest

from pynet_bokeh import image_io
from pynet_bokeh.render import classical


def _texture(h, w, seed=0):
    rng = np.random.default_rng(seed)
    return rng.random((h, w, 3)).astype(np.float32)


def _sharpness(img):
    """Variance of the Laplacian of the luminance."""
    return float(cv2.Laplacian(np.ascontiguousarray(img.mean(axis=-1)), cv2.CV_32F).var())


H, W = 96, 128
APERTURE = 0.05  # radius = 0.05 * 128 * |d - f| px: 3.84 px at |d - f| = 0.6


def _halves(near_left=0.8, far_right=0.2):
    depth = np.full((H, W), far_right, np.float32)
    depth[:, : W // 2] = near_left
    return depth


def test_sharp_at_focus_blurred_elsewhere_and_sharp_subject_not_covered():
    photo = _texture(H, W)
    out = classical.render_defocus(photo, _halves(), focus_disparity=0.8, aperture=APERTURE)
    assert out.shape == (H, W, 3) and out.dtype == np.float32
    # The in-focus near half is the photo itself, right up to its edge: the blurred background
    # behind it does not bleed over it.
    np.testing.assert_allclose(out[:, : W // 2], photo[:, : W // 2], atol=1e-5)
    far_out, far_in = out[8:-8, W // 2 + 8 : -8], photo[8:-8, W // 2 + 8 : -8]
    assert _sharpness(far_out) < 0.05 * _sharpness(far_in)
    assert abs(far_out.mean() - srgb_mean(far_in)) < 0.02  # blur keeps the light


def srgb_mean(img):
    """The sRGB value of the linear-light mean: what a linear blur converges to."""
    return float(classical.linear_to_srgb(classical.srgb_to_linear(img).mean()))


def test_blurred_near_object_spreads_over_the_sharp_background():
    photo = _texture(H, W, seed=1)
    out = classical.render_defocus(photo, _halves(), focus_disparity=0.2, aperture=APERTURE)
    radius = APERTURE * W * 0.6
    edge = W // 2
    # Far half, well away from the edge: sharp.
    np.testing.assert_allclose(out[:, edge + 6 :], photo[:, edge + 6 :], atol=1e-5)
    # Far half, within the near object's circle of confusion: covered by its blur.
    assert (
        np.abs(
            out[:, edge : edge + int(radius) - 1] - photo[:, edge : edge + int(radius) - 1]
        ).mean()
        > 0.05
    )
    assert _sharpness(out[8:-8, 8 : edge - 8]) < 0.05 * _sharpness(photo[8:-8, 8 : edge - 8])


def test_aperture_zero_returns_the_photo():
    photo = _texture(H, W, seed=2)
    depth = np.random.default_rng(3).random((H, W)).astype(np.float32)
    out = classical.render_defocus(photo, depth, focus_disparity=0.5, aperture=0.0)
    np.testing.assert_allclose(out, photo, atol=1e-5)


def test_blur_grows_with_distance_from_focus():
    photo = _texture(H, W, seed=4)
    sharp = [
        _sharpness(classical.render_defocus(photo, np.full((H, W), d, np.float32), 1.0, APERTURE))
        for d in (1.0, 0.9, 0.7, 0.4)
    ]
    assert sharp[0] == pytest.approx(_sharpness(photo), rel=1e-4)
    assert sharp[0] > sharp[1] > sharp[2] > sharp[3]


def test_highlight_becomes_a_disc_brighter_in_linear_light():
    img = np.zeros((81, 81, 3), np.float32)
    img[39:42, 39:42] = 1.0  # a 3 x 3 white light source
    depth = np.zeros((81, 81), np.float32)
    aperture = 10.0 / 81  # radius 10 px at |d - f| = 1
    lin = classical.render_defocus(img, depth, 1.0, aperture)[..., 0]
    gam = classical.render_defocus(img, depth, 1.0, aperture, linear_light=False)[..., 0]
    yy, xx = np.mgrid[:81, :81]
    r = np.hypot(yy - 40, xx - 40)
    # A disc: flat inside, dark outside the circle of confusion.
    inside = lin[r <= 7]
    assert inside.min() > 0.9 * inside.max()
    assert lin[r >= 12.5].max() < 1e-6
    # Energy conserved in linear light: 9 px of 1.0 over a ~314 px disc.
    assert classical.srgb_to_linear(lin)[r <= 11.5].sum() == pytest.approx(9.0, rel=0.02)
    # Gamma-space blur averages encoded values: a much dimmer disc (9/314 vs its sRGB encoding).
    assert gam[40, 40] == pytest.approx(9 / (np.pi * 10.5**2), rel=0.15)
    assert lin[40, 40] > 4 * gam[40, 40]


def test_disc_kernel_is_normalised_round_and_identity_when_small():
    k = classical.disc_kernel(5.0)
    assert k.shape == (11, 11) and k.sum() == pytest.approx(1.0)
    # Anti-aliased rim: the pixels at exactly the radius are half covered.
    assert k[5, 0] == k[0, 5] == k[10, 5] == pytest.approx(0.5 * k[5, 5]) and k[0, 0] == 0.0
    assert k[5, 5] == k[2, 3]
    np.testing.assert_array_equal(classical.disc_kernel(0.4), [[1.0]])


def test_auto_focus_picks_the_central_subject_and_baseline_keeps_it_sharp():
    photo = _texture(2 * H, 2 * W, seed=5)
    depth = np.full((H, W), 0.1, np.float32)  # half size, as EBB! depth maps
    depth[30:66, 44:84] = 0.9
    assert classical.auto_focus(depth) == pytest.approx(0.9)
    out = classical.render_bokeh_baseline(photo, depth, aperture=APERTURE)
    assert out.shape == photo.shape
    np.testing.assert_allclose(out[70:122, 98:158], photo[70:122, 98:158], atol=1e-5)
    assert _sharpness(out[:40]) < 0.1 * _sharpness(photo[:40])


def test_bad_inputs_are_named():
    photo = _texture(H, W)
    with pytest.raises(ValueError, match=r"disparity shape \(48, 64\) does not match"):
        classical.render_defocus(photo, np.zeros((48, 64)), 0.5, 0.02)
    with pytest.raises(ValueError, match="aperture must be >= 0"):
        classical.render_defocus(photo, np.zeros((H, W)), 0.5, -0.1)
    with pytest.raises(ValueError, match="photo must be H x W x 3"):
        classical.render_defocus(photo[..., 0], np.zeros((H, W)), 0.5, 0.02)


def test_real_photo_sharp_at_the_focus_depth(ebb_samples):
    photo = image_io.read_photo(ebb_samples / "images" / "1.jpg")
    depth = image_io.read_depth(ebb_samples / "depth_maps" / "1.png")
    photo = image_io.resize_bicubic(photo, (256, photo.shape[1] * 256 // photo.shape[0]))
    depth = cv2.resize(depth, (photo.shape[1], photo.shape[0]), interpolation=cv2.INTER_LINEAR)
    focus = classical.auto_focus(depth)
    out = classical.render_defocus(photo, depth, focus, aperture=0.03)
    lap_in = np.abs(cv2.Laplacian(photo.mean(-1), cv2.CV_32F))
    lap_out = np.abs(cv2.Laplacian(out.mean(-1), cv2.CV_32F))
    near = cv2.erode((np.abs(depth - focus) < 0.05).astype(np.uint8), np.ones((9, 9))) > 0
    far = np.abs(depth - focus) > 0.4
    assert near.sum() > 500 and far.sum() > 500
    assert lap_out[near].mean() > 0.8 * lap_in[near].mean()
    assert lap_out[far].mean() < 0.5 * lap_in[far].mean()
