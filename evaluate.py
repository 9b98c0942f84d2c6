"""Metrics and a visual report for a bokeh model, beside the identity and classical baselines.

    # An EBB!-layout test split, with targets: PSNR / SSIM / MS-SSIM, CSV, JSON, report, panels
    python evaluate.py --weights runs/pynet/level_1/final.weights.h5 \
        --dataset_dir EBB --split test --out_dir eval/pynet_l1
    # the authors' checkpoint, compared with a second one in the same report
    python evaluate.py --tf1_checkpoint models/original/pynet_bokeh_level_0 \
        --compare_weights runs/pynet/level_1/final.weights.h5 --dataset_dir EBB --out_dir eval/cmp
    # photos + depth maps without targets: outputs and panels only
    python evaluate.py --weights final.weights.h5 --photos_dir shots/ --out_dir eval/shots

Inference is at full resolution (reflection padding to a multiple of 32, cropped back).
Scores follow the authors (32-px border removed; --protocol aim2020 scores a centre crop).
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
        "Which network the checkpoint holds (deeplens: focus at the photo's centre, "
        "--aperture; bradcn: --weights from train_level.py, its own depth).",
        flag_values=fv,
    )
    flags.DEFINE_float("aperture", 0.5, "DeepLens aperture in [0, 1].", flag_values=fv)
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
        "compare_weights", None, "A second weights file, scored in the same report.", flag_values=fv
    )
    flags.DEFINE_string(
        "compare_tf1_checkpoint", None, "A second TF1 checkpoint prefix to compare.", flag_values=fv
    )
    flags.DEFINE_string(
        "dataset_dir", None, "EBB!-layout root (ROOT/<split>/original, ...).", flag_values=fv
    )
    flags.DEFINE_string("split", "test", "Split of --dataset_dir to score.", flag_values=fv)
    flags.DEFINE_string(
        "photos_dir", None, "Photos without targets (instead of --dataset_dir).", flag_values=fv
    )
    flags.DEFINE_string(
        "depth_dir", None, "Depth maps for --photos_dir (default: found beside).", flag_values=fv
    )
    flags.DEFINE_integer(
        "level", 1, "PyNET level to run (1 = full size; others upsampled).", flag_values=fv
    )
    flags.DEFINE_string(
        "out_dir", None, "Folder for the CSV, JSON, report and panels.", flag_values=fv
    )
    flags.DEFINE_integer(
        "num_panels", 4, "Side-by-side panels for the first N images.", flag_values=fv
    )
    flags.DEFINE_integer("limit", None, "Evaluate only the first N images.", flag_values=fv)
    flags.DEFINE_list(
        "baselines", ["identity", "classical"], "Baselines to score (empty: none).", flag_values=fv
    )
    flags.DEFINE_enum(
        "protocol",
        "ebb",
        ["ebb", "aim2020"],
        "ebb: border removed; aim2020: centre crop.",
        flag_values=fv,
    )
    flags.DEFINE_integer(
        "border", 32, "Border (px) removed before scoring (protocol ebb).", flag_values=fv
    )
    flags.DEFINE_list(
        "crop_size", ["1024", "1024"], "H,W of the centre crop (protocol aim2020).", flag_values=fv
    )
    flags.DEFINE_bool(
        "save_outputs",
        None,
        "Write every output PNG (default: only with --photos_dir).",
        flag_values=fv,
    )
    return fv


def load_renderer(model, weights, tf1_checkpoint, level, aperture=0.5, config="paper"):
    """Dispatch point for --model: returns (method label, renderer(photo, depth) -> image).

    Another network goes here with its own loader and renderer.
    """
    from pathlib import Path

    from pynet_bokeh import evaluation

    if model == "pynet":
        from pynet_bokeh.checkpoints import load_pynet

        net = load_pynet(weights=weights, tf1_checkpoint=tf1_checkpoint)
        label = f"pynet L{level} ({Path(weights or tf1_checkpoint).name})"
        return label, evaluation.model_renderer(net, level)
    if (weights is None) == (tf1_checkpoint is None):
        raise app.UsageError(f"--model {model} needs exactly one of --weights / --tf1_checkpoint")
    name = Path(weights or tf1_checkpoint).name
    if model == "deeplens":
        from pynet_bokeh import image_io
        from pynet_bokeh.models.deeplens import (
            build_deeplens,
            load_deeplens_checkpoint,
            render_deeplens,
        )

        net = load_deeplens_checkpoint(build_deeplens(), weights or tf1_checkpoint)

        def render(photo, depth):
            # DeepLens predicts its own depth and caps the long side at 1280: back to full size.
            image, _ = render_deeplens(net, photo, aperture=aperture)
            return np.clip(image_io.resize_bicubic(image, photo.shape[:2]), 0.0, 1.0)

        return f"deeplens A={aperture:g} ({name})", render
    if model == "bradcn":
        if weights is None:
            raise app.UsageError(
                "--model bradcn takes --weights (train_level.py's final.weights.h5)"
            )
        from pynet_bokeh.models.bradcn import load_bradcn
        from pynet_bokeh.renderers.bradcn import render_bradcn

        net = load_bradcn(weights, config=config)
        return f"bradcn ({name})", lambda photo, depth: render_bradcn(net, photo)
    raise app.UsageError(f"--model {model!r} has no loader in evaluate.load_renderer")


def main(argv, flag_values=FLAGS):
    """The program; `flag_values` holds the parsed flags (see `define_flags`)."""
    del argv
    opts = flag_values
    from pynet_bokeh import evaluation

    if opts.out_dir is None:
        raise app.UsageError("--out_dir is required")
    if (opts.dataset_dir is None) == (opts.photos_dir is None):
        raise app.UsageError("give exactly one of --dataset_dir (with targets) or --photos_dir")
    unknown = set(opts.baselines) - set(evaluation.baseline_renderers())
    if unknown:
        raise app.UsageError(f"--baselines: unknown {sorted(unknown)}; use identity, classical")
    try:
        crop_size = tuple(int(v) for v in opts.crop_size)
        assert len(crop_size) == 2
    except (ValueError, AssertionError):
        raise app.UsageError(f"--crop_size must be H,W, got {opts.crop_size}") from None

    if opts.dataset_dir is not None:
        samples = evaluation.dataset_samples(opts.dataset_dir, opts.split, opts.limit)
        source = f"{opts.dataset_dir} ({opts.split})"
    else:
        samples = evaluation.folder_samples(opts.photos_dir, opts.depth_dir, opts.limit)
        source = opts.photos_dir

    renderers, settings = {}, {"model": opts.model, "level": opts.level}
    checkpoints = [(opts.weights, opts.tf1_checkpoint, "checkpoint")]
    if opts.compare_weights or opts.compare_tf1_checkpoint:
        checkpoints.append((opts.compare_weights, opts.compare_tf1_checkpoint, "compare"))
    for weights, tf1, key in checkpoints:
        label, render = load_renderer(
            opts.model, weights, tf1, opts.level, aperture=opts.aperture, config=opts.bradcn_config
        )
        if label in renderers:
            label += f" [{key}]"
        renderers[label] = render
        settings[key] = weights or tf1
    for name in opts.baselines:
        renderers[name] = evaluation.baseline_renderers()[name]

    save = opts.save_outputs if opts.save_outputs is not None else opts.photos_dir is not None
    logging.info("Evaluating %d images with %s", len(samples), ", ".join(renderers))
    summary = evaluation.evaluate(
        renderers,
        samples,
        opts.out_dir,
        num_panels=opts.num_panels,
        protocol=opts.protocol,
        border=opts.border,
        crop_size=crop_size,
        save_outputs=save,
        source=source,
        settings=settings,
    )
    print(f"\n{summary['count']} images -> {opts.out_dir}/report.md")
    for name, m in summary["methods"].items():
        if summary["has_targets"]:
            print(
                f"  {name:40s} PSNR {m['psnr']:.2f} dB  SSIM {m['ssim']:.4f}  "
                f"MS-SSIM {m['ms_ssim']:.4f}  {m['seconds']:.2f} s/image"
            )
        else:
            print(f"  {name:40s} {m['seconds']:.2f} s/image")
    if summary["failures"]:
        print(f"  {len(summary['failures'])} image(s) failed: see report.md")


def run():
    define_flags()
    app.run(main)


if __name__ == "__main__":
    run()
