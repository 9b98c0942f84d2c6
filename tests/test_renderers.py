"""The renderer registry and the shared controls: one meaning for every method."""

import numpy as np
import pytest

from pynet_bokeh.errors import BadDataError, UsageError
from pynet_bokeh.render import controls
from pynet_bokeh.renderers import get_renderer, renderer_class


def _scene(h=48, w=72):
    rng = np.random.default_rng(0)
    photo = rng.random((h, w, 3)).astype(np.float32)
    depth = np.full((h // 2, w // 2), 0.2, np.float32)
    depth[:, : w // 4] = 0.9  # left half near
    return photo, depth


def test_focus_point_reads_the_median_of_a_window_of_the_half_size_map():
    depth = np.zeros((24, 36), np.float32)
    depth[5, 10] = 1.0  # a single bright pixel: the median ignores it
    assert controls.disparity_at(depth, (20, 10), (48, 72)) == 0.0
    depth[3:8, 8:13] = 0.7  # a patch covering the window around photo (20, 10) -> map (10, 5)
    assert controls.disparity_at(depth, (20, 10), (48, 72)) == pytest.approx(0.7)
    with pytest.raises(UsageError, match="--focus 72,0 lies outside the photo"):
        controls.disparity_at(depth, (72, 0), (48, 72))


def test_blur_k_is_the_classical_aperture_times_the_long_side():
    assert controls.classical_aperture(30.72, (1024, 1536, 3)) == pytest.approx(0.02)
    with pytest.raises(UsageError, match="--blur"):
        controls.check_blur(float("nan"))


def test_deeplens_aperture_conversion():
    from pynet_bokeh.models.deeplens import aperture_for_blur, blur_for_aperture

    assert blur_for_aperture(1.0, (1024, 1536)) == pytest.approx(76.8)  # 0.05 x long side
    assert aperture_for_blur(76.8, (1024, 1536)) == pytest.approx(1.0)
    assert aperture_for_blur(blur_for_aperture(0.3, (640, 480)), (640, 480)) == pytest.approx(0.3)


def test_classical_focus_sharpens_the_chosen_plane_and_blur_zero_is_the_photo():
    photo, depth = _scene()
    r = get_renderer("classical")
    assert r.controls() == ("focus", "blur") and r.needs_depth
    near = r.render(photo, depth, focus=(5, 20), blur=6)
    far = r.render(photo, depth, focus=(60, 20), blur=6)
    left, right = np.s_[4:-4, 4:14], np.s_[4:-4, 44:-4]
    assert np.abs(near[left] - photo[left]).max() < 1e-3  # focused: unchanged
    assert np.abs(far[right] - photo[right]).max() < 1e-3
    assert np.abs(near[right] - photo[right]).mean() > 0.05  # the other plane blurs
    assert np.abs(far[left] - photo[left]).mean() > 0.05
    np.testing.assert_array_equal(r.render(photo, depth, focus=(5, 20), blur=0), photo)
    # focus_disparity is the same control given directly
    np.testing.assert_allclose(r.render(photo, depth, focus_disparity=0.9, blur=6), near)


def test_identity_and_the_refusals():
    photo, depth = _scene()
    identity = get_renderer("identity")
    np.testing.assert_array_equal(identity.render(photo), photo)
    with pytest.raises(UsageError, match="--method identity takes no --focus / --blur"):
        identity.render(photo, focus=(1, 1), blur=2)
    with pytest.raises(BadDataError, match="needs the photo's depth map"):
        get_renderer("classical").render(photo)
    with pytest.raises(BadDataError, match="another aspect ratio"):
        get_renderer("classical").render(photo, np.zeros((24, 24), np.float32))
    with pytest.raises(UsageError, match="--method pynet needs --weights"):
        get_renderer("pynet")
    with pytest.raises(UsageError, match="'nope' is not a method"):
        renderer_class("nope")
    with pytest.raises(UsageError, match="give --focus or --focus_disparity, not both"):
        get_renderer("classical").render(photo, depth, focus=(1, 1), focus_disparity=0.5)


def test_pynet_refuses_controls_and_names_its_look(tf1_prefix):
    photo, depth = _scene(64, 96)
    pynet = get_renderer("pynet", tf1_prefix, level=2)
    assert pynet.controls() == () and pynet.label == "pynet L2 (pynet_bokeh_level_0)"
    out = pynet.render(photo, depth)
    assert out.shape == photo.shape and out.dtype == np.float32
    with pytest.raises(UsageError, match="takes no --blur .*Canon 7D, 50 mm f/1.8"):
        pynet.render(photo, depth, blur=3)
