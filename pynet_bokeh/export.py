"""TFLite / LiteRT export: builtin ops only, four quantization modes, a parity check.

    from pynet_bokeh.export import export_tflite
    info = export_tflite(model, "pynet_l1_int8.tflite", quantization="int8",
                         calibration_dir="ebb_samples")   # photos + depth maps
    info["parity"]  # max abs diff, PSNR and CPU latency, Keras vs LiteRT, on a real photo

The path is the one Keras 3 itself uses (`keras.export.ExportArchive` -> SavedModel ->
`tf.lite.TFLiteConverter.from_saved_model`), but with `TFLITE_BUILTINS` only: a model that
needs TensorFlow ("Flex") ops raises `FlexOpsError` naming them, because an Android app would
then have to ship the TF Select runtime. Quantization modes:

- "none":    float32 weights and activations.
- "fp16":    float16 weights (half the file), float32 compute on CPU; GPU delegates run fp16.
- "dynamic": int8 weights, float activations quantized on the fly (dynamic range).
- "int8":    int8 weights and activations (`TFLITE_BUILTINS_INT8`), calibrated on real photos
             + depth maps; the model's input and output stay float32 (a QUANTIZE op at the
             start and a DEQUANTIZE at the end), so the app feeds the same tensors as "none".

`model` may be a full PyNET (its `level` output is exported), any single- or multi-input
keras.Model, or a callable (e.g. a `tf.function`) with `input_specs`; see `export_tflite`.
"""

from __future__ import annotations

import json
import logging
import os
import re
import tempfile
import time
import warnings
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from pynet_bokeh import image_io
from pynet_bokeh.files import write_bytes_atomic

log = logging.getLogger(__name__)

QUANTIZATIONS = ("none", "fp16", "dynamic", "int8")
EBB_INPUT_SIZE = (512, 768)  # half of an EBB! photo (1024 x 1536)
PYNET_INPUT_NAME = "image_depth"
OUTPUT_NAME = "bokeh"

DEPTH_ENCODING = (
    "EBB! depth map: 8-bit single-channel PNG / 255 at the input's (half-resolution) size; "
    "MegaDepth inverse depth, min-max normalised per image, near = bright (1.0), far = dark (0.0)"
)


class FlexOpsError(RuntimeError):
    """The model needs TensorFlow (Flex / custom) ops that TFLite has no builtin kernel for."""

    def __init__(self, message, ops=()):
        super().__init__(message)
        self.ops = tuple(ops)


# ------------------------------------------------------------------------------- the model


def serving_model(model, level=1):
    """The single-output model to export: `level_model(model, level)` for a full PyNET."""
    if isinstance(model, keras.Model) and isinstance(model.output, dict):
        from pynet_bokeh.models.pynet import level_model

        if f"level{level}" not in model.output:
            raise ValueError(
                f"level {level!r}: the model has outputs {sorted(model.output)}; "
                "pass --level 1 (full size) or 2 (the input's size)"
            )
        return level_model(model, level)
    return model


def _is_pynet(model):
    from pynet_bokeh.models.pynet import PyNET

    return isinstance(model, PyNET) or (
        isinstance(model, keras.Model) and re.fullmatch(r"pynet.*_level[1-7]", model.name)
    )


def default_input_specs(model, height, width, dynamic=False):
    """{name: tf.TensorSpec [1, H, W, C]} from a keras.Model's inputs (None, None when dynamic)."""
    if not isinstance(model, keras.Model):
        raise ValueError(
            "a callable that is not a keras.Model needs input_specs={name: tf.TensorSpec(...)}"
        )
    h, w = (None, None) if dynamic else (int(height), int(width))
    specs = {}
    for tensor in model.inputs:
        shape = tuple(tensor.shape)
        if len(shape) != 4:
            raise ValueError(
                f"input {tensor.name!r} has shape {shape}; only NHWC image inputs get default "
                "specs, pass input_specs for others"
            )
        name = PYNET_INPUT_NAME if len(model.inputs) == 1 else _input_name(tensor)
        specs[name] = tf.TensorSpec([1, h, w, shape[-1]], tf.float32, name=name)
    return specs


def _input_name(tensor):
    return re.sub(r"[^A-Za-z0-9_]", "_", tensor.name.split(":")[0])


def _endpoint(model, input_specs, output_name):
    """A function of the named inputs returning {output name: tensor}, for ExportArchive."""
    names = list(input_specs)
    keras_model = isinstance(model, keras.Model)

    def serve(*args):
        feeds = dict(zip(names, args, strict=True))
        if keras_model:
            out = model(args[0] if len(args) == 1 else feeds, training=False)
        else:
            out = model(**feeds)
        if isinstance(out, dict):
            return {re.sub(r"[^A-Za-z0-9_]", "_", k): v for k, v in out.items()}
        if isinstance(out, list | tuple):
            return {f"{output_name}_{i}": v for i, v in enumerate(out)}
        return {output_name: out}

    return serve, [input_specs[n] for n in names]


def write_saved_model(model, directory, input_specs, output_name=OUTPUT_NAME, track=()):
    """Writes `model` as a SavedModel with one `serving_default` signature of the named inputs.

    `track`: keras layers / models whose variables a plain callable uses (a keras.Model is
    tracked by itself).
    """
    archive = keras.export.ExportArchive()
    tracked = [model] if isinstance(model, keras.layers.Layer) else list(track)
    for obj in tracked:
        archive.track(obj)
    fn, signature = _endpoint(model, input_specs, output_name)
    archive.add_endpoint("serving_default", fn, input_signature=signature)
    archive.write_out(os.fspath(directory), verbose=False)
    return directory


@keras.saving.register_keras_serializable(package="pynet_bokeh")
class InstanceNorm4D(keras.layers.Layer):
    """Instance norm on 4-D tensors only: the export-time twin of
    `GroupNormalization(groups=-1)` (same weights: gamma, beta).

    Keras's GroupNormalization reshapes to 5-D (N, H, W, groups, 1); the TFLite GPU delegate
    handles at most 4-D tensors, so those ops would fall back to the CPU on a phone.
    """

    def __init__(self, epsilon=1e-3, **kwargs):
        super().__init__(**kwargs)
        self.epsilon = epsilon

    def build(self, input_shape):
        channels = input_shape[-1]
        self.gamma = self.add_weight(shape=(channels,), initializer="ones", name="gamma")
        self.beta = self.add_weight(shape=(channels,), initializer="zeros", name="beta")

    def call(self, x):
        mean = keras.ops.mean(x, axis=(1, 2), keepdims=True)
        variance = keras.ops.mean(keras.ops.square(x - mean), axis=(1, 2), keepdims=True)
        inv = keras.ops.rsqrt(variance + self.epsilon) * self.gamma
        return x * inv + (self.beta - mean * inv)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "epsilon": self.epsilon}


def _is_instance_norm(layer):
    if not isinstance(layer, keras.layers.GroupNormalization):
        return False
    channels = layer.input.shape[-1]
    return layer.axis in (-1, 3) and layer.groups in (-1, channels) and layer.scale and layer.center


def with_4d_instance_norm(model):
    """A copy of a functional `model` whose instance norms are `InstanceNorm4D` (same weights).

    Other layers are shared, not copied. Returns `model` itself when it has no instance norm.
    """
    if not any(_is_instance_norm(layer) for layer in model.layers):
        return model
    replaced = {}

    def clone(layer):
        if _is_instance_norm(layer):
            new = InstanceNorm4D(epsilon=layer.epsilon, name=layer.name)
            replaced[layer.name] = (new, layer)
            return new
        return layer

    copy = keras.models.clone_model(model, clone_function=clone)
    for new, old in replaced.values():
        new.set_weights(old.get_weights())
    return copy


# ------------------------------------------------------------------------------ conversion

_FLEX_OP = re.compile(r"\btf\.([A-Z][A-Za-z0-9]*)\(")
_FLEX_HINTS = ("flex", "custom op", "select tf", "not supported by the native tflite")


def convert_saved_model(directory, quantization="none", representative_data=None):
    """Converts a SavedModel to TFLite bytes with builtin ops only; see the module docstring.

    representative_data: for "int8", a callable returning an iterable of {input name: array}.
    """
    if quantization not in QUANTIZATIONS:
        raise ValueError(f"quantization must be one of {QUANTIZATIONS}, got {quantization!r}")
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
    try:
        with warnings.catch_warnings():
            # The int8 calibrator itself uses the deprecated tf.lite.Interpreter: not our call.
            warnings.filterwarnings("ignore", message=".*tf.lite.Interpreter is deprecated")
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


def run_tflite(interpreter, feeds):
    """Runs the `serving_default` signature on {input name: array}; returns {name: array}.

    Models exported with dynamic=True take any size (the runner resizes the inputs).
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
    return runner(**{k: np.asarray(v, np.float32) for k, v in feeds.items()})


# ------------------------------------------------------------------ photos for calibration


def fit_to_size(x, size):
    """Resizes H x W x C to cover `size` (h, w) keeping the aspect, then centre-crops to it."""
    h, w = x.shape[:2]
    th, tw = int(size[0]), int(size[1])
    scale = max(th / h, tw / w)
    nh, nw = max(th, int(round(h * scale))), max(tw, int(round(w * scale)))
    if (nh, nw) != (h, w):
        x = np.clip(image_io.resize_bicubic(x, (nh, nw)), 0.0, 1.0)
    top, left = (nh - th) // 2, (nw - tw) // 2
    return np.ascontiguousarray(x[top : top + th, left : left + tw])


def find_photo_depth_pairs(folder, depth_dir=None):
    """(photo, depth map) paths in `folder`: its photos (or `images/`'s, or `original/`'s).

    Depth maps are matched by stem as `pynet_bokeh.inference.find_depth_map` does (`depth_dir`,
    else `depth_maps/`, `original_depth/`, `depth/` beside the photos' folder).
    """
    from pynet_bokeh.inference import find_depth_map, list_photos

    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"calibration folder {folder} does not exist")
    for sub in ("images", "original"):
        if (folder / sub).is_dir():
            folder = folder / sub
            break
    photos = list_photos([folder])
    if not photos:
        raise FileNotFoundError(
            f"calibration folder {folder} holds no JPEG/PNG photos; pass a folder of photos with "
            "their EBB! depth maps (e.g. images/ + depth_maps/)"
        )
    return [(p, find_depth_map(p, depth_dir)) for p in photos]


def photo_samples(folder, size, count=None, depth_dir=None):
    """Network inputs (H x W x 4 float32) made from real photos + depth maps in `folder`.

    Each photo goes through the EBB! convention (`image_io.ebb_input`: x0.5 bicubic, depth as the
    4th channel) and is then fitted to `size` (h, w) by `fit_to_size`.
    """
    pairs = find_photo_depth_pairs(folder, depth_dir)[:count]
    samples = []
    for photo_path, depth_path in pairs:
        x = image_io.ebb_input(
            image_io.read_photo(photo_path),
            image_io.read_depth(depth_path),
            depth_name=str(depth_path),
        )
        samples.append(fit_to_size(x, size))
    return samples


def synthetic_samples(size, count=1, seed=0):
    """Network inputs (H x W x 4) from generated scenes (`pynet_bokeh.data.synthetic`)."""
    from pynet_bokeh.data import synthetic

    rng = np.random.default_rng(seed)
    h, w = int(size[0]), int(size[1])
    samples = []
    for _ in range(count):
        layers = synthetic.make_scene(rng, (2 * h, 2 * w))
        photo, _ = synthetic.render_sample(layers, 0.5, 0.0)
        depth, _, _ = synthetic.ebb_depth_map(synthetic.visible_disparity(layers))
        samples.append(image_io.ebb_input(photo, depth))
    return samples


# ----------------------------------------------------------------------------- the export


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


def _mobile_graph(net):
    if not isinstance(net, keras.Model):
        return net
    try:
        return with_4d_instance_norm(net)
    except (ValueError, TypeError) as err:  # a subclassed model cannot be cloned
        log.warning("Instance norms kept as they are (the model cannot be cloned: %s)", err)
        return net


def metadata_path(output):
    """The JSON written next to a .tflite file: `model.tflite` -> `model.json`."""
    return Path(output).with_suffix(".json")


def export_tflite(
    model,
    output,
    quantization="none",
    height=EBB_INPUT_SIZE[0],
    width=EBB_INPUT_SIZE[1],
    dynamic=False,
    calibration_dir=None,
    level=1,
    *,
    input_specs=None,
    track=(),
    output_name=OUTPUT_NAME,
    calibration_data=None,
    num_calibration=16,
    depth_dir=None,
    parity_feeds=None,
    check=True,
    repeats=3,
    num_threads=None,
    metadata=None,
):
    """Exports `model` to `output` (.tflite) and writes `<output stem>.json` beside it.

    model: a full PyNET (its `level` output is exported: 1 = twice the input's size, 2 = the
        input's size; about the same compute, since levels 1-2 are two small layers), a level
        model, any keras.Model, or a callable taking the named inputs as keyword arguments
        (then `input_specs` and `track` are needed). Instance norms of functional models are
        exported as 4-D ops (`with_4d_instance_norm`); the parity check compares with `model`.
    height, width: the fixed input size (default the EBB! 512 x 768; multiples of 32 for
        PyNET); dynamic=True exports [1, None, None, C] instead.
    calibration_dir: photos + EBB! depth maps (e.g. `images/` + `depth_maps/`) for int8
        calibration (`num_calibration` of them) and for the parity check's input;
        `calibration_data` ({name: [1, H, W, C]} dicts) replaces it for other models.
    parity_feeds: the parity check's input ({name: array}); default the first calibration
        sample, else a generated scene. check=False skips the check.
    metadata: extra keys for the JSON (a model-specific description of the inputs).

    Returns the JSON's content (a dict): input/output layout, quantization, file size, op list
    and, when checked, the parity numbers. Raises FlexOpsError for non-builtin ops.
    """
    output = Path(output)
    if output.suffix != ".tflite":
        raise ValueError(f"output {output} must end with .tflite")
    if quantization not in QUANTIZATIONS:
        raise ValueError(f"quantization must be one of {QUANTIZATIONS}, got {quantization!r}")
    net = serving_model(model, level)
    is_pynet = _is_pynet(model)
    if net is model and is_pynet:  # a level model: its name says which level
        level = int(net.name.rsplit("level", 1)[1])
    if input_specs is None:
        if is_pynet and (height % 32 or width % 32):
            raise ValueError(
                f"--height {height} / --width {width}: PyNET needs multiples of 32 "
                "(the EBB! input is 512 x 768)"
            )
        input_specs = default_input_specs(net, height, width, dynamic)
    size = (int(height), int(width))

    samples = calibration_data
    if samples is None and calibration_dir is not None:
        if len(input_specs) != 1:
            raise ValueError(
                "calibration_dir gives RGB + depth images for a single-input model; pass "
                "calibration_data for a model with inputs " + ", ".join(input_specs)
            )
        name = next(iter(input_specs))
        count = num_calibration if quantization == "int8" else 1
        samples = [{name: x[None]} for x in photo_samples(calibration_dir, size, count, depth_dir)]
    if quantization == "int8" and not samples:
        raise ValueError(
            "int8 needs calibration photos: pass --calibration_dir (photos + EBB! depth maps, "
            "e.g. images/ + depth_maps/)"
        )

    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="pynet_export_") as tmp:
        log.info("Tracing the model to a SavedModel ...")
        exported = _mobile_graph(net)
        write_saved_model(exported, tmp, input_specs, output_name, track)
        log.info("Converting to TFLite (%s) ...", quantization)
        content = convert_saved_model(
            tmp, quantization, (lambda: iter(samples)) if quantization == "int8" else None
        )
    ops = op_names(content)
    check_builtin_ops(ops, f"the converted model {output}")
    write_bytes_atomic(output, content)
    info = {
        "file": output.name,
        "size_bytes": output.stat().st_size,
        "quantization": quantization,
        "level": level if is_pynet else None,
        "inputs": [
            {
                "name": name,
                "shape": [-1 if d is None else int(d) for d in spec.shape],
                "dtype": "float32",
                "layout": "NHWC",
            }
            for name, spec in input_specs.items()
        ],
        "ops": ops,
        "conversion_s": round(time.perf_counter() - start, 1),
        "versions": {"tensorflow": tf.__version__, "keras": keras.__version__},
    }
    outputs = make_interpreter(content).get_signature_runner().get_output_details()
    info["outputs"] = [
        {
            "name": name,
            "shape": [int(d) for d in details["shape_signature"]],
            "dtype": "float32",
            "layout": "NHWC",
        }
        for name, details in outputs.items()
    ]
    if is_pynet:
        info.update(pynet_io_description(level, size, dynamic))
    if metadata:
        info.update(metadata)
    # The JSON goes out now, and again with the parity numbers: never a model without its JSON.
    write_bytes_atomic(metadata_path(output), (json.dumps(info, indent=2) + "\n").encode())
    if check:
        feeds = parity_feeds
        if feeds is None:
            if samples:
                feeds = samples[0]
                source = "calibration photo"
            elif len(input_specs) == 1 and next(iter(input_specs.values())).shape[-1] == 4:
                # an RGB + depth input, as PyNET's
                feeds = {next(iter(input_specs)): synthetic_samples(size, 1)[0][None]}
                source = "generated scene (pass calibration_dir for a real photo)"
            else:
                raise ValueError("pass parity_feeds (or calibration_data) to check this model")
        else:
            source = "given"
        info["parity"] = {
            "input": source,
            **parity_check(net, output, feeds, repeats, num_threads, output_name),
        }
        write_bytes_atomic(metadata_path(output), (json.dumps(info, indent=2) + "\n").encode())
    return info


def pynet_io_description(level, size, dynamic):
    """The JSON's description of PyNET's input and output tensors (see docs/android.md)."""
    from pynet_bokeh.models.pynet import level_scale

    scale = level_scale(level)
    h, w = size
    return {
        "model": "pynet",
        "input_description": {
            "channels": ["R", "G", "B", "depth"],
            "range": [0.0, 1.0],
            "rgb": "the photo downscaled x0.5 (bicubic), 8-bit value / 255",
            "depth": DEPTH_ENCODING,
            "size": "dynamic: any H, W multiple of 32" if dynamic else [h, w],
        },
        "output_description": {
            "channels": ["R", "G", "B"],
            "range": "about [-0.08, 1.08] (tanh * 0.58 + 0.5): clip to [0, 1], * 255",
            "scale": scale,
            "size": f"input size x {scale:g}" if dynamic else [int(h * scale), int(w * scale)],
        },
    }
