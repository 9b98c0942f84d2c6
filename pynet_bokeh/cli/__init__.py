"""`pynet-bokeh`: render bokeh with any method, convert the authors' checkpoint.

pynet-bokeh render PHOTOS... --method M --output_dir DIR [--depth_dir DIR] [--weights PATH]
    [--focus X,Y | --focus_disparity D] [--blur K]
pynet-bokeh convert-tf1 PREFIX OUT.weights.h5
pynet-bokeh demo [--port P] [--host 127.0.0.1] [--method M --weights PATH ...]
    [--depth_model megadepth|dpt-hybrid-midas --depth_weights PATH]
"""

import argparse
import logging
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TF's C++ log lines, unless asked for


def _convert(args):
    from pynet_bokeh.renderers.pynet import convert_tf1_checkpoint

    print("wrote", convert_tf1_checkpoint(args.prefix, args.output))
    return 0


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line and where to find help, not the whole usage
        self.exit(2, f"error: {message} (see {self.prog} --help)\n")


def build_parser():
    from pynet_bokeh.cli.demo import add_demo_parser
    from pynet_bokeh.cli.render import add_render_parser

    parser = _Parser(prog="pynet-bokeh", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    add_render_parser(sub)
    convert = sub.add_parser("convert-tf1", help="authors' TF1 checkpoint -> .weights.h5")
    convert.add_argument("prefix", help="checkpoint prefix, e.g. .../pynet_bokeh_level_0")
    convert.add_argument("output", help="output file ending in .weights.h5")
    convert.set_defaults(func=_convert)
    add_demo_parser(sub)
    return parser


def main(argv=None):
    from pynet_bokeh.cli.errors import REPORTED, report

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except REPORTED as err:
        report(err)
        return 2


if __name__ == "__main__":
    sys.exit(main())
