"""`pynet-bokeh-deeplens`: an alias of `pynet-bokeh render --method deeplens`, with a sequence of
apertures.

    pynet-bokeh-deeplens --checkpoint model/model_end2end/model photo.jpg [more.jpg ...]
        [--focus X,Y | --focus_depth D] [--aperture 0.5 [--aperture 1.0 ...]]
        [--depth_dir DIR] [--output_dir DIR]

For each photo and aperture writes `<stem>_deeplens_a<aperture>.png` (the photo's size), beside
the photo unless --output_dir is given. The same renders: `pynet-bokeh render photo.jpg --method
deeplens --weights CKPT --aperture A --output_dir DIR` (or `--blur K`, the shared control).
"""

import argparse
import logging
import os
import sys
from collections import defaultdict

from pynet_bokeh.cli import flags as cli_flags
from pynet_bokeh.errors import UsageError

ALIAS_NOTE = "pynet-bokeh-deeplens is an alias of `pynet-bokeh render --method deeplens`."


def build_parser():
    parser = argparse.ArgumentParser(prog="pynet-bokeh-deeplens", description=ALIAS_NOTE)
    parser.add_argument("photos", nargs="+", help="photos (JPEG/PNG) or folders of photos")
    parser.add_argument(
        "--checkpoint",
        "--weights",
        dest="weights",
        required=True,
        help="DeepLens weights: the authors' TF1 checkpoint prefix (model/model_end2end/model) "
        "or a training stage's folder / final.weights.h5",
    )
    cli_flags.add_argparse(parser, ("focus", "depth_dir", "output_dir"))
    parser.add_argument(
        "--focus_depth",
        "--focus_disparity",
        dest="focus_disparity",
        type=float,
        help="disparity to keep sharp, 0 (far) .. 1 (near), instead of --focus",
    )
    parser.add_argument(
        "--aperture",
        type=float,
        action="append",
        help="aperture 0 (all sharp) .. 1 (shallowest); repeat for a sequence (default 0.5)",
    )
    parser.add_argument("--format", default="png", choices=("png", "jpg"))
    return parser


def main(argv=None):
    from pynet_bokeh.cli.errors import REPORTED, report
    from pynet_bokeh.cli.render import render_files
    from pynet_bokeh.inference import list_photos
    from pynet_bokeh.renderers import get_renderer

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    args = build_parser().parse_args(argv)
    print(ALIAS_NOTE, file=sys.stderr)
    apertures = args.aperture or [0.5]
    try:
        focus = cli_flags.parse_focus(args.focus)
        if focus is not None and args.focus_disparity is not None:
            raise UsageError("give either --focus X,Y or --focus_depth D, not both")
        groups = defaultdict(list)
        for photo in list_photos(args.photos):
            groups[args.output_dir or os.path.dirname(os.path.abspath(photo))].append(photo)
        renderer = get_renderer("deeplens", args.weights)
        failures = written = 0
        for aperture in apertures:
            renderer = get_renderer("deeplens", model=renderer.model, aperture=aperture)
            for folder, photos in groups.items():
                done, failed = render_files(
                    renderer,
                    photos,
                    folder,
                    depth_dir=args.depth_dir,
                    suffix=f"_deeplens_a{aperture:.2f}.{args.format}",
                    overwrite=True,
                    focus=focus,
                    focus_disparity=args.focus_disparity,
                    beside_inputs=True,  # named apart: <stem>_deeplens_a<aperture>.<format>
                )
                written, failures = written + len(done), failures + len(failed)
                for photo, message in failed:
                    print(f"  FAILED {photo}: {message}")
    except REPORTED as err:
        report(err)
        return 2
    print(f"wrote {written} file(s); {failures} failed")
    return 1 if failures else 0


def run():
    sys.exit(main())
