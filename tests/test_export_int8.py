"""Full-int8 export: integer I/O with its scale and zero point in the JSON, equalisation of
concatenated branches (same float function, the branch no longer rounded to noise), selective
float ops. A miniature with PyNET's decoder pattern converts in seconds."""

import json

import keras
import numpy as np
import pytest

from pynet_bokeh.export import export_tflite, make_interpreter, metadata_path, run_tflite
from pynet_bokeh.export.equalize import equalized_copy
from pynet_bokeh.export.int8_search import CalibratedInt8, block_of, float_nodes_of
from pynet_bokeh.models.layers import ScaledTanh

H, W = 32, 48


def _decoder_like():
    """An encoder branch concatenated with a 30x smaller upsampling branch (transposed conv,
    no bias, LeakyReLU), read by a conv: PyNET's `level3_cat1` pattern."""
    keras.utils.set_random_seed(3)
    x = keras.Input((None, None, 4), name="image_depth")
    e = keras.layers.Conv2D(16, 3, padding="same", name="enc")(x)
    e = keras.layers.LeakyReLU(0.2, name="enc_act")(e)
    p = keras.layers.MaxPooling2D(2, name="pool")(e)
    small = keras.initializers.RandomNormal(stddev=0.005, seed=4)
    u = keras.layers.Conv2DTranspose(
        16, 3, strides=2, padding="same", use_bias=False, kernel_initializer=small, name="up"
    )(p)
    u = keras.layers.LeakyReLU(0.2, name="up_act")(u)
    c = keras.layers.Concatenate(name="cat")([e, u])
    big = keras.initializers.RandomNormal(stddev=0.3, seed=5)
    y = keras.layers.Conv2D(16, 3, padding="same", kernel_initializer=big, name="mix")(c)
    y = keras.layers.LeakyReLU(0.2, name="mix_act")(y)
    y = ScaledTanh(name="out")(keras.layers.Conv2D(3, 3, padding="same", name="head")(y))
    return keras.Model(x, y, name="decoder_like")


@pytest.fixture(scope="module")
def model():
    return _decoder_like()


@pytest.fixture(scope="module")
def inputs():
    rng = np.random.default_rng(0)
    return [rng.random((1, H, W, 4), dtype=np.float32) for _ in range(6)]


def _psnr(a, b):
    return 10 * np.log10(1.0 / np.mean((np.asarray(a, np.float64) - b) ** 2))


def test_equalisation_keeps_the_float_function_and_scales_the_branch(model, inputs):
    copy, scales = equalized_copy(model, inputs[:2])
    assert scales["up"] >= 8 and np.log2(scales["up"]).is_integer()
    np.testing.assert_allclose(copy(inputs[3]), model(inputs[3]), atol=1e-5)
    assert copy.get_layer("up") is not model.get_layer("up")  # the model itself is untouched
    np.testing.assert_allclose(
        copy.get_layer("up").kernel.numpy(), model.get_layer("up").kernel.numpy() * scales["up"]
    )
    # The branch now spans the concatenation's range (within a factor 2).
    probe = keras.Model(copy.input, [copy.get_layer("up_act").output, copy.get_layer("cat").output])
    branch, group = (float(np.abs(t).max()) for t in probe(inputs[0]))
    assert group / 2 <= branch <= group * 2


@pytest.mark.parametrize(
    "io_type, dtype",
    [("uint8", np.uint8), pytest.param("int8", np.int8, marks=pytest.mark.slow)],
)
def test_integer_io_records_scale_and_zero_point(model, inputs, tmp_path, io_type, dtype):
    path = tmp_path / f"m_{io_type}.tflite"
    info = export_tflite(
        model,
        path,
        "int8",
        H,
        W,
        calibration_data=[{"image_depth": x} for x in inputs[:4]],
        io_type=io_type,
        check=False,
    )
    saved = json.loads(metadata_path(path).read_text())
    (inp,), (out,) = saved["inputs"], saved["outputs"]
    assert inp["dtype"] == out["dtype"] == io_type == saved["int8"]["io_type"]
    interpreter = make_interpreter(path)
    runner = interpreter.get_signature_runner()
    details = runner.get_input_details()["image_depth"]
    assert details["dtype"] == dtype
    assert details["quantization"] == pytest.approx((inp["scale"], inp["zero_point"]))
    # Inputs in [0, 1]: the recorded scale maps the calibrated range onto 256 levels.
    assert inp["scale"] == pytest.approx(1 / 255, rel=0.02)
    # An app feeding q = x / scale + zero_point and reading scale * (y - zero_point) gets the
    # float model's output within int8 error.
    x = inputs[5]
    q = np.clip(
        np.round(x / inp["scale"]) + inp["zero_point"], np.iinfo(dtype).min, np.iinfo(dtype).max
    )
    raw = run_tflite(interpreter, {"image_depth": q.astype(dtype)}, raw=True)["bokeh"]
    assert raw.dtype == dtype
    y = (raw.astype(np.float32) - out["zero_point"]) * out["scale"]
    assert _psnr(y, model(x)) > 30.0
    # run_tflite does the same quantize / dequantize for float feeds.
    np.testing.assert_array_equal(run_tflite(interpreter, {"image_depth": x})["bokeh"], y)
    assert info["ops"].count("QUANTIZE") <= 1 and "DEQUANTIZE" not in info["ops"]


def test_int8_tensors_are_integer_but_listed_float_nodes(model, inputs, tmp_path):
    calibration = [{"image_depth": x} for x in inputs[:4]]
    full = export_tflite(
        model, tmp_path / "full.tflite", "int8", H, W, calibration_data=calibration, check=False
    )
    interpreter = make_interpreter(tmp_path / "full.tflite", default_delegates=False)
    tensors = interpreter.get_tensor_details()
    float_out = [
        tensors[op["outputs"][0]]["name"]
        for op in interpreter._get_ops_details()
        if tensors[op["outputs"][0]]["dtype"] == np.float32
    ]
    assert len(float_out) == 1 and full["ops"].count("DEQUANTIZE") == 1  # only the output
    assert _conv_output_types(tmp_path / "full.tflite") == ["int8"] * 3
    # The debugger names nodes as the float model does.
    export_tflite(model, tmp_path / "float.tflite", "none", H, W, check=False)
    interpreter = make_interpreter(tmp_path / "float.tflite", default_delegates=False)
    tensors = interpreter.get_tensor_details()
    head = next(
        tensors[op["outputs"][0]]["name"]
        for op in interpreter._get_ops_details()
        if op["op_name"] == "CONV_2D" and "head" in tensors[op["outputs"][0]]["name"]
    )
    export_tflite(
        model,
        tmp_path / "mixed.tflite",
        "int8",
        H,
        W,
        calibration_data=calibration,
        float_nodes=[head],
        check=False,
    )
    assert _conv_output_types(tmp_path / "mixed.tflite") == ["float32", "int8", "int8"]


def _conv_output_types(path):
    interpreter = make_interpreter(path, default_delegates=False)
    tensors = interpreter.get_tensor_details()
    return sorted(
        np.dtype(tensors[op["outputs"][0]]["dtype"]).name
        for op in interpreter._get_ops_details()
        if op["op_name"] == "CONV_2D"
    )


def test_block_names_of_pynet_nodes():
    nodes = [
        ("CONV_2D", "pynet_level1_1/level3_enc_conv3a_1/convolution"),
        ("ADD", "pynet_level1_1/level3_mb4_add_1/Add"),
        ("LEAKY_RELU", "pynet_level1_1/level4_up_a_act_1/LeakyRelu"),
        ("CONCATENATION", "pynet_level1_1/level3_cat5_1/concat"),
        ("CONV_2D", "pynet_level1_1/level3_mb9_conv3a_1/convolution"),
        ("SPACE_TO_DEPTH", "pynet_level1_1/space_to_depth_1/SpaceToDepth"),
    ]
    assert [block_of(n) for _, n in nodes] == [
        "level3_enc",
        "level3_mb4",
        "level4_up",
        "level3_cat5",
        "level3_mb9",
        None,
    ]
    assert float_nodes_of(nodes, ["level3_mb9", "level4_up"]) == [nodes[2][1], nodes[4][1]]
    assert len(float_nodes_of(nodes, ["level3"])) == 4  # a whole level: its blocks' nodes
    assert float_nodes_of(nodes, ["level5"]) == []


def test_one_calibration_gives_the_exporters_selective_models(model, inputs, tmp_path):
    calibration = [{"image_depth": x} for x in inputs[:4]]
    calibrated = CalibratedInt8(model, calibration, H, W)
    assert calibrated.equalized_branches["up"] >= 8
    head = next(n for op, n in calibrated.nodes if op == "CONV_2D" and "head" in n)
    assert _conv_output_types(calibrated.quantize()) == ["int8"] * 3
    mixed = calibrated.quantize([head])
    assert _conv_output_types(mixed) == ["float32", "int8", "int8"]
    # The same bytes as export_tflite's own (calibrating again) selective conversion.
    path = tmp_path / "mixed.tflite"
    export_tflite(
        model, path, "int8", H, W, calibration_data=calibration, float_nodes=[head], check=False
    )
    assert path.read_bytes() == mixed
    # Per-layer error in quantization steps: a conv's int8 output is off by about uniform
    # rounding (1/sqrt(12) = 0.29 steps) plus its int8 inputs' error; a concatenation only
    # copies (0 steps).
    stats = calibrated.layer_statistics()
    convs = [stats[n]["rmse/scale"] for op, n in calibrated.nodes if op == "CONV_2D"]
    assert len(convs) == 3 and all(0.25 < e < 0.8 for e in convs)
    cat = next(n for op, n in calibrated.nodes if op == "CONCATENATION")
    assert stats[cat]["rmse/scale"] < 0.01


def _level_named():
    """Three convolutions named as PyNET's blocks are (`block_of` reads the names)."""
    keras.utils.set_random_seed(3)
    x = keras.Input((None, None, 4), name="image_depth")
    y = keras.layers.Conv2D(8, 3, padding="same", name="level3_enc_conv")(x)
    y = keras.layers.Conv2D(8, 3, padding="same", name="level3_mb9_conv")(y)
    y = keras.layers.Conv2D(3, 3, padding="same", name="level1_head")(y)
    return keras.Model(x, y, name="level_named")


def test_float_blocks_keep_the_blocks_ops_in_float(inputs, tmp_path):
    model = _level_named()
    calibration = [{"image_depth": x} for x in inputs[:4]]
    path = tmp_path / "mixed.tflite"
    args = (model, path, "int8", H, W)
    info = export_tflite(
        *args, calibration_data=calibration, float_blocks=["level3_mb9"], check=False
    )
    assert info["int8"]["float_blocks"] == ["level3_mb9"]
    nodes = info["int8"]["float_nodes"]
    assert nodes and {block_of(n) for n in nodes} == {"level3_mb9"}
    assert _conv_output_types(path) == ["float32", "int8", "int8"]
    bad = tmp_path / "bad.tflite"
    with pytest.raises(ValueError, match=r"float_blocks level3_mb1: no op .*level3_mb9"):
        export_tflite(
            model, bad, "int8", H, W, calibration_data=calibration, float_blocks=["level3_mb1"]
        )
    assert not bad.exists() and not metadata_path(bad).exists()
