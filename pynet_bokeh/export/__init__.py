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
             + depth maps; by default the model's input and output stay float32 (a QUANTIZE op
             at the start and a DEQUANTIZE at the end), so the app feeds the same tensors as
             "none"; io_type="int8" / "uint8" gives integer I/O for NPUs, with each tensor's
             scale and zero point in the JSON. Before calibration, PyNET's concatenated
             upsampling branches are rescaled to their concatenation's range (`equalize`),
             and float_nodes keeps chosen ops in float (selective quantization).

`model` may be a full PyNET (its `level` output is exported), any single- or multi-input
keras.Model, or a callable (e.g. a `tf.function`) with `input_specs`; see `export_tflite`.
"""

from pynet_bokeh.export.convert import (
    IO_TYPES,
    QUANTIZATIONS,
    FlexOpsError,
    check_builtin_ops,
    convert_saved_model,
    io_quantization,
    op_names,
)
from pynet_bokeh.export.equalize import equalize_concat_ranges, equalized_copy
from pynet_bokeh.export.litert import make_interpreter, parity_check, run_tflite
from pynet_bokeh.export.pipeline import CONTROL_SPECS, photo_to_bokeh_spec
from pynet_bokeh.export.samples import (
    find_photo_depth_pairs,
    fit_to_size,
    photo_samples,
    synthetic_samples,
)
from pynet_bokeh.export.savedmodel import (
    OUTPUT_NAME,
    PYNET_INPUT_NAME,
    InstanceNorm4D,
    default_input_specs,
    serving_model,
    with_4d_instance_norm,
    write_saved_model,
)
from pynet_bokeh.export.tflite import (
    DEPTH_ENCODING,
    EBB_INPUT_SIZE,
    export_tflite,
    metadata_path,
    pynet_io_description,
)

__all__ = [
    "CONTROL_SPECS",
    "DEPTH_ENCODING",
    "EBB_INPUT_SIZE",
    "IO_TYPES",
    "OUTPUT_NAME",
    "PYNET_INPUT_NAME",
    "QUANTIZATIONS",
    "FlexOpsError",
    "InstanceNorm4D",
    "check_builtin_ops",
    "convert_saved_model",
    "default_input_specs",
    "equalize_concat_ranges",
    "equalized_copy",
    "export_tflite",
    "find_photo_depth_pairs",
    "fit_to_size",
    "io_quantization",
    "make_interpreter",
    "metadata_path",
    "op_names",
    "parity_check",
    "photo_samples",
    "photo_to_bokeh_spec",
    "pynet_io_description",
    "run_tflite",
    "serving_model",
    "synthetic_samples",
    "with_4d_instance_norm",
    "write_saved_model",
]
