"""DeepLens export: the fixed-size Keras model equals render_deeplens; TFLite (builtin ops) in LiteRT."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from deeplens_weights import init_layered_blur

from pynet_bokeh.models.deeplens import (
    build_deeplens,
    build_deeplens_graph,
    deeplens_export_function,
    deeplens_forward,
    export_scale,
    render_deeplens,
)

H, W = 40, 660  # 2x path, working size 20 x 330
FOCUS, APERTURE = (600.0, 30.0), 0.8


@pytest.fixture(scope="module")
def model():
    # random depth net (its output is some map in [0, 1]); hand-set lens weights so the image
    # depends on focus and aperture in a known way
    keras.utils.set_random_seed(0)
    return init_layered_blur(build_deeplens())


@pytest.fixture(scope="module")
def photo():
    return np.random.default_rng(0).random((H, W, 3)).astype(np.float32)


@pytest.fixture(scope="module")
def exported(model):
    return deeplens_export_function(model, H, W)


def _feeds(photo, focus=FOCUS, aperture=APERTURE):
    return {
        "image": photo[None],
        "focus_xy": np.array([focus], np.float32),
        "aperture": np.array([[aperture]], np.float32),
    }


def test_export_model_equals_render(model, photo, exported):
    out = exported(_feeds(photo))
    ref_image, ref_depth = render_deeplens(model, photo, focus_xy=FOCUS, aperture=APERTURE)
    assert out["image"].shape == (1, H, W, 3) and out["depth"].shape == (1, H // 2, W // 2, 1)
    np.testing.assert_allclose(out["image"][0].numpy(), ref_image, atol=1e-6)
    np.testing.assert_allclose(out["depth"][0, ..., 0].numpy(), ref_depth, atol=1e-6)
    # aperture 0: the photo
    np.testing.assert_allclose(exported(_feeds(photo, aperture=0.0))["image"][0], photo, atol=1e-6)


def test_graph_model_equals_forward(model, photo):
    lo = photo.reshape(H // 2, 2, W // 2, 2, 3).mean(axis=(1, 3))
    graph = build_deeplens_graph(model, scale=2, focus="point")
    out = graph(
        {
            "image_320": lo[None],
            "image_640": photo[None],
            "focus_xy": np.array([[300, 15]], np.float32),
            "aperture": np.array([[0.5]], np.float32),
        }
    )
    ref = deeplens_forward(model, lo, (300, 15), 0.5, image_640=photo, clip=False)
    np.testing.assert_allclose(out[0].numpy(), ref["dof_640"].numpy(), atol=1e-6)


@pytest.mark.parametrize(
    "size, match",
    [
        ((720, 1281), "at most 1280"),
        ((721, 1280), "multiples of 4"),
        ((31, 640), "multiples of 2"),
        ((8, 640), "at least 16"),
    ],
)
def test_export_size_errors(size, match):
    with pytest.raises(ValueError, match=match):
        export_scale(*size)


def test_export_scales():
    assert [export_scale(*s) for s in ((100, 639), (480, 640), (720, 1280))] == [1, 2, 4]


# The one DeepLens conversion of the default suite (about a minute on a 2-core CPU).
def test_tflite_builtin_ops_in_litert(exported, photo, tmp_path):
    from ai_edge_litert.interpreter import Interpreter

    from pynet_bokeh.export import convert_saved_model, write_saved_model

    specs = {
        "image": tf.TensorSpec([1, H, W, 3], tf.float32, name="image"),
        "focus_xy": tf.TensorSpec([1, 2], tf.float32, name="focus_xy"),
        "aperture": tf.TensorSpec([1, 1], tf.float32, name="aperture"),
    }
    write_saved_model(exported, tmp_path / "saved", specs)
    flatbuffer = convert_saved_model(tmp_path / "saved")  # TFLITE_BUILTINS only
    runner = Interpreter(model_content=flatbuffer).get_signature_runner()
    feeds = _feeds(photo)
    got = runner(**feeds)
    ref = exported(feeds)
    assert got["image"].shape == (1, H, W, 3)
    np.testing.assert_allclose(got["depth"], ref["depth"].numpy(), atol=1e-5)
    # the uint8 step inside SR may flip by one level where float noise crosses it
    diff = np.abs(got["image"] - ref["image"].numpy())
    assert diff.max() <= 5e-3 and (diff <= 1e-4).mean() >= 0.99


@pytest.mark.slow  # a full conversion through the project's exporter
def test_project_exporter(model, tmp_path):
    import json

    from pynet_bokeh.export import export_tflite
    from pynet_bokeh.models.deeplens import deeplens_export_spec

    net, extra = deeplens_export_spec(model, H, W)
    out = tmp_path / "deeplens.tflite"
    info = export_tflite(net, out, height=H, width=W, repeats=1, **extra)
    assert out.is_file() and json.loads(out.with_suffix(".json").read_text())["model"] == "deeplens"
    assert info["parity"]["max_abs_diff"] <= 5e-3
