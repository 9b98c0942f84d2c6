"""One .tflite from photo to bokeh: MegaDepth (fixture weights) + its EBB! map conversion + the
classical renderer, through export_tflite.py and the real LiteRT interpreter, against the
Python pipeline (depth_tools' map + the NumPy renderer)."""

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from pynet_bokeh import image_io
from pynet_bokeh.errors import UsageError
from pynet_bokeh.export import fit_to_size, make_interpreter, metadata_path, run_tflite
from pynet_bokeh.renderers import get_renderer

REPO = Path(__file__).resolve().parents[1]
H, W = 64, 96


def _psnr(a, b):
    return 10 * np.log10(1.0 / np.mean((np.asarray(a, np.float64) - b) ** 2))


def _run_cli(argv):
    sys.path.insert(0, str(REPO))
    from absl import flags

    import export_tflite

    sys.path.remove(str(REPO))
    flag_values = export_tflite.define_flags(flags.FlagValues())
    flag_values(["export_tflite.py", *argv])
    export_tflite.main([], flag_values)


@pytest.fixture(scope="module")
def megadepth_weights(fixtures_dir):
    path = fixtures_dir / "megadepth" / "megadepth_seed0_net_G.pth"
    if not path.is_file():
        pytest.skip("the MegaDepth fixture weights are absent")
    return path


def test_ebb_depth_conversion_matches_the_generator():
    from depth_tools.generate import encode_ebb_depth, to_inverse_depth
    from depth_tools.phone import ebb_depth_from_log_depth

    log_depth = np.random.default_rng(0).normal(size=(1, 8, 12, 1)).astype(np.float32)
    expected = encode_ebb_depth(to_inverse_depth(log_depth[0, ..., 0], "log_depth")) / 255.0
    got = ebb_depth_from_log_depth(tf.constant(log_depth)).numpy()[0, ..., 0]
    np.testing.assert_allclose(got, expected, atol=1e-6)
    flat = ebb_depth_from_log_depth(tf.fill([1, 4, 4, 1], 2.0)).numpy()
    np.testing.assert_array_equal(flat, 1.0)  # a flat map is "all near": nothing blurred


@pytest.mark.slow  # MegaDepth + the renderer through the converter: minutes on 2 cores
def test_photo_to_bokeh_file_matches_the_python_pipeline(megadepth_weights, ebb_samples, tmp_path):
    from depth_tools.megadepth import build_megadepth, load_megadepth_weights
    from depth_tools.phone import reference_depth

    out = tmp_path / "photo_bokeh.tflite"
    argv = ["--model", "classical", "--depth_model", "megadepth"]
    argv += ["--depth_weights", str(megadepth_weights), "--height", str(H), "--width", str(W)]
    _run_cli([*argv, "--output", str(out), "--repeats", "1"])
    info = json.loads(metadata_path(out).read_text())
    assert [(t["name"], t["shape"]) for t in info["inputs"]] == [
        ("image", [1, H, W, 3]),
        ("focus_xy", [1, 2]),
        ("blur", [1, 1]),
    ]
    assert [(t["name"], t["shape"]) for t in info["outputs"]] == [("image", [1, H, W, 3])]
    assert info["parity"]["max_abs_diff"] < 1e-4  # TF graph vs LiteRT
    assert info["parity"]["tflite_latency_s"] > 0 and info["size_bytes"] > 5_000_000
    assert "CONV_2D" in info["ops"] and "WHILE" in info["ops"]

    net = load_megadepth_weights(build_megadepth(), megadepth_weights)
    renderer = get_renderer("classical")
    interpreter = make_interpreter(out)
    for name, focus, k in (("2", (48, 32), 3.0), ("7", (20, 40), 5.0)):
        photo = fit_to_size(image_io.read_photo(ebb_samples / "images" / f"{name}.jpg"), (H, W))
        expected = renderer.render(photo, reference_depth(net, photo), focus=focus, blur=k)
        feeds = {
            "image": photo[None],
            "focus_xy": np.array([focus], np.float32),
            "blur": np.array([[k]], np.float32),
        }
        got = run_tflite(interpreter, feeds)["image"][0]
        assert _psnr(got, expected) >= 35.0, name


def test_depth_flags_are_checked(tmp_path, megadepth_weights):
    out = tmp_path / "x.tflite"
    with pytest.raises(UsageError, match="--depth_model megadepth needs --depth_weights"):
        _run_cli(["--model", "classical", "--depth_model", "megadepth", "--output", str(out)])
    with pytest.raises(UsageError, match="--depth_weights needs --depth_model"):
        _run_cli(["--model", "classical", "--depth_weights", "x.pth", "--output", str(out)])
    with pytest.raises(UsageError, match="multiple of 16"):
        argv = ["--model", "classical", "--depth_model", "megadepth"]
        _run_cli(
            [
                *argv,
                "--depth_weights",
                str(megadepth_weights),
                "--height",
                "40",
                "--output",
                str(out),
            ]
        )
    assert not out.exists()


@pytest.mark.slow  # MegaDepth + PyNET through the converter: minutes on 2 cores
def test_pynet_photo_to_bokeh_file_matches_the_python_pipeline(
    megadepth_weights, tf1_prefix, ebb_samples, tmp_path
):
    from depth_tools.megadepth import build_megadepth, load_megadepth_weights
    from depth_tools.phone import reference_depth

    h, w = 128, 192  # PyNET's photo graph: multiples of 64
    out = tmp_path / "pynet_photo_bokeh.tflite"
    argv = ["--model", "pynet", "--weights", str(tf1_prefix), "--depth_model", "megadepth"]
    argv += ["--depth_weights", str(megadepth_weights), "--height", str(h), "--width", str(w)]
    _run_cli([*argv, "--output", str(out), "--repeats", "1"])
    info = json.loads(metadata_path(out).read_text())
    assert [(t["name"], t["shape"]) for t in info["inputs"]] == [("image", [1, h, w, 3])]
    assert [(t["name"], t["shape"]) for t in info["outputs"]] == [("image", [1, h, w, 3])]
    assert info["model"] == "photo_to_bokeh:pynet" and "MegaDepth" in info["depth"]
    assert info["parity"]["max_abs_diff"] < 1e-4  # TF graph vs LiteRT
    assert info["parity"]["tflite_latency_s"] > 0
    assert info["size_bytes"] > 150_000_000  # PyNET's float32 weights and MegaDepth's
    assert "CONV_2D" in info["ops"] and "TRANSPOSE_CONV" in info["ops"]

    net = load_megadepth_weights(build_megadepth(), megadepth_weights)
    renderer = get_renderer("pynet", weights=tf1_prefix)
    interpreter = make_interpreter(out)
    psnrs = []
    for name in ("2", "7"):
        photo = fit_to_size(image_io.read_photo(ebb_samples / "images" / f"{name}.jpg"), (h, w))
        expected = renderer.render(photo, reference_depth(net, photo))
        got = run_tflite(interpreter, {"image": photo[None]})["image"][0]
        assert got.shape == photo.shape
        psnrs.append(_psnr(got, expected))
    print("pynet photo-to-bokeh PSNR vs the Python pipeline:", psnrs)
    # the file resizes the photo bilinearly where the pipeline uses antialiased / bicubic
    assert min(psnrs) >= 38.0, psnrs  # 43.4 and 40.2 dB when written
    with pytest.raises(UsageError, match="multiples of 64"):
        _run_cli([*argv[:-4], "--height", "96", "--width", "192", "--output", str(out)])
