"""`pynet-bokeh`: render bokeh for photos, convert the authors' checkpoint.

pynet-bokeh render PHOTOS_OR_DIRS... --output_dir OUT (--weights W | --tf1_checkpoint P)
pynet-bokeh convert-tf1 PREFIX OUT.weights.h5
"""

import argparse
import logging
import sys


def _render(args):
    from pynet_bokeh.checkpoints import load_pynet
    from pynet_bokeh.inference import render_files

    model = load_pynet(weights=args.weights, tf1_checkpoint=args.tf1_checkpoint)
    written, failures = render_files(
        model,
        args.inputs,
        args.output_dir,
        depth_dir=args.depth_dir,
        level=args.level,
        suffix="." + args.format,
        overwrite=args.overwrite,
    )
    print(f"wrote {len(written)} image(s) to {args.output_dir}; {len(failures)} failed")
    for photo, message in failures:
        print(f"  FAILED {photo}: {message}", file=sys.stderr)
    return 1 if failures else 0


def _convert(args):
    from pynet_bokeh.convert.tf1 import convert_tf1_checkpoint

    print("wrote", convert_tf1_checkpoint(args.prefix, args.output))
    return 0


def build_parser():
    parser = argparse.ArgumentParser(prog="pynet-bokeh", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    render = sub.add_parser("render", help="render bokeh for photos with their EBB! depth maps")
    render.add_argument("inputs", nargs="+", help="photos (JPEG/PNG) or folders of photos")
    render.add_argument("--output_dir", required=True, help="where outputs are written")
    render.add_argument(
        "--depth_dir",
        help="folder of <stem>.png depth maps (default: sibling "
        "original_depth/ or depth_maps/ folder)",
    )
    render.add_argument("--weights", help="this package's .weights.h5 / .keras file")
    render.add_argument("--tf1_checkpoint", help="the authors' checkpoint prefix")
    render.add_argument("--level", type=int, default=1, choices=range(1, 8))
    render.add_argument("--format", default="png", choices=("png", "jpg"))
    render.add_argument("--overwrite", action="store_true", help="redo existing outputs")
    render.set_defaults(func=_render)

    convert = sub.add_parser("convert-tf1", help="authors' TF1 checkpoint -> .weights.h5")
    convert.add_argument("prefix", help="checkpoint prefix, e.g. .../pynet_bokeh_level_0")
    convert.add_argument("output", help="output file ending in .weights.h5")
    convert.set_defaults(func=_convert)
    return parser


def main(argv=None):
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (OSError, ValueError, TypeError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
