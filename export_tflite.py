"""Export a bokeh model to TFLite / LiteRT (builtin ops only) and check it against Keras.

    # float32 at the EBB! input size (512 x 768 RGB + depth -> 1024 x 1536)
    python export_tflite.py --weights runs/pynet/level_1/final.weights.h5 --output pynet_l1.tflite
    # the authors' checkpoint, int8 calibrated on real photos + depth maps
    python export_tflite.py --tf1_checkpoint models/original/pynet_bokeh_level_0 \
        --output pynet_l1_int8.tflite --quantization int8 --calibration_dir ebb_samples
    # level 2: output at the input's size (about the same compute: levels 1-2 are two small layers)
    python export_tflite.py --weights final.weights.h5 --level 2 --output pynet_l2.tflite

After writing the file it runs one photo (the first of --calibration_dir, else a generated
scene) through Keras and LiteRT and prints size, max abs difference, PSNR and CPU latency;
`<output>.json` beside the model records the tensor layout (see docs/android.md).
"""

import numpy as np
from absl import app, flags, logging

FLAGS = flags.FLAGS


def define_flags(fv=FLAGS):
    """Defines this script's flags on `fv` (the global FLAGS when run as a program).

    Defined on demand rather than at import, so that the scripts (which share flag
    names) can be imported together, e.g. by one test session.
    """
    flags.DEFINE_enum(
        "model",
        "pynet",
        ["pynet", "deeplens", "bradcn"],
        "Which network the checkpoint holds. deeplens: --tf1_checkpoint is the authors' release "
        "or --weights a training stage's final.weights.h5; --height/--width are the photo's "
        "size (long side <= 1280). bradcn: --weights is train_level.py's final.weights.h5; "
        "--height/--width the half-size RGB input.",
        flag_values=fv,
    )
    flags.DEFINE_enum(
        "bradcn_config", "paper", ["paper", "tiny"], "BRADCN configuration.", flag_values=fv
    )
    flags.DEFINE_string(
        "weights", None, "This package's weights file (.weights.h5 / .keras).", flag_values=fv
    )
    flags.DEFINE_string(
        "tf1_checkpoint", None, "The authors' TF1 checkpoint prefix instead.", flag_values=fv
    )
    flags.DEFINE_string(
        "output", None, "The .tflite file to write (a .json is written beside it).", flag_values=fv
    )
    flags.DEFINE_enum(
        "quantization", "none", ["none", "fp16", "dynamic", "int8"], "Quantization.", flag_values=fv
    )
    flags.DEFINE_integer(
        "level", 1, "PyNET level: 1 (output 2x the input) or 2 (the input's size).", flag_values=fv
    )
    flags.DEFINE_integer(
        "height", 512, "Input height (half the photo's; multiple of 32).", flag_values=fv
    )
    flags.DEFINE_integer(
        "width", 768, "Input width (half the photo's; multiple of 32).", flag_values=fv
    )
    flags.DEFINE_bool(
        "dynamic",
        False,
        "Export with a dynamic input size instead of --height/--width.",
        flag_values=fv,
    )
    flags.DEFINE_string(
        "calibration_dir",
        None,
        "Photos + EBB! depth maps (int8 calibration, check).",
        flag_values=fv,
    )
    flags.DEFINE_string(
        "depth_dir", None, "Depth maps of --calibration_dir if not found beside.", flag_values=fv
    )
    flags.DEFINE_integer("num_calibration", 16, "Photos used for int8 calibration.", flag_values=fv)
    flags.DEFINE_bool(
        "check", True, "Run the Keras vs LiteRT parity and latency check.", flag_values=fv
    )
    flags.DEFINE_integer(
        "repeats", 3, "Timed runs per engine in the check (best is reported).", flag_values=fv
    )
    flags.DEFINE_integer(
        "num_threads", None, "LiteRT CPU threads (default: all cores).", flag_values=fv
    )
    return fv


def load_export_model(model, weights, tf1_checkpoint, height=512, width=768, config="paper"):
    """Dispatch point for --model: returns (model, extra keyword arguments for export_tflite).

    Another network goes here with its loader, its `input_specs` and a `metadata` description
    of its inputs.
    """
    if model == "pynet":
        from pynet_bokeh.checkpoints import load_pynet

        return load_pynet(weights=weights, tf1_checkpoint=tf1_checkpoint), {}
    if (weights is None) == (tf1_checkpoint is None):
        raise app.UsageError(f"--model {model} needs exactly one of --weights / --tf1_checkpoint")
    if model == "deeplens":
        from pynet_bokeh.models.deeplens import (
            build_deeplens,
            deeplens_export_spec,
            load_deeplens_checkpoint,
        )

        net = load_deeplens_checkpoint(build_deeplens(), weights or tf1_checkpoint)
        return deeplens_export_spec(net, height, width)
    if model == "bradcn":
        if weights is None:
            raise app.UsageError(
                "--model bradcn takes --weights (train_level.py's final.weights.h5)"
            )
        import tensorflow as tf

        from pynet_bokeh.models.bradcn import load_bradcn, render_stage_model

        net = render_stage_model(load_bradcn(weights, config=config))
        specs = {"rgb": tf.TensorSpec([1, height, width, 3], tf.float32, name="rgb")}
        rng = np.random.default_rng(0)
        feeds = {"rgb": rng.random((1, height, width, 3)).astype(np.float32)}
        metadata = {
            "model": "bradcn",
            "inputs_meaning": {"rgb": "RGB photo in [0, 1], NHWC, at half the photo's size"},
            "outputs_meaning": {
                "bokeh": "RGB bokeh in [0, 1] at the input's size; upsample x2 (bilinear) to "
                "the photo's size as the paper does"
            },
        }
        return net, {"input_specs": specs, "parity_feeds": feeds, "metadata": metadata}
    raise app.UsageError(f"--model {model!r} has no loader in export_tflite.load_export_model")


def main(argv, flag_values=FLAGS):
    """The program; `flag_values` holds the parsed flags (see `define_flags`)."""
    del argv
    opts = flag_values
    from pynet_bokeh.export import export_tflite, metadata_path

    if not opts.output or not opts.output.endswith(".tflite"):
        raise app.UsageError("--output FILE.tflite is required")
    if opts.quantization == "int8" and not opts.calibration_dir:
        raise app.UsageError(
            "--quantization int8 needs --calibration_dir: a folder of photos with their EBB! "
            "depth maps (e.g. images/ + depth_maps/), as the app will feed them"
        )
    if opts.model != "pynet" and opts.quantization == "int8":
        raise app.UsageError(
            f"--quantization int8 is calibrated on photos + depth maps for PyNET only; for "
            f"--model {opts.model} use none, fp16 or dynamic"
        )
    model, extra = load_export_model(
        opts.model,
        opts.weights,
        opts.tf1_checkpoint,
        height=opts.height,
        width=opts.width,
        config=opts.bradcn_config,
    )
    logging.info("Exporting %s level %d (%s) ...", opts.model, opts.level, opts.quantization)
    info = export_tflite(
        model,
        opts.output,
        quantization=opts.quantization,
        height=opts.height,
        width=opts.width,
        dynamic=opts.dynamic,
        calibration_dir=opts.calibration_dir,
        level=opts.level,
        depth_dir=opts.depth_dir,
        num_calibration=opts.num_calibration,
        check=opts.check,
        repeats=opts.repeats,
        num_threads=opts.num_threads,
        **extra,
    )
    print(f"\nWrote {opts.output} ({info['size_bytes'] / 2**20:.1f} MiB, {opts.quantization})")
    for tensor in info["inputs"]:
        print(f"  input  {tensor['name']}: {tensor['shape']} float32 NHWC")
    for tensor in info["outputs"]:
        print(f"  output {tensor['name']}: {tensor['shape']} float32 NHWC")
    print(f"  builtin ops: {', '.join(info['ops'])}")
    parity = info.get("parity")
    if parity:
        print(f"Keras vs LiteRT on a {parity['input']} {parity['input_shape']}:")
        print(f"  max abs diff {parity['max_abs_diff']:.3g}, PSNR {parity['psnr_db']:.2f} dB")
        if opts.quantization == "none" and parity["max_abs_diff"] > 1e-4:
            logging.warning("float32 file differs from Keras by more than 1e-4: please report")
        elif opts.quantization != "none" and parity["psnr_db"] < 30:
            logging.warning(
                "%s file is below 30 dB against Keras%s",
                opts.quantization,
                "; calibrate on more / more typical photos" if opts.quantization == "int8" else "",
            )
        k, t = parity["keras_latency_s"], parity["tflite_latency_s"]
        print(
            f"  CPU latency: Keras {k * 1000:.0f} ms, LiteRT {t * 1000:.0f} ms "
            f"({parity['tflite_threads']} threads), LiteRT / Keras speed-up {k / t:.2f}x"
        )
    print(f"Metadata: {metadata_path(opts.output)}")


def run():
    define_flags()
    app.run(main)


if __name__ == "__main__":
    run()
