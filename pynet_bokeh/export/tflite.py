"""`export_tflite`: trace, convert, check builtin ops, write the file and its JSON, check parity."""

from __future__ import annotations

import json
import logging
import tempfile
import time
from pathlib import Path

import keras
import tensorflow as tf

from pynet_bokeh.export.convert import (
    IO_TYPES,
    QUANTIZATIONS,
    check_builtin_ops,
    convert_saved_model,
    io_quantization,
    op_names,
)
from pynet_bokeh.export.equalize import equalized_copy
from pynet_bokeh.export.litert import make_interpreter, parity_check
from pynet_bokeh.export.samples import photo_samples, synthetic_samples
from pynet_bokeh.export.savedmodel import (
    OUTPUT_NAME,
    _is_pynet,
    _mobile_graph,
    default_input_specs,
    serving_model,
    write_saved_model,
)
from pynet_bokeh.files import write_bytes_atomic

log = logging.getLogger(__name__)

EBB_INPUT_SIZE = (512, 768)  # half of an EBB! photo (1024 x 1536)
#: Calibration samples run through the float model to set the equalisation scales.
EQUALIZE_SAMPLES = 2

DEPTH_ENCODING = (
    "EBB! depth map: 8-bit single-channel PNG / 255 at the input's (half-resolution) size; "
    "MegaDepth inverse depth, min-max normalised per image, near = bright (1.0), far = dark (0.0)"
)


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
    io_type="float32",
    float_nodes=(),
    equalize=True,
    float_blocks=(),
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
    io_type: int8 only: "float32" (default), "int8" or "uint8" inputs and outputs; the JSON
        records each tensor's scale and zero point (real = scale * (q - zero_point)).
    float_nodes: int8 only: output tensor names of ops kept in float (selective quantization).
    float_blocks: int8 only: PyNET blocks ("level3_mb9") or levels ("level3") whose ops are kept
        in float, added to float_nodes (`int8_search.PYNET_INT8_FLOAT_BLOCKS`: the set that keeps
        full int8 at >= 35 dB, docs/android.md section 8).
    equalize: int8 only: rescale PyNET's concatenated upsampling branches to their
        concatenation's range first (`equalize.equalize_concat_ranges`; same float function).

    Returns the JSON's content (a dict): input/output layout, quantization, file size, op list
    and, when checked, the parity numbers. Raises FlexOpsError for non-builtin ops.
    """
    output = Path(output)
    if output.suffix != ".tflite":
        raise ValueError(f"output {output} must end with .tflite")
    if quantization not in QUANTIZATIONS:
        raise ValueError(f"quantization must be one of {QUANTIZATIONS}, got {quantization!r}")
    if io_type not in IO_TYPES:
        raise ValueError(f"io_type must be one of {IO_TYPES}, got {io_type!r}")
    if quantization != "int8" and io_type != "float32":
        raise ValueError(f"io_type {io_type!r} needs quantization='int8'")
    if quantization != "int8" and float_blocks:
        raise ValueError("float_blocks needs quantization='int8'")
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
        scales = trace_for_conversion(
            net,
            tmp,
            input_specs,
            output_name,
            track,
            equalize_samples=samples if quantization == "int8" and equalize else None,
        )
        if float_blocks:
            float_nodes = (*float_nodes, *_nodes_of_blocks(tmp, float_blocks))
        log.info("Converting to TFLite (%s) ...", quantization)
        content = convert_saved_model(
            tmp,
            quantization,
            (lambda: iter(samples)) if quantization == "int8" else None,
            io_type=io_type,
            float_nodes=tuple(float_nodes),
        )
    ops = op_names(content)
    check_builtin_ops(ops, f"the converted model {output}")
    write_bytes_atomic(output, content)
    io = io_quantization(content)
    info = {
        "file": output.name,
        "size_bytes": output.stat().st_size,
        "quantization": quantization,
        "level": level if is_pynet else None,
        "inputs": [
            {
                "name": name,
                "shape": [-1 if d is None else int(d) for d in spec.shape],
                **io["inputs"].get(name, {"dtype": "float32"}),
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
            **io["outputs"][name],
            "layout": "NHWC",
        }
        for name, details in outputs.items()
    ]
    if quantization == "int8":
        info["int8"] = {
            "io_type": io_type,
            "float_nodes": list(float_nodes),
            "float_blocks": list(float_blocks),
            "equalized_branches": {k: v for k, v in scales.items() if v != 1.0},
            "calibration_samples": len(samples),
        }
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


def _nodes_of_blocks(saved_model_dir, blocks):
    """The op output names (as the quantization debugger names them: the float model's) of
    `blocks` in the traced model; ValueError naming the blocks when none of its ops is in them."""
    from pynet_bokeh.export.int8_search import block_of, float_nodes_of, op_outputs

    nodes = op_outputs(convert_saved_model(saved_model_dir, "none"))
    chosen = float_nodes_of(nodes, blocks)
    if not chosen:
        known = sorted({b for b in (block_of(n) for _, n in nodes) if b})
        raise ValueError(
            f"float_blocks {','.join(blocks)}: no op of the model is in them (its blocks: "
            f"{', '.join(known) or 'none'})"
        )
    return chosen


def trace_for_conversion(
    net, directory, input_specs, output_name=OUTPUT_NAME, track=(), equalize_samples=None
):
    """Writes `net` as the SavedModel the converter reads (4-D instance norms); with
    `equalize_samples` ({name: array} dicts) its concatenated branches are equalised first.
    Returns {transposed conv name: equalisation scale} ({} without equalisation)."""
    log.info("Tracing the model to a SavedModel ...")
    exported = _mobile_graph(net)
    scales = {}
    if equalize_samples and isinstance(exported, keras.Model):
        log.info("Equalising the ranges of concatenated branches ...")
        exported, scales = equalized_copy(
            exported, [next(iter(s.values())) for s in equalize_samples[:EQUALIZE_SAMPLES]]
        )
    write_saved_model(exported, directory, input_specs, output_name, track)
    return scales


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
