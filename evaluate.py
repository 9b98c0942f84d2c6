"""Metrics and a visual report for a bokeh method, beside the identity and classical baselines.

    # An EBB!-layout test split, with targets: PSNR / SSIM / MS-SSIM, CSV, JSON, report, panels
    python evaluate.py --weights runs/pynet/level_1/final.weights.h5 \
        --dataset_dir EBB --split test --out_dir eval/pynet_l1
    # the authors' checkpoint, compared with a second one in the same report
    python evaluate.py --tf1_checkpoint models/original/pynet_bokeh_level_0 \
        --compare_weights runs/pynet/level_1/final.weights.h5 --dataset_dir EBB --out_dir eval/cmp
    # photos + depth maps without targets: outputs and panels only
    python evaluate.py --weights final.weights.h5 --photos_dir shots/ --out_dir eval/shots
    # any method of the registry, with the shared controls where it takes them
    python evaluate.py --model classical --blur 24 --dataset_dir EBB --out_dir eval/classical
    # N processes or machines, one shard each (rerun one to resume it), then one report
    python evaluate.py --weights final.weights.h5 --dataset_dir EBB --shard 0/2 --out_dir eval/s0
    python evaluate.py --weights final.weights.h5 --dataset_dir EBB --shard 1/2 --out_dir eval/s1
    python evaluate.py --merge eval/s0,eval/s1 --out_dir eval/all

    # every published protocol in one pass, with LPIPS, on the Val294 split
    python evaluate.py --weights final.weights.h5 --dataset_dir EBB --split val294 \
        --protocol all --lpips_weights alex.pth --lpips_trunk alexnet-owt-7be5be79.pth --out_dir eval/all

Inference is at full resolution (reflection padding to a multiple of 32, cropped back).
--protocol chooses how to score, as each paper's script does (pynet_bokeh/metrics/protocols.py):
ebb (default; 32-px border removed), aim2020 (a centre crop), authors (PyNET-Bokeh's
test_model.py), dmshn (Val294 of Stacked DMSHN / BRViT), ntire2023, bokehlicious, or all.
"""

from absl import app, flags, logging

from pynet_bokeh.cli import flags as cli_flags

FLAGS = flags.FLAGS

EVALUATE_FLAGS = (
    *cli_flags.method_flags(),
    "dataset_dir",
    "depth_dir",
    "output_dir",
    "shard",
)


def define_flags(fv=FLAGS):
    """Defines this script's flags on `fv` (the global FLAGS when run as a program).

    Defined on demand rather than at import, so that the scripts (which share flag
    names) can be imported together, e.g. by one test session.
    """
    cli_flags.define_absl(fv, EVALUATE_FLAGS)
    flags.DEFINE_string(
        "compare_weights", None, "A second weights file, scored in the same report.", flag_values=fv
    )
    flags.DEFINE_alias("compare_tf1_checkpoint", "compare_weights", flag_values=fv)
    flags.DEFINE_string(
        "split",
        "test",
        "Split of --dataset_dir to score: a folder (test, train) or val294 (train/ images "
        "4400..4693, Stacked DMSHN / BRViT / EBokehNet; the authors' weights trained on them).",
        flag_values=fv,
    )
    flags.DEFINE_string(
        "photos_dir", None, "Photos without targets (instead of --dataset_dir).", flag_values=fv
    )
    flags.DEFINE_integer(
        "num_panels", 4, "Side-by-side panels for the first N images.", flag_values=fv
    )
    flags.DEFINE_integer("limit", None, "Evaluate only the first N images.", flag_values=fv)
    flags.DEFINE_bool(
        "control_checks",
        False,
        "Also check the controls on --dataset_dir (a synthetic set with params/*.json): "
        "PSNR/SSIM per blur bucket, refocus gain, monotonic blur (control_checks.md).",
        flag_values=fv,
    )
    flags.DEFINE_list(
        "control_methods",
        [],
        "Extra methods for the control checks, NAME or NAME=WEIGHTS (e.g. pynet=runs/pynet).",
        flag_values=fv,
    )
    flags.DEFINE_integer(
        "control_downscale",
        None,
        "Score the control checks at 1/N of the photo's size (default: --level's resolution, "
        "2**(level - 1)).",
        flag_values=fv,
    )
    flags.DEFINE_list(
        "baselines", ["identity", "classical"], "Baselines to score (empty: none).", flag_values=fv
    )
    from pynet_bokeh.metrics.protocols import PROTOCOL_HELP

    flags.DEFINE_enum(
        "protocol",
        "ebb",
        [*PROTOCOL_HELP, "all"],
        "How to score, as each paper's script does. "
        + "; ".join(f"{name}: {text}" for name, text in PROTOCOL_HELP.items())
        + "; all: every protocol in one pass, one table (pynet_bokeh/metrics/protocols.py).",
        flag_values=fv,
    )
    flags.DEFINE_string(
        "lpips_weights",
        None,
        "LPIPS v0.1 linear weights (the lpips package's weights/v0.1/alex.pth): adds an LPIPS "
        "column. Needs --lpips_trunk.",
        flag_values=fv,
    )
    flags.DEFINE_string(
        "lpips_trunk",
        None,
        "torchvision's AlexNet weights for LPIPS (alexnet-owt-7be5be79.pth).",
        flag_values=fv,
    )
    flags.DEFINE_integer(
        "border", 32, "Border (px) removed before scoring (protocol ebb).", flag_values=fv
    )
    flags.DEFINE_list(
        "crop_size", ["1024", "1024"], "H,W of the centre crop (protocol aim2020).", flag_values=fv
    )
    flags.DEFINE_list(
        "merge",
        [],
        "Out_dirs of the runs of every --shard I/N of one evaluation, comma-separated: joined "
        "into one report in --out_dir (no images are rendered).",
        flag_values=fv,
    )
    flags.DEFINE_bool(
        "save_outputs",
        None,
        "Write every output PNG (default: only with --photos_dir).",
        flag_values=fv,
    )
    return fv


def load_renderers(opts):
    """{label: renderer(photo, depth)}: `--model` with `--weights` (and `--compare_weights`),
    then the baselines; the controls go to the methods that take them."""
    from pynet_bokeh import evaluation
    from pynet_bokeh.errors import UsageError

    controls = cli_flags.controls_from_flags(opts)
    renderers, settings = {}, {"model": opts.method, "level": opts.level}
    weights = [(opts.weights, "checkpoint")]
    if opts.compare_weights:
        weights.append((opts.compare_weights, "compare"))
    for path, key in weights:
        renderer = cli_flags.renderer_from_flags(opts, weights=path)
        renderer.check_controls(**controls)
        label = renderer.label
        if label in renderers:
            label += f" [{key}]"
        renderers[label] = evaluation.method_renderer(renderer, **controls)
        if path is not None:
            settings[key] = path
    unknown = set(opts.baselines) - set(evaluation.baseline_renderers())
    if unknown:
        raise UsageError(f"--baselines: unknown {sorted(unknown)}; use identity, classical")
    baselines = evaluation.baseline_renderers(**controls)
    for name in opts.baselines:
        if name not in renderers:
            renderers[name] = baselines[name]
    return renderers, settings


def main(argv, flag_values=FLAGS):
    """The program; `flag_values` holds the parsed flags (see `define_flags`)."""
    del argv
    opts = flag_values
    from pynet_bokeh import evaluation
    from pynet_bokeh.errors import UsageError
    from pynet_bokeh.sharding import parse_shard

    if opts.output_dir is None:
        raise UsageError("--out_dir is required: the folder the report goes to")
    if opts.merge:
        if opts.shard:
            raise UsageError("--merge joins finished shards: leave out --shard")
        summary = evaluation.merge_evaluations(opts.merge, opts.output_dir)
        return _print_summary(summary, opts.output_dir)
    shard = parse_shard(opts.shard)
    if (opts.dataset_dir is None) == (opts.photos_dir is None):
        raise UsageError("give exactly one of --dataset_dir (with targets) or --photos_dir")
    try:
        crop_size = tuple(int(v) for v in opts.crop_size)
        assert len(crop_size) == 2
    except (ValueError, AssertionError):
        raise UsageError(f"--crop_size must be H,W, got {opts.crop_size}") from None

    if (opts.lpips_weights is None) != (opts.lpips_trunk is None):
        raise UsageError("LPIPS needs both --lpips_weights (alex.pth) and --lpips_trunk")
    lpips = None
    if opts.lpips_weights is not None:
        from pynet_bokeh.metrics import build_lpips

        lpips = build_lpips("alex", trunk_weights=opts.lpips_trunk, lin_weights=opts.lpips_weights)

    renderers, settings = load_renderers(opts)
    notes = []
    if opts.dataset_dir is not None:
        samples = evaluation.dataset_samples(opts.dataset_dir, opts.split, opts.limit)
        source = f"{opts.dataset_dir} ({opts.split})"
        weights = (opts.weights, opts.compare_weights)
        seen = evaluation.training_overlap(weights, opts.dataset_dir, opts.split, samples)
        if seen:
            logging.warning(
                "%d of the %d scored images were in the training set of the scored weights "
                "(train_stems.json): their scores are not held out",
                len(seen),
                len(samples),
            )
        notes = evaluation.split_notes(opts.split, seen)
    else:
        samples = evaluation.folder_samples(opts.photos_dir, opts.depth_dir, opts.limit)
        source = opts.photos_dir

    save = opts.save_outputs if opts.save_outputs is not None else opts.photos_dir is not None
    logging.info("Evaluating %d images with %s", len(samples), ", ".join(renderers))
    summary = evaluation.evaluate(
        renderers,
        samples,
        opts.output_dir,
        num_panels=opts.num_panels,
        protocol=opts.protocol,
        border=opts.border,
        crop_size=crop_size,
        save_outputs=save,
        source=source,
        settings=settings,
        lpips=lpips,
        level=opts.level,
        notes=notes,
        shard=shard,
    )
    if shard is not None:
        print(f"\nshard {shard[0]}/{shard[1]}; join the shards with --merge")
    failed = _print_summary(summary, opts.output_dir)
    if opts.control_checks:
        run_control_checks(opts)
    return failed


def _print_summary(summary, output_dir):
    from pynet_bokeh import report

    print(f"\n{summary['count']} images -> {output_dir}/report.md")
    for name, m in summary["methods"].items():
        if summary["has_targets"] and len(summary["columns"]) > 4:
            print(f"  {name:40s} {m['seconds']:.2f} s/image (scores: the table in report.md)")
        elif summary["has_targets"]:
            scores = "  ".join(
                f"{report.column_label(key)} {m[key]:.{2 if key == 'psnr' else 4}f}"
                for key in summary["columns"]
            )
            print(f"  {name:40s} {scores}  {m['seconds']:.2f} s/image")
        else:
            print(f"  {name:40s} {m['seconds']:.2f} s/image")
    if summary["failures"]:
        print(f"  {len(summary['failures'])} image(s) failed: see report.md")
        return 1
    return 0


def run_control_checks(opts):
    """The control checks of `--method` (and its --compare_weights), --control_methods and
    the classical renderer, written to control_checks.md / .json in --out_dir."""
    from pynet_bokeh import control_checks
    from pynet_bokeh.errors import UsageError

    if opts.dataset_dir is None:
        raise UsageError("--control_checks needs --dataset_dir (a set with params/*.json)")
    renderers = {}
    for path in (opts.weights, opts.compare_weights):
        if path is not None or not renderers:
            renderer = cli_flags.renderer_from_flags(opts, weights=path)
            renderers[renderer.label] = renderer
    specs = list(opts.control_methods) + [b for b in opts.baselines if b not in renderers]
    renderers.update(control_checks.renderers_from_specs(specs, level=opts.level))
    downscale = opts.control_downscale or 2 ** (opts.level - 1)
    report = control_checks.control_report(
        renderers, opts.dataset_dir, opts.split, downscale=downscale, limit=opts.limit
    )
    path = control_checks.write_report(
        report, opts.output_dir, f"{opts.dataset_dir} ({opts.split}), 1/{downscale} size"
    )
    print(f"\ncontrol checks -> {path}\n{control_checks.format_table(report)}")


def run():
    from pynet_bokeh.cli.errors import absl_main

    define_flags()
    app.run(lambda argv: absl_main(main, argv))


if __name__ == "__main__":
    run()
