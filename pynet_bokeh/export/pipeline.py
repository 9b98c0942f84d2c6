"""Photo in, bokeh out: one graph from a depth function and a renderer's photo graph."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

CONTROL_SPECS = {
    "focus_xy": ((1, 2), "focus point (x, y) in the photo's pixels"),
    "blur": ((1, 1), "K: circle-of-confusion radius in pixels per unit of disparity"),
}


def photo_to_bokeh_spec(depth_fn, renderer, height, width, depth_track=(), depth_note=""):
    """(callable, export_tflite keyword arguments) for one graph from a photo to its bokeh.

    depth_fn: TF ops from `image` (1 x H x W x 3 sRGB in [0, 1]) to the EBB! map (1 x H/2 x W/2
    x 1 in [0, 1], near = 1), e.g. a depth network with its conversion; renderer: a `Renderer`
    whose `photo_graph` renders from the photo and that map. Inputs: `image` and the renderer's
    controls (`focus_xy`, `blur`); output `image`. depth_track: Keras objects depth_fn uses.
    """
    height, width = int(height), int(width)
    render, track = renderer.photo_graph(height, width)
    controls = list(renderer.controls())
    names = {"focus": "focus_xy", "blur": "blur"}
    inputs = ["image"] + [names[c] for c in controls]
    specs = {"image": tf.TensorSpec([1, height, width, 3], tf.float32, name="image")}
    for name in inputs[1:]:
        specs[name] = tf.TensorSpec(list(CONTROL_SPECS[name][0]), tf.float32, name=name)

    def serve(image, **controls_in):
        return render(image, depth_fn(image), **controls_in)

    rng = np.random.default_rng(0)
    feeds = {"image": rng.random((1, height, width, 3), np.float32)}
    if "focus_xy" in specs:
        feeds["focus_xy"] = np.array([[width / 2, height / 2]], np.float32)
    if "blur" in specs:
        feeds["blur"] = np.array([[0.02 * max(height, width)]], np.float32)
    metadata = {
        "model": f"photo_to_bokeh:{renderer.name}",
        "depth": depth_note,
        "inputs_meaning": {
            "image": "RGB photo, sRGB in [0, 1], NHWC",
            **{n: CONTROL_SPECS[n][1] for n in inputs[1:]},
        },
        "outputs_meaning": {"image": "RGB bokeh, sRGB in [0, 1], the photo's size"},
    }
    return serve, {
        "input_specs": specs,
        "parity_feeds": feeds,
        "output_name": "image",
        "metadata": metadata,
        "track": (*depth_track, *track),
    }
