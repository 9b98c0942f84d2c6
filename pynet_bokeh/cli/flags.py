"""Every command-line flag the commands share, declared once.

A flag is a `Flag` in `SHARED`; `define_absl(fv, names)` declares some on an absl `FlagValues`
(train_level.py, evaluate.py, export_tflite.py) and `add_argparse(parser, names)` on an argparse
parser (`pynet-bokeh render`), with the same names, aliases, defaults and help.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pynet_bokeh.errors import UsageError
from pynet_bokeh.training.config import CHECKPOINT_EVERY, SYNTHETIC_CHECKPOINT_EVERY


@dataclass(frozen=True)
class Flag:
    name: str
    kind: str  # string | integer | float | bool | enum | multi_float
    default: Any
    help: str
    choices: tuple = ()
    aliases: tuple = field(default_factory=tuple)


def _methods():
    from pynet_bokeh.renderers import renderer_names

    return tuple(renderer_names())


_SPECS = [
    # --------------------------------------------------------------- method and weights
    Flag(
        "method",
        "enum",
        "pynet",
        "Bokeh method (see `pynet_bokeh.renderers`).",
        choices=("<methods>",),
        aliases=("model",),
    ),
    Flag(
        "weights",
        "string",
        None,
        "Weights of the method: .weights.h5 / .keras / a training folder, or a TF1 checkpoint "
        "prefix (the authors' PyNET or DeepLens release).",
        aliases=("tf1_checkpoint",),
    ),
    Flag("level", "integer", 1, "PyNET level: 1 = full size (2..7 coarser heads, resized up)."),
    Flag(
        "bradcn_config",
        "enum",
        None,
        "BRADCN configuration (default: tiny with --synthetic, else paper).",
        choices=("paper", "tiny"),
    ),
    Flag(
        "engine",
        "enum",
        None,
        "Classical renderer engine: numpy (the reference, default) or tf (XLA-compiled "
        "stages: several times faster once compiled; the first photo of each size compiles).",
        choices=("numpy", "tf"),
    ),
    # --------------------------------------------------------------- controls
    Flag(
        "focus",
        "string",
        None,
        "Focus point X,Y in the photo's pixels (its depth becomes the in-focus plane).",
    ),
    Flag(
        "focus_disparity",
        "float",
        None,
        "In-focus disparity in [0, 1] (the depth map's value, near = 1) instead of --focus.",
    ),
    Flag(
        "blur",
        "float",
        None,
        "Blur K: circle-of-confusion radius in pixels at full size of a point one unit of "
        "disparity from the focal plane (0 = the photo unchanged).",
    ),
    Flag(
        "aperture",
        "float",
        None,
        "DeepLens aperture in [0, 1] when no --blur is given (K = aperture * 0.05 * long side).",
    ),
    # --------------------------------------------------------------- depth network
    Flag(
        "depth_model",
        "enum",
        None,
        "Depth network put in front of the method (export: one graph from the photo; "
        "--height/--width are then the photo's size).",
        choices=("megadepth",),
    ),
    Flag(
        "depth_weights",
        "string",
        None,
        "Weights of --depth_model: best_generalization_net_G.pth or a .weights.h5 from "
        "depth-tools-convert.",
    ),
    # --------------------------------------------------------------- inputs and outputs
    Flag(
        "depth_dir",
        "string",
        None,
        "Folder of <stem>.png EBB! depth maps (default: a sibling original_depth/ or "
        "depth_maps/ folder).",
    ),
    Flag(
        "output_dir",
        "string",
        None,
        "Folder the outputs are written to.",
        aliases=("out_dir",),
    ),
    Flag(
        "shard",
        "string",
        None,
        "I/N: only every N-th image from I (0-based) of the sorted list, so N processes or "
        "machines given the same inputs cover it once (pynet_bokeh.sharding).",
    ),
    # --------------------------------------------------------------- training
    Flag("stage", "string", None, "Stage of a multi-stage method (DeepLens, BRADCN)."),
    Flag("dataset_dir", "string", None, "Data set root in the EBB! layout (train/, test/)."),
    Flag(
        "synthetic",
        "bool",
        False,
        "Train on a small generated data set (made on first use in --dataset_dir, or in "
        "$XDG_CACHE_HOME/pynet_bokeh) with a small CPU schedule.",
    ),
    Flag("model_dir", "string", "runs/pynet", "Parent folder of the per-level/stage folders."),
    Flag("batch_size", "integer", None, "Batch size (default: the schedule's)."),
    Flag("patch_size", "integer", None, "Input patch side (default: the schedule's)."),
    Flag("steps", "integer", None, "Total training steps (default: the schedule's)."),
    Flag("learning_rate", "float", None, "Adam learning rate (default: the schedule's)."),
    Flag("eval_every", "integer", None, "Evaluate on the test split every N steps."),
    Flag("eval_batches", "integer", 8, "Test batches per evaluation (0: no evaluation)."),
    Flag(
        "checkpoint_every",
        "integer",
        None,
        f"Checkpoint every N steps (default {CHECKPOINT_EVERY}; "
        f"{SYNTHETIC_CHECKPOINT_EVERY} with --synthetic).",
    ),
    Flag("keep_checkpoints", "integer", 3, "How many recent checkpoints to keep."),
    Flag(
        "init_from",
        "string",
        None,
        "Start a fresh run from these weights instead of the previous level's/stage's: a "
        ".weights.h5 file, a training folder, a checkpoint prefix, or a TF1 checkpoint prefix.",
    ),
    Flag(
        "strategy",
        "enum",
        "default",
        "tf.distribute strategy: default (one device), mirrored (all local GPUs), multi_worker "
        "(several hosts, cluster from TF_CONFIG: docs/distributed.md) or tpu.",
        choices=("default", "mirrored", "multi_worker", "tpu"),
    ),
    Flag("mixed_precision", "bool", False, "mixed_float16 compute (losses stay float32)."),
    Flag(
        "run_eagerly",
        "bool",
        False,
        "Run steps eagerly (no tf.function): for debugging and very short runs.",
    ),
    Flag("skip_bad", "bool", False, "Leave out broken pairs instead of stopping."),
    Flag("seed", "integer", 0, "Seed of the data pipeline."),
    # --------------------------------------------------------------- pynet-controllable
    Flag(
        "ebb_dir",
        "string",
        None,
        "pynet-controllable: EBB! root whose pairs join the synthetic set, with the controls "
        "`python -m pynet_bokeh.data.controls EBB/` estimated.",
    ),
    Flag(
        "ebb_fraction",
        "float",
        0.0,
        "pynet-controllable: share of training samples drawn from --ebb_dir (0..1).",
    ),
    # --------------------------------------------------------------- portrait
    Flag("mask", "string", None, "portrait: subject mask file (white = subject)."),
    Flag(
        "segmenter",
        "string",
        None,
        "portrait: keras-hub DeepLabV3 preset folder or handle (person = subject); needs the "
        "extra `portrait`.",
    ),
    Flag(
        "background_blur",
        "enum",
        None,
        "portrait: background blur, gaussian (sigma K/2, as the report) or disc (classical).",
        choices=("gaussian", "disc"),
    ),
    Flag("feather", "float", None, "portrait: feathered mask edge, Gaussian sigma in pixels."),
    Flag("person_class", "integer", None, "portrait: the segmenter's person class (VOC: 15)."),
]
SHARED = {flag.name: flag for flag in _SPECS}


def _choices(flag):
    return _methods() if flag.choices == ("<methods>",) else flag.choices


def define_absl(fv, names, **defaults):
    """Declares the flags `names` on absl FlagValues `fv` (with their aliases); `defaults`
    overrides a flag's default for this command. Returns `fv`."""
    from absl import flags

    for name in names:
        spec = SHARED[name]
        default = defaults.get(name, spec.default)
        if spec.kind == "enum":
            flags.DEFINE_enum(name, default, _choices(spec), spec.help, flag_values=fv)
        elif spec.kind == "multi_float":
            flags.DEFINE_multi_float(name, default, spec.help, flag_values=fv)
        else:
            define = getattr(flags, f"DEFINE_{spec.kind}")
            define(name, default, spec.help, flag_values=fv)
        for alias in spec.aliases:
            flags.DEFINE_alias(alias, name, flag_values=fv)
    return fv


def add_argparse(parser, names, **defaults):
    """Adds the flags `names` to an argparse parser (`--name` and `--alias`), same defaults."""
    types = {"string": str, "integer": int, "float": float}
    for name in names:
        spec = SHARED[name]
        opts = [f"--{name}", *(f"--{a}" for a in spec.aliases)]
        default = defaults.get(name, spec.default)
        if spec.kind == "bool":
            parser.add_argument(*opts, dest=name, action="store_true", help=spec.help)
        elif spec.kind == "enum":
            parser.add_argument(
                *opts, dest=name, default=default, choices=_choices(spec), help=spec.help
            )
        else:
            parser.add_argument(
                *opts, dest=name, type=types[spec.kind], default=default, help=spec.help
            )
    return parser


def parse_focus(text):
    """'X,Y' -> (x, y) floats; UsageError naming --focus otherwise."""
    if text is None:
        return None
    try:
        x, y = (float(v) for v in str(text).split(","))
    except ValueError:
        raise UsageError(
            f"--focus must be X,Y in photo pixels (e.g. 640,360), got {text!r}"
        ) from None
    return x, y


def is_set(opts, name):
    """Whether flag `name` was given on the command line (absl FlagValues or argparse)."""
    try:
        return bool(opts[name].present)
    except (TypeError, KeyError, AttributeError):
        spec = SHARED.get(name)
        return getattr(opts, name, None) != (spec.default if spec else None)


def method_option_flags() -> tuple[str, ...]:
    """Every method's own option flags (`Renderer.option_flags` of the registry), in order."""
    from pynet_bokeh.renderers import renderer_class, renderer_names

    found = []
    for name in renderer_names():
        found += [f for f in renderer_class(name).option_flags.values() if f not in found]
    return tuple(found)


def method_flags() -> tuple[str, ...]:
    """The flags that choose and drive a method: --method, --weights, the shared controls and
    every method's options (commands that render declare these)."""
    return ("method", "weights", "focus", "focus_disparity", "blur", *method_option_flags())


def renderer_from_flags(opts, weights=None):
    """The renderer the flags name: `--method` with `--weights` and the method's options
    (`--level` for pynet, `--bradcn_config`, `--aperture` for deeplens); a method option given
    to a method that does not take it is refused naming the flag."""
    from pynet_bokeh.renderers import get_renderer, renderer_class

    name = opts.method
    cls = renderer_class(name)
    cls.check_controls(**controls_from_flags(opts))  # before any weights are loaded
    options = {}
    for option, flag in cls.option_flags.items():
        if hasattr(opts, flag) and getattr(opts, flag) is not None:
            options[option] = getattr(opts, flag)
    for flag in method_option_flags():
        if flag not in cls.option_flags.values() and _has(opts, flag) and is_set(opts, flag):
            raise UsageError(f"--{flag} does not apply to --method {name}")
    return get_renderer(name, weights if weights is not None else opts.weights, **options)


def _has(opts, name):
    try:
        opts[name]
        return True
    except (TypeError, KeyError, AttributeError):
        return hasattr(opts, name)


def controls_from_flags(opts):
    """{focus, focus_disparity, blur} keyword arguments for `Renderer.render` from the flags."""
    return {
        "focus": parse_focus(getattr(opts, "focus", None)),
        "focus_disparity": getattr(opts, "focus_disparity", None),
        "blur": getattr(opts, "blur", None),
    }
