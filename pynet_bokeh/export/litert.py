"""The LiteRT interpreter: running an exported file, and its parity and latency against the
Keras / TF graph it came from."""

from __future__ import annotations

import os
import re

import keras
import numpy as np
import tensorflow as tf

from pynet_bokeh.export.savedmodel import OUTPUT_NAME


def make_interpreter(model_content, num_threads=None, default_delegates=True):
    """An `ai_edge_litert` Interpreter for a .tflite path or bytes (fixed-size: allocated).

    With the default delegates (XNNPACK on CPU), as an app's CPU inference would run it.
    """
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    kwargs = {"num_threads": num_threads or os.cpu_count() or 1}
    if not default_delegates:
        kwargs["experimental_op_resolver_type"] = OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    if isinstance(model_content, bytes | bytearray):
        interpreter = Interpreter(model_content=bytes(model_content), **kwargs)
    else:
        interpreter = Interpreter(model_path=os.fspath(model_content), **kwargs)
    if all(-1 not in d["shape_signature"] for d in interpreter.get_input_details()):
        interpreter.allocate_tensors()  # dynamic models allocate when run at a size
    return interpreter


def run_tflite(interpreter, feeds, raw=False):
    """Runs the `serving_default` signature on {input name: array}; returns {name: array}.

    Models exported with dynamic=True take any size (the runner resizes the inputs). Feeds
    and outputs are float32 in real units; an int8 / uint8 model's are quantized and
    dequantized with its tensors' scale and zero point (raw=True: fed and returned as is).
    """
    runner = interpreter.get_signature_runner("serving_default")
    inputs = runner.get_input_details()
    if set(inputs) != set(feeds):
        raise ValueError(f"inputs {sorted(feeds)} given; the model takes {sorted(inputs)}")
    for name, value in feeds.items():
        expected = [int(d) for d in inputs[name]["shape_signature"]]
        got = list(np.shape(value))
        if len(got) != len(expected) or any(
            e not in (-1, g) for e, g in zip(expected, got, strict=False)
        ):
            raise ValueError(
                f"input {name!r} has shape {tuple(got)}, but the model takes {tuple(expected)} "
                "(-1 = any); export with dynamic=True or feed that size"
            )
    if raw:
        return runner(**feeds)
    outputs = runner(**{k: _to_input_type(v, inputs[k]) for k, v in feeds.items()})
    details = runner.get_output_details()
    return {k: _dequantized(v, details[k]) for k, v in outputs.items()}


def _to_input_type(value, details):
    """A float feed in [real units] as the input tensor's type (int8 / uint8: quantized)."""
    dtype = np.dtype(details["dtype"])
    if dtype == np.float32:
        return np.asarray(value, np.float32)
    scale, zero_point = details["quantization"]
    info = np.iinfo(dtype)
    q = np.round(np.asarray(value, np.float64) / scale) + zero_point
    return np.clip(q, info.min, info.max).astype(dtype)


def _dequantized(value, details):
    if np.dtype(details["dtype"]) == np.float32:
        return value
    scale, zero_point = details["quantization"]
    return ((value.astype(np.float32) - zero_point) * scale).astype(np.float32)


def _latency(fn, repeats):
    from pynet_bokeh.bench_utils import best_time

    return best_time(fn, repeats=repeats, warmup=1)


def _named_outputs(out, output_name):
    """Keras outputs keyed as the exported signature names them (see `_endpoint`)."""
    if isinstance(out, dict):
        return {re.sub(r"[^A-Za-z0-9_]", "_", k): v for k, v in out.items()}
    if isinstance(out, list | tuple):
        return {f"{output_name}_{i}": v for i, v in enumerate(out)}
    return {output_name: out}


def parity_check(model, tflite_path, feeds, repeats=3, num_threads=None, output_name=OUTPUT_NAME):
    """Keras vs LiteRT on `feeds` ({name: [1, H, W, C]}): max abs diff, PSNR, latencies.

    `model` is what was exported (a keras model or callable). Every output is compared raw
    (not clipped), PSNR with a peak of 1.0; the top-level numbers are the worst output's, and
    "per_output" holds each one's.
    """
    interpreter = make_interpreter(tflite_path, num_threads)
    names = list(feeds)
    tensors = {k: tf.constant(np.asarray(v, np.float32)) for k, v in feeds.items()}
    if isinstance(model, keras.Model):
        arg = tensors[names[0]] if len(names) == 1 else tensors
        keras_fn = tf.function(lambda: model(arg, training=False))
    else:
        keras_fn = tf.function(lambda: model(**tensors))
    expected = {k: np.asarray(v) for k, v in _named_outputs(keras_fn(), output_name).items()}
    got = run_tflite(interpreter, feeds)
    if set(got) != set(expected):
        raise RuntimeError(f"LiteRT outputs {sorted(got)} != Keras outputs {sorted(expected)}")
    per_output = {}
    for name in sorted(got):
        if got[name].shape != expected[name].shape:
            raise RuntimeError(
                f"output {name!r}: LiteRT shape {got[name].shape} != Keras {expected[name].shape}"
            )
        diff = np.abs(got[name].astype(np.float64) - expected[name])
        mse = float(np.mean(diff**2))
        per_output[name] = {
            "max_abs_diff": float(diff.max()),
            "psnr_db": float("inf") if mse == 0 else float(10 * np.log10(1.0 / mse)),
            "shape": [int(d) for d in got[name].shape],
        }
    first = (
        per_output[output_name] if output_name in per_output else next(iter(per_output.values()))
    )
    return {
        "max_abs_diff": max(p["max_abs_diff"] for p in per_output.values()),
        "psnr_db": min(p["psnr_db"] for p in per_output.values()),
        "keras_latency_s": _latency(lambda: tf.nest.map_structure(np.asarray, keras_fn()), repeats),
        "tflite_latency_s": _latency(lambda: run_tflite(interpreter, feeds), repeats),
        "tflite_threads": num_threads or os.cpu_count() or 1,
        "input_shape": [int(d) for d in np.shape(feeds[names[0]])],
        "output_shape": first["shape"],
        **({"per_output": per_output} if len(per_output) > 1 else {}),
    }
