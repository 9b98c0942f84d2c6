"""SavedModel -> TFLite bytes with builtin ops only (four quantization modes), and the check
that a converted file holds no Flex / custom op."""

from __future__ import annotations

import os
import re
import warnings

import numpy as np
import tensorflow as tf

from pynet_bokeh.export.litert import make_interpreter

QUANTIZATIONS = ("none", "fp16", "dynamic", "int8")
#: Input / output tensor types of an int8 model: float32 (QUANTIZE / DEQUANTIZE inside) or
#: integer, the app applying the scale and zero point recorded in the JSON.
IO_TYPES = ("float32", "int8", "uint8")


class FlexOpsError(RuntimeError):
    """The model needs TensorFlow (Flex / custom) ops that TFLite has no builtin kernel for."""

    def __init__(self, message, ops=()):
        super().__init__(message)
        self.ops = tuple(ops)


_FLEX_OP = re.compile(r"\btf\.([A-Z][A-Za-z0-9]*)\(")
_FLEX_HINTS = ("flex", "custom op", "select tf", "not supported by the native tflite")


def convert_saved_model(
    directory, quantization="none", representative_data=None, io_type="float32", float_nodes=()
):
    """Converts a SavedModel to TFLite bytes with builtin ops only; see the module docstring.

    representative_data: for "int8", a callable returning an iterable of {input name: array}.
    io_type: for "int8", the type of the model's inputs and outputs (`IO_TYPES`).
    float_nodes: for "int8", names of ops' output tensors to keep in float (selective
        quantization, found with the quantization debugger; see `int8_debugger`).
    """
    if quantization not in QUANTIZATIONS:
        raise ValueError(f"quantization must be one of {QUANTIZATIONS}, got {quantization!r}")
    if io_type not in IO_TYPES:
        raise ValueError(f"io_type must be one of {IO_TYPES}, got {io_type!r}")
    if quantization != "int8" and (io_type != "float32" or float_nodes):
        raise ValueError("io_type and float_nodes apply to quantization='int8' only")
    if io_type != "float32" and float_nodes:
        raise ValueError("float_nodes needs io_type='float32' (the debugger's conversion path)")
    converter = _converter(directory, quantization, representative_data, io_type)
    try:
        with warnings.catch_warnings():
            # The int8 calibrator itself uses the deprecated tf.lite.Interpreter: not our call.
            warnings.filterwarnings("ignore", message=".*tf.lite.Interpreter is deprecated")
            if float_nodes:
                return _selective_int8(converter, representative_data, float_nodes)
            return converter.convert()
    except Exception as err:  # the converter raises ConverterError / RuntimeError / ValueError
        text = str(err)
        ops = sorted(set(_FLEX_OP.findall(text)))
        if ops or any(h in text.lower() for h in _FLEX_HINTS):
            raise FlexOpsError(
                f"the model needs TensorFlow ops that TFLite has no builtin kernel for: "
                f"{', '.join(ops) or '(see the converter message below)'}. This exporter uses "
                "builtin ops only, so the file runs on the plain LiteRT runtime (no Flex / "
                "TF Select AAR on Android): replace these ops in the model with builtin-friendly "
                f"ones.\nConverter message (end):\n{text[-1500:]}",
                ops,
            ) from err
        if quantization == "int8" and "quantiz" in text.lower():
            raise RuntimeError(
                "int8 conversion failed: an op of the model has no int8 kernel. Use "
                f"quantization='dynamic' or 'fp16' instead.\nConverter message (end):\n{text[-1500:]}"
            ) from err
        raise


def _converter(directory, quantization, representative_data, io_type):
    """A TFLiteConverter set up for `quantization` with builtin ops only."""
    converter = tf.lite.TFLiteConverter.from_saved_model(os.fspath(directory))
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if quantization != "none":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if quantization == "fp16":
        converter.target_spec.supported_types = [tf.float16]
    if quantization == "int8":
        if representative_data is None:
            raise ValueError(
                "int8 quantization needs calibration data: pass calibration_dir (a folder of "
                "photos + EBB! depth maps) or representative_data"
            )
        converter.representative_dataset = representative_data
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        if io_type != "float32":
            converter.inference_input_type = getattr(tf, io_type)
            converter.inference_output_type = getattr(tf, io_type)
    return converter


def _selective_int8(converter, representative_data, float_nodes):
    """int8 with the ops whose output tensors are `float_nodes` kept in float (the converter's
    quantization debugger's public route to a non-debug model with a denylist)."""
    return _debugger(converter, representative_data, float_nodes).get_nondebug_quantized_model()


def _debugger(converter, representative_data, float_nodes=()):
    options = tf.lite.experimental.QuantizationDebugOptions(denylisted_nodes=list(float_nodes))
    return tf.lite.experimental.QuantizationDebugger(
        converter=converter,
        debug_dataset=lambda: (list(x.values()) for x in representative_data()),
        debug_options=options,
    )


def int8_debugger(directory, representative_data):
    """The converter's `QuantizationDebugger` for full int8 of the SavedModel in `directory`,
    calibrated once on `representative_data` (as in `convert_saved_model`): set its `options`
    (`denylisted_nodes`) and call `get_nondebug_quantized_model()` to try float sets without
    calibrating again, or `run()` for per-layer error statistics."""
    converter = _converter(directory, "int8", representative_data, "float32")
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*tf.lite.Interpreter is deprecated")
        return _debugger(converter, representative_data)


def io_quantization(model_content):
    """{"inputs": {name: {...}}, "outputs": {...}} of the serving signature: dtype and, for
    integer tensors, scale and zero point (real = scale * (q - zero_point))."""
    runner = make_interpreter(model_content, default_delegates=False).get_signature_runner()
    described = {}
    for key, details in (
        ("inputs", runner.get_input_details()),
        ("outputs", runner.get_output_details()),
    ):
        described[key] = {}
        for name, d in details.items():
            entry = {"dtype": np.dtype(d["dtype"]).name}
            if entry["dtype"] != "float32":
                scale, zero_point = d["quantization"]
                entry.update(scale=float(scale), zero_point=int(zero_point))
            described[key][name] = entry
    return described


def op_names(model_content):
    """Sorted names of the ops in a TFLite model (bytes or path), e.g. ['CONV_2D', ...]."""
    # Without the default XNNPACK delegate, which would hide the ops it takes as "DELEGATE".
    interpreter = make_interpreter(model_content, default_delegates=False)
    return sorted({op["op_name"] for op in interpreter._get_ops_details()})


def check_builtin_ops(names, what="the model"):
    """Raises FlexOpsError if `names` (from `op_names`) holds Flex or custom ops."""
    bad = [n for n in names if n.startswith("Flex") or n == "CUSTOM"]
    if bad:
        raise FlexOpsError(f"{what} contains non-builtin ops: {', '.join(bad)}", bad)
