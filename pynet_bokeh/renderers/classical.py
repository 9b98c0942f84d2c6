"""The physical, non-learned renderer (`pynet_bokeh.render.classical`) behind the shared
controls: focus point or disparity, and blur K (its `aperture` is K / max(H, W)).

`engine="tf"` renders with the TensorFlow port (`pynet_bokeh.render.classical_tf`), the graph
that `export_spec` exports to TFLite with the focus point and K as inputs."""

import numpy as np

from pynet_bokeh.errors import UsageError
from pynet_bokeh.render import controls as ctl
from pynet_bokeh.renderers.base import Renderer

#: K when none is given: 0.02 of a 1536-px EBB! photo's long side, the baseline's old default.
DEFAULT_BLUR = 30.72
ENGINES = ("numpy", "tf")


class ClassicalRenderer(Renderer):
    name = "classical"
    description = "thin-lens physical blur from the depth map (no weights)"
    takes_focus = True
    takes_blur = True
    default_blur = DEFAULT_BLUR

    option_flags = {"engine": "engine"}

    def __init__(self, weights=None, engine="numpy"):
        super().__init__(weights)
        if engine not in ENGINES:
            raise UsageError(f"--engine {engine!r}: choose one of {', '.join(ENGINES)}")
        self.engine = engine

    def _render(self, photo, depth, controls):
        from pynet_bokeh.render.classical import auto_focus, render_bokeh_baseline

        if controls.blur == 0:
            return photo
        focus = controls.focus_disparity
        if self.engine == "tf":
            from pynet_bokeh.render.classical_tf import render_bokeh_xla

            d_f = auto_focus(depth) if focus is None else focus
            # XLA-compiled stages, dispatched from Python (the first call per size compiles)
            out = render_bokeh_xla(photo[None], depth[None, ..., None], d_f, controls.blur)
            return out[0].numpy()
        aperture = ctl.classical_aperture(controls.blur, photo.shape)
        return render_bokeh_baseline(photo, depth, focus=focus, aperture=aperture)

    def export_spec(self, height, width, **options):
        """The TF renderer with run-time focus point and K: inputs `image` (1 x H x W x 3),
        `depth` (1 x H/2 x W/2 x 1, the EBB! map), `focus_xy` (1 x 2 pixels), `blur` (1 x 1 K);
        output `image`."""
        import tensorflow as tf

        from pynet_bokeh.render.classical_tf import classical_graph

        height, width = int(height), int(width)
        dh, dw = max(height // 2, 1), max(width // 2, 1)
        specs = {
            "image": tf.TensorSpec([1, height, width, 3], tf.float32, name="image"),
            "depth": tf.TensorSpec([1, dh, dw, 1], tf.float32, name="depth"),
            "focus_xy": tf.TensorSpec([1, 2], tf.float32, name="focus_xy"),
            "blur": tf.TensorSpec([1, 1], tf.float32, name="blur"),
        }
        feeds = example_feeds(height, width)
        metadata = {
            "model": "classical",
            "inputs_meaning": {
                "image": "RGB photo, sRGB in [0, 1], NHWC",
                "depth": "EBB! depth map / 255 at half the photo's size (near = 1)",
                "focus_xy": "focus point (x, y) in the photo's pixels",
                "blur": "K: circle-of-confusion radius in pixels per unit of disparity",
            },
            "outputs_meaning": {"image": "RGB bokeh, sRGB in [0, 1], the photo's size"},
        }
        return classical_graph(height, width), {
            "input_specs": specs,
            "parity_feeds": feeds,
            "output_name": "image",
            "metadata": metadata,
        }

    def photo_graph(self, height, width):
        from pynet_bokeh.render.classical_tf import classical_graph

        render = classical_graph(int(height), int(width))
        return (lambda image, depth, focus_xy, blur: render(image, depth, focus_xy, blur)), ()


def example_feeds(height, width, seed=0):
    """A textured photo with a near subject on a far ramp, its half-size map, focus on the
    subject, K = 2% of the long side: inputs for a parity check."""
    rng = np.random.default_rng(seed)
    photo = rng.random((1, height, width, 3), np.float32)
    dh, dw = max(height // 2, 1), max(width // 2, 1)
    depth = np.tile(np.linspace(0.0, 0.5, dh, dtype=np.float32)[:, None], (1, dw))
    depth[dh // 4 : 3 * dh // 4, dw // 3 : 2 * dw // 3] = 0.9
    return {
        "image": photo,
        "depth": depth[None, ..., None],
        "focus_xy": np.array([[width / 2, height / 2]], np.float32),
        "blur": np.array([[0.02 * max(height, width)]], np.float32),
    }


RENDERER = ClassicalRenderer
