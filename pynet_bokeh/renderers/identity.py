"""The do-nothing baseline: the all-in-focus photo itself."""

from pynet_bokeh.renderers.base import Renderer


class IdentityRenderer(Renderer):
    name = "identity"
    description = "the photo unchanged (the baseline every score should beat)"
    needs_depth = False

    def _render(self, photo, depth, controls):
        return photo

    def export_spec(self, height, width, **options):
        import numpy as np
        import tensorflow as tf

        spec = {"image": tf.TensorSpec([1, height, width, 3], tf.float32, name="image")}

        def serve(image):
            return tf.identity(image)

        feeds = {"image": np.random.default_rng(0).random((1, height, width, 3), np.float32)}
        return serve, {"input_specs": spec, "parity_feeds": feeds}


RENDERER = IdentityRenderer
