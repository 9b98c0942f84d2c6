"""Export a bokeh model to TFLite / LiteRT (builtin ops only) and check it against Keras.

    # float32 at the EBB! input size (512 x 768 RGB + depth -> 1024 x 1536)
    python export_tflite.py --weights runs/pynet/level_1/final.weights.h5 --output pynet_l1.tflite
    # the authors' checkpoint, int8 calibrated on real photos + depth maps
    python export_tflite.py --tf1_checkpoint models/original/pynet_bokeh_level_0 \
        --output pynet_l1_int8.tflite --quantization int8 --calibration_dir ebb_samples
    # level 2: output at the input's size (about the same compute: levels 1-2 are two small layers)
    python export_tflite.py --weights final.weights.h5 --level 2 --output pynet_l2.tflite
    # the classical renderer: image, depth map, focus point and K in, bokeh out
    python export_tflite.py --model classical --height 1024 --width 1536 --output classical.tflite
    # photo in, bokeh out: MegaDepth + the renderer in one file (--height/--width: the photo's)
    python export_tflite.py --model classical --depth_model megadepth \
        --depth_weights best_generalization_net_G.pth --height 1024 --width 1536 \
        --output photo_bokeh.tflite

After writing the file it runs one photo (the first of --calibration_dir, else a generated
scene) through Keras and LiteRT and prints size, max abs difference, PSNR and CPU latency;
`<output>.json` beside the model records the tensor layout (see docs/android.md).
"""

import os
import re

from absl import app, flags, logging

from pynet_bokeh.cli import flags as cli_flags
from pynet_bokeh.errors import UsageError

FLAGS = flags.FLAGS


def define_flags(fv=FLAGS):
    """Defines this script's flags on `fv` (the global FLAGS when run as a program).

    Defined on demand rather than at import, so that the scripts (which share flag
    names) can be imported together, e.g. by one test session.
    """
    cli_flags.define_absl(
        fv,
        (
            "method",
            "weights",
            "level",
            "bradcn_config",
            "depth_dir",
            "depth_model",
            "depth_weights",
        ),
    )
    flags.DEFINE_string(
        "output", None, "The .tflite file to write (a .json is written beside it).", flag_values=fv
    )
    flags.DEFINE_enum(
        "quantization", "none", ["none", "fp16", "dynamic", "int8"], "Quantization.", flag_values=fv
    )
    flags.DEFINE_enum(
        "io_type",
        "float32",
        ["float32", "int8", "uint8"],
        "int8 only: type of the model's input and output tensors; int8/uint8 models take and "
        "return integers (scale and zero point in the JSON), for NPUs that need integer I/O.",
        flag_values=fv,
    )
    flags.DEFINE_list(
        "float_nodes",
        [],
        "int8 only: output tensor names of ops to keep in float (selective quantization; "
        "names from the quantization debugger, see docs/android.md).",
        flag_values=fv,
    )
    flags.DEFINE_list(
        "float_blocks",
        [],
        "int8 only: PyNET blocks (level3_mb9) or whole levels (level3) kept in float; "
        "'recommended' = the 7 level-3 blocks that keep full int8 at >= 35 dB against float32 "
        "(docs/android.md, section 8).",
        flag_values=fv,
    )
    flags.DEFINE_integer(
        "height",
        512,
        "Input height: PyNET's input (half the photo's, multiple of 32); the photo's for --model classical and with --depth_model.",
        flag_values=fv,
    )
    flags.DEFINE_integer("width", 768, "Input width (as --height).", flag_values=fv)
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


def load_export_model(opts):
    """(model or callable, keyword arguments for export_tflite) of `--model`: the registry
    method's export spec (its inputs, parity feeds and a description for the JSON)."""
    renderer = cli_flags.renderer_from_flags(opts)
    if getattr(opts, "depth_model", None):
        return photo_to_bokeh_export(opts, renderer)
    if getattr(opts, "depth_weights", None):
        raise UsageError("--depth_weights needs --depth_model (megadepth)")
    return renderer.export_spec(opts.height, opts.width)


def photo_to_bokeh_export(opts, renderer):
    """One graph from the photo (--height x --width) to its bokeh: --depth_model's network,
    its EBB! map conversion and the method's renderer (`pynet_bokeh.export.photo_to_bokeh_spec`)."""
    from depth_tools.megadepth import check_weights_path
    from depth_tools.phone import megadepth_depth_fn
    from pynet_bokeh.export import photo_to_bokeh_spec

    if not opts.depth_weights:
        raise UsageError(
            f"--depth_model {opts.depth_model} needs --depth_weights "
            "(best_generalization_net_G.pth from the MegaDepth project page)"
        )
    try:
        check_weights_path(opts.depth_weights)
        depth_fn, track = megadepth_depth_fn(opts.depth_weights, opts.height, opts.width)
    except (FileNotFoundError, ValueError, KeyError) as err:
        raise UsageError(f"--depth_weights {opts.depth_weights}: {err}") from None
    return photo_to_bokeh_spec(
        depth_fn,
        renderer,
        opts.height,
        opts.width,
        depth_track=track,
        depth_note=f"MegaDepth ({os.path.basename(opts.depth_weights)}) at half the photo's size",
    )


def main(argv, flag_values=FLAGS):
    """The program; `flag_values` holds the parsed flags (see `define_flags`)."""
    del argv
    opts = flag_values
    from pynet_bokeh.export import export_tflite, metadata_path
    from pynet_bokeh.renderers import renderer_class

    if not opts.output or not opts.output.endswith(".tflite"):
        raise UsageError("--output FILE.tflite is required")
    if opts.quantization == "int8" and not opts.calibration_dir:
        raise UsageError(
            "--quantization int8 needs --calibration_dir: a folder of photos with their EBB! "
            "depth maps (e.g. images/ + depth_maps/), as the app will feed them"
        )
    if opts.quantization == "int8" and not renderer_class(opts.method).int8_calibration:
        raise UsageError(
            "--quantization int8 is calibrated on photos + depth maps for PyNET only (an RGB + "
            f"depth input); for --model {opts.method} use none, fp16 or dynamic"
        )
    selective = opts.float_nodes or opts.float_blocks
    if opts.quantization != "int8" and (opts.io_type != "float32" or selective):
        raise UsageError("--io_type, --float_nodes and --float_blocks need --quantization int8")
    if opts.io_type != "float32" and selective:
        raise UsageError("--float_nodes and --float_blocks need --io_type float32")
    float_blocks = []
    for block in opts.float_blocks:
        if block == "recommended":
            from pynet_bokeh.export.int8_search import PYNET_INT8_FLOAT_BLOCKS

            float_blocks += PYNET_INT8_FLOAT_BLOCKS
        elif not re.fullmatch(r"level[1-7](_[a-z]+\d*)?", block):
            raise UsageError(
                f"--float_blocks {block}: not a PyNET block (level3_mb9, level4_up) or level "
                "(level3), nor 'recommended'"
            )
        else:
            float_blocks.append(block)
    model, extra = load_export_model(opts)
    extra.setdefault("level", opts.level)
    logging.info("Exporting %s (%s) ...", opts.method, opts.quantization)
    info = export_tflite(
        model,
        opts.output,
        quantization=opts.quantization,
        height=opts.height,
        width=opts.width,
        dynamic=opts.dynamic,
        calibration_dir=opts.calibration_dir,
        depth_dir=opts.depth_dir,
        num_calibration=opts.num_calibration,
        check=opts.check,
        repeats=opts.repeats,
        num_threads=opts.num_threads,
        io_type=opts.io_type,
        float_nodes=opts.float_nodes,
        float_blocks=tuple(float_blocks),
        **extra,
    )
    print(f"\nWrote {opts.output} ({info['size_bytes'] / 2**20:.1f} MiB, {opts.quantization})")
    for kind, tensors in (("input ", info["inputs"]), ("output", info["outputs"])):
        for tensor in tensors:
            quant = (
                f" (real = {tensor['scale']:.6g} * (q - {tensor['zero_point']}))"
                if "scale" in tensor
                else ""
            )
            print(f"  {kind} {tensor['name']}: {tensor['shape']} {tensor['dtype']} NHWC{quant}")
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
    from pynet_bokeh.cli.errors import absl_main

    define_flags()
    app.run(lambda argv: absl_main(main, argv))


if __name__ == "__main__":
    run()
