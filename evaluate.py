"""Metrics and a visual report for a bokeh model, beside the identity and classical baselines.

    # An EBB!-layout test split, with targets: PSNR / SSIM / MS-SSIM, CSV, JSON, report, panels
    python evaluate.py --weights runs/level_1/final.weights.h5 \
        --dataset_dir EBB --split test --out_dir eval/pynet_l1
    # the authors' checkpoint, compared with a second one in the same report
    python evaluate.py --tf1_checkpoint models/original/pynet_bokeh_level_0 \
        --compare_weights runs/level_1/final.weights.h5 --dataset_dir EBB --out_dir eval/cmp
    # photos + depth maps without targets: outputs and panels only
    python evaluate.py --weights final.weights.h5 --photos_dir shots/ --out_dir eval/shots

Inference is at full resolution (reflection padding to a multiple of 32, cropped back).
Scores follow the authors (32-px border removed; --protocol aim2020 scores a centre crop).
"""

from absl import app, flags, logging

FLAGS = flags.FLAGS
flags.DEFINE_enum("model", "pynet", ["pynet"], "Which network the checkpoint holds.")
flags.DEFINE_string("weights", None, "This package's weights file (.weights.h5 / .keras).")
flags.DEFINE_string("tf1_checkpoint", None, "The authors' TF1 checkpoint prefix instead.")
flags.DEFINE_string("compare_weights", None, "A second weights file, scored in the same report.")
flags.DEFINE_string("compare_tf1_checkpoint", None, "A second TF1 checkpoint prefix to compare.")
flags.DEFINE_string("dataset_dir", None, "EBB!-layout root (ROOT/<split>/original, ...).")
flags.DEFINE_string("split", "test", "Split of --dataset_dir to score.")
flags.DEFINE_string("photos_dir", None, "Photos without targets (instead of --dataset_dir).")
flags.DEFINE_string("depth_dir", None, "Depth maps for --photos_dir (default: found beside).")
flags.DEFINE_integer("level", 1, "PyNET level to run (1 = full size; others upsampled).")
flags.DEFINE_string("out_dir", None, "Folder for the CSV, JSON, report and panels.")
flags.DEFINE_integer("num_panels", 4, "Side-by-side panels for the first N images.")
flags.DEFINE_integer("limit", None, "Evaluate only the first N images.")
flags.DEFINE_list("baselines", ["identity", "classical"], "Baselines to score (empty: none).")
flags.DEFINE_enum(
    "protocol", "ebb", ["ebb", "aim2020"], "ebb: border removed; aim2020: centre crop."
)
flags.DEFINE_integer("border", 32, "Border (px) removed before scoring (protocol ebb).")
flags.DEFINE_list("crop_size", ["1024", "1024"], "H,W of the centre crop (protocol aim2020).")
flags.DEFINE_bool("save_outputs", None, "Write every output PNG (default: only with --photos_dir).")


def load_renderer(model, weights, tf1_checkpoint, level):
    """Dispatch point for --model: returns (method label, renderer(photo, depth) -> image).

    Add another network here (e.g. "deeplens") with its own loader and renderer.
    """
    from pathlib import Path

    from pynet_bokeh import evaluation

    if model == "pynet":
        from pynet_bokeh.checkpoints import load_pynet

        net = load_pynet(weights=weights, tf1_checkpoint=tf1_checkpoint)
        label = f"pynet L{level} ({Path(weights or tf1_checkpoint).name})"
        return label, evaluation.model_renderer(net, level)
    raise app.UsageError(f"--model {model!r} has no loader in evaluate.load_renderer")


def main(argv):
    del argv
    from pynet_bokeh import evaluation

    if FLAGS.out_dir is None:
        raise app.UsageError("--out_dir is required")
    if (FLAGS.dataset_dir is None) == (FLAGS.photos_dir is None):
        raise app.UsageError("give exactly one of --dataset_dir (with targets) or --photos_dir")
    unknown = set(FLAGS.baselines) - set(evaluation.baseline_renderers())
    if unknown:
        raise app.UsageError(f"--baselines: unknown {sorted(unknown)}; use identity, classical")
    try:
        crop_size = tuple(int(v) for v in FLAGS.crop_size)
        assert len(crop_size) == 2
    except (ValueError, AssertionError):
        raise app.UsageError(f"--crop_size must be H,W, got {FLAGS.crop_size}") from None

    if FLAGS.dataset_dir is not None:
        samples = evaluation.dataset_samples(FLAGS.dataset_dir, FLAGS.split, FLAGS.limit)
        source = f"{FLAGS.dataset_dir} ({FLAGS.split})"
    else:
        samples = evaluation.folder_samples(FLAGS.photos_dir, FLAGS.depth_dir, FLAGS.limit)
        source = FLAGS.photos_dir

    renderers, settings = {}, {"model": FLAGS.model, "level": FLAGS.level}
    checkpoints = [(FLAGS.weights, FLAGS.tf1_checkpoint, "checkpoint")]
    if FLAGS.compare_weights or FLAGS.compare_tf1_checkpoint:
        checkpoints.append((FLAGS.compare_weights, FLAGS.compare_tf1_checkpoint, "compare"))
    for weights, tf1, key in checkpoints:
        label, render = load_renderer(FLAGS.model, weights, tf1, FLAGS.level)
        if label in renderers:
            label += f" [{key}]"
        renderers[label] = render
        settings[key] = weights or tf1
    for name in FLAGS.baselines:
        renderers[name] = evaluation.baseline_renderers()[name]

    save = FLAGS.save_outputs if FLAGS.save_outputs is not None else FLAGS.photos_dir is not None
    logging.info("Evaluating %d images with %s", len(samples), ", ".join(renderers))
    summary = evaluation.evaluate(
        renderers,
        samples,
        FLAGS.out_dir,
        num_panels=FLAGS.num_panels,
        protocol=FLAGS.protocol,
        border=FLAGS.border,
        crop_size=crop_size,
        save_outputs=save,
        source=source,
        settings=settings,
    )
    print(f"\n{summary['count']} images -> {FLAGS.out_dir}/report.md")
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
    app.run(main)


if __name__ == "__main__":
    run()
