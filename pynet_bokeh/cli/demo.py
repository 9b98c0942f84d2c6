"""`pynet-bokeh demo`: the web page where you click the focus and slide the blur (Gradio,
`pip install -e ".[demo]"`); see `pynet_bokeh.demo`."""

from __future__ import annotations

from pynet_bokeh.errors import UsageError


def add_demo_parser(sub):
    from pynet_bokeh.demo.app import DEFAULT_HOST, DEFAULT_PORT
    from pynet_bokeh.demo.depth import DEPTH_MODELS
    from pynet_bokeh.renderers import renderer_names

    demo = sub.add_parser(
        "demo", help="web demo: click the focus, slide the blur", description=__doc__.split("\n")[0]
    )
    demo.add_argument("--port", type=int, default=DEFAULT_PORT, help="port to serve on")
    demo.add_argument(
        "--host",
        default=DEFAULT_HOST,
        help="address to bind (default 127.0.0.1: this machine only; 0.0.0.0 shares it)",
    )
    demo.add_argument(
        "--method",
        action="append",
        choices=renderer_names(),
        help="a method for the page's picker (repeatable; default: classical); those that need "
        "weights take the --weights flags in order",
    )
    demo.add_argument(
        "--weights",
        action="append",
        default=[],
        help="weights of the next --method that needs them (a path; see `pynet-bokeh render`)",
    )
    demo.add_argument(
        "--depth_model", choices=DEPTH_MODELS, help="depth network for photos without a map"
    )
    demo.add_argument("--depth_weights", help="weights file of --depth_model")
    demo.set_defaults(func=run_demo)
    return demo


def load_renderers(methods, weights):
    """name -> Renderer for `methods`; those needing weights take `weights` in order."""
    from pynet_bokeh.renderers import get_renderer, renderer_class

    pending = list(weights)
    renderers = {}
    for name in methods or ["classical"]:
        path = pending.pop(0) if renderer_class(name).needs_weights and pending else None
        renderers[name] = get_renderer(name, path)
    if pending:
        raise UsageError(f"--weights {pending[0]}: no --method that takes weights is left for it")
    return renderers


def run_demo(args):
    from pynet_bokeh.demo.app import launch_demo
    from pynet_bokeh.demo.depth import load_depth_model

    if args.depth_weights and not args.depth_model:
        raise UsageError("--depth_weights needs --depth_model (megadepth or dpt-hybrid-midas)")
    renderers = load_renderers(args.method, args.weights)
    depth_model = (
        load_depth_model(args.depth_model, args.depth_weights) if args.depth_model else None
    )
    launch_demo(renderers, depth_model, host=args.host, port=args.port)
    return 0
