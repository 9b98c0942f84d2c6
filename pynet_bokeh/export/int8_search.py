"""One int8 calibration, many float sets: per-layer error statistics of the converter's
quantization debugger, and selective-float variants of a model without calibrating again
(calibration is most of an int8 conversion's time).

    calibrated = CalibratedInt8(pynet, [{"image_depth": x} for x in photos], 128, 192)
    stats = calibrated.layer_statistics()          # {tensor: {"rmse/scale": ..., ...}}
    content = calibrated.quantize(float_nodes_of(calibrated.nodes, ["level3_mb9"]))
"""

from __future__ import annotations

import csv
import io
import math
import re
import tempfile

import tensorflow as tf

from pynet_bokeh.export.convert import int8_debugger
from pynet_bokeh.export.litert import make_interpreter
from pynet_bokeh.export.savedmodel import default_input_specs, serving_model
from pynet_bokeh.export.tflite import trace_for_conversion

__all__ = ["PYNET_INT8_FLOAT_BLOCKS", "CalibratedInt8", "block_of", "float_nodes_of", "op_outputs"]

#: PyNET blocks kept in float by `bench/export.py`'s int8-mixed variant: the smallest set found
#: (debugger ablation, then adding the best blocks one at a time) that keeps full int8 at
#: >= 35 dB against Keras float32 on the seed-0 fixture weights (docs/android.md, section 8).
PYNET_INT8_FLOAT_BLOCKS = (
    "level3_enc",
    "level3_mb2",
    "level3_mb5",
    "level3_mb6",
    "level3_mb7",
    "level3_mb8",
    "level3_mb9",
)

# A node (op output tensor) is named after the Keras layer that made it, e.g.
# "pynet_level1_1/level3_mb5_conv9a_1/convolution": its block is "level3_mb5".
_BLOCK = re.compile(r"(level\d_(?:[a-z]+\d*))")


def op_outputs(model_content):
    """[(op name, output tensor name)] of a TFLite model (bytes or path), in execution order."""
    interpreter = make_interpreter(model_content, default_delegates=False)
    tensors = interpreter.get_tensor_details()
    return [
        (op["op_name"], tensors[op["outputs"][0]]["name"])
        for op in interpreter._get_ops_details()
        if len(op["outputs"])
    ]


def block_of(node):
    """The PyNET block a node belongs to ("level3_mb5", "level4_up_a" -> "level4_up", ...), or
    None for nodes outside the named blocks (the input's space-to-depth)."""
    found = _BLOCK.findall(node)
    return found[-1] if found else None


def float_nodes_of(nodes, blocks):
    """Output tensor names, among `nodes` ([(op, name)] or names), of the ops of `blocks`
    (block names as `block_of` gives them, e.g. "level3_mb9", or whole levels: "level3")."""
    names = [n[1] if isinstance(n, tuple) else n for n in nodes]
    wanted = set(blocks)
    chosen = []
    for name in names:
        block = block_of(name)
        if block is not None and (block in wanted or block.split("_")[0] in wanted):
            chosen.append(name)
    return chosen


class CalibratedInt8:
    """`model`'s level-`level` output, traced as `export_tflite` traces it (4-D instance norms,
    equalised branches) and calibrated once for full int8 on `calibration_data` ({input name:
    [1, H, W, C]} dicts) at height x width."""

    def __init__(self, model, calibration_data, height, width, level=1, equalize=True):
        net = serving_model(model, level)
        samples = list(calibration_data)
        specs = default_input_specs(net, height, width, False)
        with tempfile.TemporaryDirectory(prefix="pynet_int8_") as tmp:
            self.equalized_branches = trace_for_conversion(
                net, tmp, specs, equalize_samples=samples if equalize else None
            )
            self.debugger = int8_debugger(tmp, lambda: iter(samples))
        #: [(op name, output tensor name)] of the calibrated float graph, as the debugger
        #: names nodes (`denylisted_nodes`).
        self.nodes = op_outputs(self.debugger.calibrated_model)

    def quantize(self, float_nodes=()):
        """Full-int8 TFLite bytes (float32 I/O) with the ops of `float_nodes` kept in float."""
        # What the debugger's get_nondebug_quantized_model() runs, without its `options`
        # setter, which would also build and load an instrumented model (twice the time).
        from tensorflow.lite.python import convert as tflite_convert

        return tflite_convert.mlir_quantize(
            self.debugger.calibrated_model,
            disable_per_channel=self.debugger.converter._experimental_disable_per_channel,
            fully_quantize=False,
            enable_numeric_verify=False,
            denylisted_nodes=list(float_nodes),
        )

    def layer_statistics(self):
        """{quantized tensor name: {"rmse/scale", "mse", "scale", ...}}: each op run in int8 on
        the float model's inputs to it, over the calibration data (the debugger's NumericVerify
        statistics). rmse/scale is the error in quantization steps; uniform rounding alone
        gives 1/sqrt(12) = 0.289."""
        self.debugger.options = tf.lite.experimental.QuantizationDebugOptions()
        self.debugger.run()
        dump = io.StringIO()
        self.debugger.layer_statistics_dump(dump)
        stats = {}
        for row in csv.DictReader(io.StringIO(dump.getvalue())):
            values = {}
            for key, value in row.items():
                try:
                    values[key] = float(value)
                except (TypeError, ValueError):
                    values[key] = value
            scale, mse = values.get("scale"), values.get("mean_squared_error")
            if isinstance(scale, float) and isinstance(mse, float) and scale > 0:
                values["rmse/scale"] = math.sqrt(mse) / scale
            stats[row["tensor_name"]] = values
        return stats
