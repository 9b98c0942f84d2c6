"""pynet_bokeh.export: LiteRT parity per quantization mode, builtin ops only, JSON, errors.

PyNET itself (47.5M parameters) takes ~20-40 s of CPU per conversion whatever the input size,
so the default suite converts it twice (fp32 and int8, the two ends); fp16, dynamic-range and
level 2 run with `-m slow`. Every mode also runs by default on a small model made of the same
layer kinds (space-to-depth, convs, instance norm, LeakyReLU, max pool, transposed convs,
concat, add, scaled tanh), which converts in seconds.

PyNET's weights are the TF1 fixture checkpoint's (`make_checkpoint.py --seed 0`): a structured
recipe whose outputs span [-0.08, 1.06] with std 0.26, so PSNRs measure quantization error on a
non-trivial output, unlike a freshly initialised PyNET whose output is nearly constant.
"""

import json
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from pynet_bokeh import build_pynet, level_model, load_tf1_checkpoint
from pynet_bokeh.errors import UsageError
from pynet_bokeh.export import (
    FlexOpsError,
    InstanceNorm4D,
    export_tflite,
    fit_to_size,
    make_interpreter,
    metadata_path,
    photo_samples,
    run_tflite,
    synthetic_samples,
    with_4d_instance_norm,
)
from pynet_bokeh.models.layers import ScaledTanh, SpaceToDepth

REPO = Path(__file__).resolve().parents[1]
H, W = 64, 96
PYNET_OPS = {
    "ADD",
    "CONCATENATION",
    "CONV_2D",
    "LEAKY_RELU",
    "MAX_POOL_2D",
    "MEAN",
    "MUL",
    "RSQRT",
    "SPACE_TO_DEPTH",
    "SQUARED_DIFFERENCE",
    "SUB",
    "TANH",
    "TRANSPOSE_CONV",
}


def _psnr(a, b):
    return 10 * np.log10(1.0 / np.mean((np.asarray(a, np.float64) - b) ** 2))


def _max_tensor_rank(path):
    interpreter = make_interpreter(path, default_delegates=False)
    ranks = {d["index"]: len(d["shape"]) for d in interpreter.get_tensor_details()}
    return max(ranks[t] for op in interpreter._get_ops_details() for t in op["outputs"])


def test_instance_norm_becomes_4d_with_the_same_numbers(tiny):
    copy = with_4d_instance_norm(tiny)
    assert isinstance(copy.get_layer("in"), InstanceNorm4D)
    assert copy.get_layer("c") is tiny.get_layer("c")  # other layers are shared
    norm = tiny.get_layer("in")
    norm.set_weights([np.linspace(0.5, 2, 32), np.linspace(-0.3, 0.3, 32)])
    copy = with_4d_instance_norm(tiny)
    x = np.random.default_rng(0).random((2, 32, 64, 4), dtype=np.float32)
    np.testing.assert_allclose(copy(x), tiny(x), atol=1e-5)
    no_norm = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Conv2D(3, 1)])
    assert with_4d_instance_norm(no_norm) is no_norm


def _tiny_pynet_like():
    """PyNET's layer kinds in a 4-level miniature: input N x H x W x 4, output 2H x 2W x 3."""
    keras.utils.set_random_seed(1)
    x = keras.Input((None, None, 4), name="image_depth")
    s = SpaceToDepth(2, name="s2d")(x)
    e = keras.layers.Conv2D(16, 3, padding="same", name="e")(s)
    e = keras.layers.LeakyReLU(0.2)(e)
    p = keras.layers.MaxPooling2D(2, name="pool")(e)
    c = keras.layers.Conv2D(32, 3, padding="same", name="c")(p)
    c = keras.layers.GroupNormalization(groups=-1, epsilon=1e-3, name="in")(c)
    c = keras.layers.LeakyReLU(0.2)(c)
    c = keras.layers.Add()([c, keras.layers.Conv2D(32, 3, padding="same", name="c2")(c)])
    u = keras.layers.Conv2DTranspose(16, 3, strides=2, padding="same", use_bias=False)(c)
    u = keras.layers.LeakyReLU(0.2)(u)
    u = keras.layers.Concatenate()([u, e])
    u = keras.layers.Conv2DTranspose(8, 3, strides=2, padding="same", use_bias=False)(u)
    u = keras.layers.Conv2DTranspose(8, 3, strides=2, padding="same", use_bias=False)(u)
    y = ScaledTanh(name="head_tanh")(keras.layers.Conv2D(3, 3, padding="same", name="head")(u))
    return keras.Model(x, y, name="tiny")


@pytest.fixture(scope="module")
def tiny():
    return _tiny_pynet_like()


@pytest.fixture(scope="module")
def real_inputs(ebb_samples):
    """Four real photos + depth maps as 64 x 96 x 4 network inputs."""
    return photo_samples(ebb_samples, (H, W), count=4)


@pytest.fixture(scope="module")
def pynet(tf1_prefix):
    return load_tf1_checkpoint(build_pynet(), tf1_prefix)


def _run_cli(argv):
    """Runs export_tflite.py's main in this process (no second TensorFlow start-up)."""
    sys.path.insert(0, str(REPO))
    from absl import flags

    import export_tflite

    sys.path.remove(str(REPO))
    flag_values = export_tflite.define_flags(flags.FlagValues())
    flag_values(["export_tflite.py", *argv])
    export_tflite.main([], flag_values)


@pytest.mark.parametrize(
    "extra, match",
    [
        (["--float_blocks", "mb9"], "--float_blocks mb9: not a PyNET block"),
        (["--float_blocks", "level3", "--io_type", "uint8"], "need --io_type float32"),
    ],
)
def test_float_blocks_flag_refusals_name_the_flag(tmp_path, extra, match):
    out = tmp_path / "m.tflite"
    argv = ["--output", str(out), "--quantization", "int8", "--calibration_dir", str(tmp_path)]
    with pytest.raises(UsageError, match=match):
        _run_cli([*argv, *extra])
    assert not out.exists()


def test_photo_samples_follow_the_ebb_convention(ebb_samples, real_inputs):
    assert len(real_inputs) == 4
    for x in real_inputs:
        assert x.shape == (H, W, 4) and x.dtype == np.float32
        assert 0.0 <= x.min() and x.max() <= 1.0
    # The depth channel is the EBB! map (near = bright): it spans most of [0, 1].
    assert real_inputs[0][..., 3].max() - real_inputs[0][..., 3].min() > 0.5
    # fit_to_size keeps the aspect: a 2:3 image resized to 2:3 loses nothing.
    img = np.random.default_rng(0).random((20, 30, 4)).astype(np.float32)
    assert fit_to_size(img, (20, 30)) is not img and np.array_equal(fit_to_size(img, (20, 30)), img)
    assert fit_to_size(img, (10, 10)).shape == (10, 10, 4)


@pytest.mark.parametrize(
    "quantization, min_psnr",
    [("none", 90.0), ("fp16", 40.0), ("dynamic", 30.0), ("int8", 30.0)],
)
def test_every_quantization_mode_matches_keras(tiny, ebb_samples, tmp_path, quantization, min_psnr):
    out = tmp_path / f"tiny_{quantization}.tflite"
    info = export_tflite(
        tiny, out, quantization, H, W, calibration_dir=ebb_samples, num_calibration=4, repeats=1
    )
    assert out.is_file() and info["size_bytes"] == out.stat().st_size
    assert json.loads(metadata_path(out).read_text()) == json.loads(json.dumps(info))
    parity = info["parity"]
    assert parity["input"] == "calibration photo"
    assert parity["output_shape"] == [1, 2 * H, 2 * W, 3]
    assert parity["psnr_db"] > min_psnr
    if quantization == "none":
        assert parity["max_abs_diff"] < 1e-4
    ops = set(info["ops"])
    assert {"SPACE_TO_DEPTH", "TRANSPOSE_CONV", "MEAN", "RSQRT", "CONV_2D"} <= ops
    assert _max_tensor_rank(out) == 4  # no 5-D tensors: the GPU delegate takes the whole graph
    assert not [op for op in ops if op.startswith("Flex") or op == "CUSTOM"]
    if quantization == "int8":
        assert {"QUANTIZE", "DEQUANTIZE"} <= ops
        interpreter = make_interpreter(out)
        assert interpreter.get_input_details()[0]["dtype"] == np.float32  # float in / out


def test_int8_file_is_a_quarter_of_float(tiny, ebb_samples, tmp_path):
    sizes = {}
    for q in ("none", "int8"):
        info = export_tflite(
            tiny,
            tmp_path / f"{q}.tflite",
            q,
            H,
            W,
            calibration_dir=ebb_samples,
            num_calibration=2,
            check=False,
        )
        sizes[q] = info["size_bytes"]
        assert "parity" not in info
    n_weights = tiny.count_params()
    assert sizes["none"] > 4 * n_weights
    assert sizes["int8"] < sizes["none"] / 2


def test_dynamic_size_model_runs_at_any_multiple_of_32(tiny, tmp_path):
    info = export_tflite(tiny, tmp_path / "dyn.tflite", dynamic=True, check=False)
    assert info["inputs"][0]["shape"] == [1, -1, -1, 4]
    interpreter = make_interpreter(tmp_path / "dyn.tflite")
    for h, w in ((32, 64), (96, 32)):
        x = np.random.default_rng(h).random((1, h, w, 4), dtype=np.float32)
        got = run_tflite(interpreter, {"image_depth": x})["bokeh"]
        np.testing.assert_allclose(got, tiny(x).numpy(), atol=1e-4)


def test_fixed_size_model_refuses_another_size(tiny, tmp_path):
    export_tflite(tiny, tmp_path / "fixed.tflite", height=32, width=32, check=False)
    interpreter = make_interpreter(tmp_path / "fixed.tflite")
    with pytest.raises(ValueError, match=r"takes \(1, 32, 32, 4\).*dynamic=True"):
        run_tflite(interpreter, {"image_depth": np.zeros((1, 64, 64, 4), np.float32)})


def test_model_with_several_named_inputs(tmp_path):
    photo = keras.Input((None, None, 3), name="photo")
    depth = keras.Input((None, None, 1), name="depth")
    y = keras.layers.Conv2D(3, 3, padding="same")(keras.layers.Concatenate()([photo, depth]))
    model = keras.Model({"photo": photo, "depth": depth}, y)
    rng = np.random.default_rng(0)
    feeds = {
        "photo": rng.random((1, 32, 48, 3), dtype=np.float32),
        "depth": rng.random((1, 32, 48, 1), dtype=np.float32),
    }
    info = export_tflite(model, tmp_path / "two.tflite", height=32, width=48, parity_feeds=feeds)
    assert sorted(i["name"] for i in info["inputs"]) == ["depth", "photo"]
    assert info["parity"]["max_abs_diff"] < 1e-5
    # a callable with several named inputs and outputs: every output is compared
    tracked = model

    def two_outputs(photo, depth):
        y = tracked({"photo": photo, "depth": depth})
        return {"image": y, "mean": keras.ops.mean(y, axis=(1, 2))}

    specs = {
        "photo": tf.TensorSpec([1, 32, 48, 3], tf.float32, name="photo"),
        "depth": tf.TensorSpec([1, 32, 48, 1], tf.float32, name="depth"),
    }
    info = export_tflite(
        two_outputs, tmp_path / "fn.tflite", input_specs=specs, track=[model], parity_feeds=feeds
    )
    assert sorted(o["name"] for o in info["outputs"]) == ["image", "mean"]
    per_output = info["parity"]["per_output"]
    assert per_output["mean"]["shape"] == [1, 3] and per_output["image"]["shape"] == [1, 32, 48, 3]
    assert info["parity"]["max_abs_diff"] < 1e-5
    assert info["level"] is None and "input_description" not in info


def test_flex_ops_raise_a_clear_error(tmp_path):
    @tf.function
    def needs_flex(x):
        return tf.math.erfinv(x * 0.5)

    specs = {"x": tf.TensorSpec([1, 8, 8, 3], tf.float32, name="x")}
    with pytest.raises(FlexOpsError, match=r"no builtin kernel for: Erfinv") as err:
        export_tflite(needs_flex, tmp_path / "flex.tflite", input_specs=specs, check=False)
    assert err.value.ops == ("Erfinv",)
    assert not list(tmp_path.iterdir())  # nothing half written


def test_bad_arguments_raise_clear_errors(tiny, tmp_path):
    with pytest.raises(ValueError, match="quantization must be one of"):
        export_tflite(tiny, tmp_path / "m.tflite", quantization="int4")
    with pytest.raises(ValueError, match="must end with .tflite"):
        export_tflite(tiny, tmp_path / "m.tfl")
    with pytest.raises(ValueError, match="int8 needs calibration photos: pass --calibration_dir"):
        export_tflite(tiny, tmp_path / "m.tflite", quantization="int8")
    with pytest.raises(FileNotFoundError, match="holds no JPEG/PNG photos"):
        export_tflite(tiny, tmp_path / "m.tflite", calibration_dir=tmp_path)
    with pytest.raises(ValueError, match="needs input_specs"):
        export_tflite(tf.function(lambda x: x), tmp_path / "m.tflite")


def test_synthetic_samples_when_no_photo_is_given():
    (x,) = synthetic_samples((H, W), 1)
    assert x.shape == (H, W, 4)
    assert x[..., 3].min() == 0.0 and x[..., 3].max() == 1.0  # min-max normalised depth


# ------------------------------------------------------------------------- PyNET itself


@pytest.mark.slow  # heavy: the default suite keeps under 15 min on 2 cores
def test_pynet_float32_export_matches_keras_and_the_authors_graph(
    tf1_prefix, ebb_samples, fixtures_dir, tmp_path, capsys
):
    out = tmp_path / "pynet_l1.tflite"
    _run_cli(
        [
            f"--tf1_checkpoint={tf1_prefix}",
            f"--output={out}",
            f"--height={H}",
            f"--width={W}",
            f"--calibration_dir={ebb_samples}",
            "--repeats=1",
        ]
    )
    printed = capsys.readouterr().out
    assert f"input  image_depth: [1, {H}, {W}, 4] float32 NHWC" in printed
    assert "Keras vs LiteRT on a calibration photo" in printed and "CPU latency" in printed
    info = json.loads(metadata_path(out).read_text())
    assert set(info["ops"]) == PYNET_OPS  # instance norm and conv2d_transpose as builtins
    assert _max_tensor_rank(out) == 4
    assert info["parity"]["max_abs_diff"] < 1e-4
    assert info["size_bytes"] > 47_551_791 * 4
    assert info["level"] == 1 and info["model"] == "pynet"
    assert info["inputs"] == [
        {"name": "image_depth", "shape": [1, H, W, 4], "dtype": "float32", "layout": "NHWC"}
    ]
    assert info["outputs"][0]["shape"] == [1, 2 * H, 2 * W, 3]
    assert info["input_description"]["channels"] == ["R", "G", "B", "depth"]
    assert "near = bright" in info["input_description"]["depth"]
    # The LiteRT file reproduces the authors' TF1 graph's level-1 output too.
    ref = np.load(fixtures_dir / "pynet_tf1" / "reference_seed0.npz")
    got = run_tflite(make_interpreter(out), {"image_depth": ref["input_0"]})["bokeh"]
    np.testing.assert_allclose(got, ref["level1_0"], atol=1e-4)


def test_cli_usage_errors(pynet, tmp_path):
    from pynet_bokeh.errors import UsageError

    with pytest.raises(UsageError, match="int8 needs --calibration_dir"):
        _run_cli(["--weights=x.weights.h5", f"--output={tmp_path}/m.tflite", "--quantization=int8"])
    with pytest.raises(UsageError, match="--output FILE.tflite is required"):
        _run_cli(["--weights=x.weights.h5", f"--output={tmp_path}/m.h5"])
    with pytest.raises(ValueError, match="multiples of 32"):
        export_tflite(pynet, tmp_path / "bad.tflite", height=60, width=96)
    with pytest.raises(ValueError, match="level 8: the model has outputs"):
        export_tflite(pynet, tmp_path / "bad.tflite", level=8)


@pytest.mark.slow  # heavy: the default suite keeps under 15 min on 2 cores
def test_pynet_int8_export_keeps_30_db(pynet, ebb_samples, tmp_path):
    info = export_tflite(
        pynet,
        tmp_path / "pynet_int8.tflite",
        "int8",
        H,
        W,
        calibration_dir=ebb_samples,
        num_calibration=4,
        repeats=1,
    )
    assert info["parity"]["psnr_db"] > 30.0
    assert set(info["ops"]) == PYNET_OPS | {"QUANTIZE", "DEQUANTIZE"}
    assert info["size_bytes"] < 47_551_791 * 1.1  # int8 weights


@pytest.mark.slow
@pytest.mark.parametrize("quantization, min_psnr", [("fp16", 40.0), ("dynamic", 30.0)])
def test_pynet_fp16_and_dynamic(pynet, ebb_samples, tmp_path, quantization, min_psnr):
    info = export_tflite(
        pynet, tmp_path / "p.tflite", quantization, H, W, calibration_dir=ebb_samples, repeats=1
    )
    assert info["parity"]["psnr_db"] > min_psnr
    assert set(info["ops"]) <= PYNET_OPS | {"DEQUANTIZE"}


@pytest.mark.slow
def test_pynet_level2_outputs_the_input_size(pynet, ebb_samples, tmp_path):
    for model, level in ((pynet, 2), (level_model(pynet, 2), 1)):  # a level model says its level
        info = export_tflite(
            model,
            tmp_path / "l2.tflite",
            level=level,
            height=H,
            width=W,
            calibration_dir=ebb_samples,
            repeats=1,
        )
        assert info["level"] == 2
        assert info["outputs"][0]["shape"] == [1, H, W, 3]
        assert info["output_description"]["scale"] == 1.0
        assert info["parity"]["max_abs_diff"] < 1e-4
