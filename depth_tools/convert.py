"""Convert MegaDepth's PyTorch weights (.pth, legacy or zip format) to Keras ``.weights.h5``.

    depth-tools-convert --pth best_generalization_net_G.pth
    # -> best_generalization_net_G.weights.h5 beside it (or --output PATH)

No PyTorch needed. The converted file loads with ``load_megadepth_weights(model, path)`` or
``build_megadepth().load_weights(path)``.
"""

from __future__ import annotations

from pathlib import Path

from absl import app, flags

from depth_tools._files import atomic_path


def define_flags(fv=flags.FLAGS):
    """Declare this CLI's flags on ``fv`` (at run time, so that importing the module into a
    process with other absl apps, e.g. a test session, defines nothing)."""
    flags.DEFINE_string(
        "pth",
        None,
        "MegaDepth PyTorch weights, e.g. best_generalization_net_G.pth.",
        flag_values=fv,
    )
    flags.DEFINE_string(
        "output",
        None,
        "Where to write the Keras weights (must end in .weights.h5); default: the .pth path "
        "with .weights.h5 instead of .pth.",
        flag_values=fv,
    )
    flags.DEFINE_bool("overwrite", False, "Replace --output if it exists.", flag_values=fv)


def default_output(pth):
    """``net_G.pth`` -> ``net_G.weights.h5`` beside it."""
    pth = Path(pth)
    return pth.with_name(pth.stem + ".weights.h5")


def convert_pth(pth, output=None, overwrite=False, model=None):
    """Load ``pth`` into ``model`` (default: a new ``build_megadepth()``) and save its weights
    to ``output`` atomically. Returns the output path."""
    from depth_tools.megadepth import build_megadepth, load_megadepth_weights

    output = Path(output) if output else default_output(pth)
    if not output.name.endswith(".weights.h5"):
        raise ValueError(f"--output {output}: the file name must end in .weights.h5")
    if output.exists() and not overwrite:
        raise FileExistsError(f"--output {output} exists: pass --overwrite to replace it")
    model = load_megadepth_weights(model or build_megadepth(), pth)
    with atomic_path(output, suffix=".weights.h5") as tmp:  # Keras insists on the suffix
        model.save_weights(tmp, overwrite=True)
    return output


def main(argv, fv=flags.FLAGS):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments {argv[1:]}; use --pth and --output")
    if not fv.pth:
        raise app.UsageError("--pth is required: the MegaDepth .pth file to convert")
    try:
        out = convert_pth(fv.pth, fv.output, fv.overwrite)
    except (OSError, KeyError, ValueError) as err:  # bad paths or a file that is not net_G
        raise SystemExit(f"depth-tools-convert: error: {err}") from err
    print(f"wrote {out} (MegaDepth hourglass, 5,357,153 parameters + BatchNorm statistics)")


def run():
    define_flags()
    app.run(main)


if __name__ == "__main__":
    run()
