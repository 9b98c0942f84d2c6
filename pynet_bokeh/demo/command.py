"""The demo's command line: `python -m pynet_bokeh.demo [--port P] [--host H] [--method M
--weights PATH ...] [--depth_model megadepth|dpt-hybrid-midas --depth_weights PATH]`.

`add_arguments(parser)` and `run(args)` are what a `pynet-bokeh demo` subcommand plugs in.
"""

from __future__ import annotations

import argparse
import sys

from pynet_bokeh.errors import PynetBokehError, UsageError


def add_arguments(parser):
    from pynet_bokeh.demo.app import DEFAULT_HOST, DEFAULT_PORT
    from pynet_bokeh.demo.depth import DEPTH_MODELS

    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="port to serve on")
    parser.add_argument(
        "--host",
        default=DEFAULT_HOST,
        help="address to bind (default 127.0.0.1: this machine only; 0.0.0.0 exposes it)",
    )
    parser.add_argument(
        "--method",
        action="append",
        help="a method to offer (repeatable, each with its --weights in the same order when "
        "it needs them); default: classical",
    )
    parser.add_argument(
        "--weights", action="append", default=[], help="weights of the --method before it"
    )
    parser.add_argument(
        "--depth_model", choices=DEPTH_MODELS, help="depth network for photos without a map"
    )
    parser.add_argument("--depth_weights", help="weights file of --depth_model")
    return parser


def load_renderers(methods, weights):
    """name -> Renderer for `methods`, the methods needing weights taking `weights` in order."""
    from pynet_bokeh.renderers import get_renderer, renderer_class

    methods = methods or ["classical"]
    pending = list(weights)
    renderers = {}
    for name in methods:
        cls = renderer_class(name)
        path = pending.pop(0) if cls.needs_weights and pending else None
        renderers[name] = get_renderer(name, path)
    if pending:
        raise UsageError(f"--weights {pending[0]}: no --method that takes weights is left for it")
    return renderers


def run(args):
    from pynet_bokeh.demo.app import launch_demo
    from pynet_bokeh.demo.depth import load_depth_model

    renderers = load_renderers(args.method, args.weights)
    depth_model = None
    if args.depth_model:
        depth_model = load_depth_model(args.depth_model, args.depth_weights)
    elif args.depth_weights:
        raise UsageError("--depth_weights needs --depth_model (megadepth or dpt-hybrid-midas)")
    launch_demo(renderers, depth_model, host=args.host, port=args.port)
    return 0


def main(argv=None):
    parser = add_arguments(argparse.ArgumentParser(prog="python -m pynet_bokeh.demo"))
    args = parser.parse_args(argv)
    try:
        return run(args)
    except (PynetBokehError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
