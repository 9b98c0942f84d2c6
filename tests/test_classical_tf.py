"""pynet_bokeh.render.classical_tf: the TF port against the NumPy reference on real photos,
the focus point's disparity, and the exported .tflite through the real LiteRT interpreter."""

import numpy as np
import pytest
import tensorflow as tf

from pynet_bokeh import image_io
from pynet_bokeh.errors import UsageError
from pynet_bokeh.export import export_tflite, fit_to_size, make_interpreter, run_tflite
from pynet_bokeh.render import controls as ctl
from pynet_bokeh.render.classical_tf import (
    coarse_disc_radius,
    disc_kernel_tf,
    focus_disparity_tf,
    render_bokeh_tf,
)
from pynet_bokeh.renderers import get_renderer
from pynet_bokeh.renderers.classical import example_feeds


def _psnr(a, b):
    return 10 * np.log10(1.0 / np.mean((np.asarray(a, np.float64) - b) ** 2))


def _sample(ebb_samples, name, size):
    photo = image_io.read_photo(ebb_samples / "images" / f"{name}.jpg")
    depth = image_io.read_depth(ebb_samples / "depth_maps" / f"{name}.png")
    h, w = size
    return fit_to_size(photo, size), fit_to_size(depth[..., None], (h // 2, w // 2))[..., 0]


def test_disc_kernel_matches_the_reference():
    from pynet_bokeh.render.classical import disc_kernel

    for radius in (0.7, 1.5, 2.3, 3.0, 4.5):
        ref = disc_kernel(radius)
        half = ref.shape[0] // 2
        got = disc_kernel_tf(tf.constant(radius), half + 1).numpy()[1:-1, 1:-1]
        np.testing.assert_allclose(got, ref, atol=1e-7)


@pytest.mark.parametrize("x, y", [(0, 0), (95.5, 63.9), (50, 30), (7, 60), (91.2, 3.3)])
def test_focus_point_disparity_is_the_reference_median(x, y):
    rng = np.random.default_rng(1)
    depth = rng.random((32, 48), np.float32)
    expected = ctl.disparity_at(depth, (x, y), (64, 96))
    got = focus_disparity_tf(tf.constant(depth[None, ..., None]), [x, y], (64, 96))
    assert float(got) == pytest.approx(expected, abs=1e-7)


def test_tf_port_matches_numpy_on_real_photos(ebb_samples):
    size = (128, 192)
    ref = get_renderer("classical")
    port = get_renderer("classical", engine="tf")
    for name, frac, focus in (("1", 0.02, (96, 64)), ("5", 0.03, (50, 100)), ("9", 0.04, None)):
        photo, depth = _sample(ebb_samples, name, size)
        k = frac * max(size)
        expected = ref.render(photo, depth, focus=focus, blur=k)
        got = port.render(photo, depth, focus=focus, blur=k)
        assert got.shape == photo.shape and got.dtype == np.float32
        assert _psnr(got, expected) >= 40.0, name
        # and it did blur: far from the photo itself
        assert _psnr(got, photo) < _psnr(got, expected) - 10
    # K = 0 is the photo (the renderer's shortcut) in both
    np.testing.assert_array_equal(port.render(photo, depth, blur=0.0), photo)


def test_tf_graph_at_zero_blur_is_the_photo():
    feeds = example_feeds(64, 96)
    out = render_bokeh_tf(feeds["image"], feeds["depth"], 0.5, 0.0).numpy()
    np.testing.assert_allclose(out, feeds["image"], atol=2e-6)


def test_bad_engine_is_a_usage_error():
    with pytest.raises(UsageError, match="--engine 'cuda'"):
        get_renderer("classical", engine="cuda")


def test_exported_classical_runs_in_litert_with_runtime_focus_and_blur(ebb_samples, tmp_path):
    size = (64, 96)
    renderer = get_renderer("classical")
    graph, kwargs = renderer.export_spec(*size)
    info = export_tflite(graph, tmp_path / "classical.tflite", **kwargs)
    assert [(t["name"], t["shape"]) for t in info["inputs"]] == [
        ("image", [1, 64, 96, 3]),
        ("depth", [1, 32, 48, 1]),
        ("focus_xy", [1, 2]),
        ("blur", [1, 1]),
    ]
    assert [(t["name"], t["shape"]) for t in info["outputs"]] == [("image", [1, 64, 96, 3])]
    assert info["parity"]["max_abs_diff"] < 1e-5
    assert not any(op.startswith("Flex") or op == "CUSTOM" for op in info["ops"])
    interpreter = make_interpreter(tmp_path / "classical.tflite")
    photo, depth = _sample(ebb_samples, "3", size)
    outs = []
    for focus, k in (((48, 32), 3.0), ((10, 55), 5.0)):  # one file, two settings
        feeds = {
            "image": photo[None],
            "depth": depth[None, ..., None],
            "focus_xy": np.array([focus], np.float32),
            "blur": np.array([[k]], np.float32),
        }
        got = run_tflite(interpreter, feeds)["image"][0]
        expected = renderer.render(photo, depth, focus=focus, blur=k)
        assert _psnr(got, expected) >= 40.0
        outs.append(got)
    assert _psnr(outs[0], outs[1]) < 40  # the controls change the image
    with pytest.raises(ValueError, match="input 'image' has shape"):
        run_tflite(interpreter, {**feeds, "image": np.zeros((1, 32, 48, 3), np.float32)})


@pytest.mark.slow
def test_tf_port_matches_numpy_on_all_samples_at_full_size(ebb_samples):
    size = (1024, 1536)
    ref = get_renderer("classical")
    port = get_renderer("classical", engine="tf")
    for name in range(1, 13):
        photo, depth = _sample(ebb_samples, name, size)
        for frac in (0.01, 0.03):
            k = frac * max(size)
            focus = (size[1] / 2, size[0] / 2)
            expected = ref.render(photo, depth, focus=focus, blur=k)
            assert _psnr(port.render(photo, depth, focus=focus, blur=k), expected) >= 40.0


@pytest.mark.parametrize("size", [pytest.param((64, 96), marks=pytest.mark.slow), (33, 47)])
def test_python_driven_xla_engine_is_the_graph(ebb_samples, size):
    """render_bokeh_xla (the renderer's engine="tf": XLA stages, layer loop in Python) gives
    the exported graph's image: the same layers, discs and order (33 x 47: odd, everything at
    full resolution)."""
    from pynet_bokeh.render.classical_tf import render_bokeh_xla

    photo, depth = _sample(ebb_samples, "5", size)
    if size[0] % 2:
        depth = fit_to_size(depth[..., None], size)[..., 0]
    args = (photo[None], depth[None, ..., None], 0.6, 0.1 * max(size))
    expected = tf.function(render_bokeh_tf)(*args).numpy()
    got = render_bokeh_xla(*args).numpy()
    assert got.shape == (1, *size, 3)
    # a pixel on a bin edge may fall in the next bin (XLA's arithmetic): rare, local
    assert np.mean(np.abs(got - expected) > 1e-5) < 2e-3
    assert _psnr(got, expected) > 60
    assert _psnr(got, photo[None]) < 40  # and it blurred


def test_coarse_disc_radius_removes_the_resampling_blur():
    """sqrt(r^2 - (4/3 - 4^-level) s^2) / s, at least half a pixel of the coarse grid."""
    # level 1: v = 4/3 - 1/4 = 13/12, s = 2: sqrt(100 - 13/3) / 2
    np.testing.assert_allclose(float(coarse_disc_radius(-10.0, 1)), 4.890466, rtol=1e-6)
    np.testing.assert_allclose(float(coarse_disc_radius(10.0, 1)), 4.890466, rtol=1e-6)
    # level 2: 1 - (4/3 - 1/16) * 16 < 0.25: the floor, 0.5 / 4
    assert float(coarse_disc_radius(1.0, 2)) == 0.125
