"""BRADCN (Liu, Zhou, Dong 2023): predicts and calibrates its own depth; the EBB! look.

Weights: `train_level.py --model bradcn`'s `final.weights.h5` (or its stage folder), built with
the same `config` (paper | tiny). The paper's test protocol: run at half size, upsample x2.
"""

import os

import numpy as np

from pynet_bokeh.errors import UsageError
from pynet_bokeh.renderers.base import Renderer

CONFIGS = ("paper", "tiny")


def render_bradcn(model, photo):
    """The paper's test protocol [P] on one photo (H x W x 3 in [0, 1]): run at half size
    (bicubic, reflection-padded to a multiple of 32), then upsample the output x2 bilinearly to
    the photo's size; clipped to [0, 1]. BRADCN predicts its own depth: no depth map input."""
    import tensorflow as tf

    from pynet_bokeh import image_io
    from pynet_bokeh.inference import predict_padded
    from pynet_bokeh.models.bradcn import render_stage_model

    photo = np.asarray(photo, np.float32)
    if photo.ndim != 3 or photo.shape[-1] != 3:
        raise ValueError(f"photo must be H x W x 3 RGB in [0, 1], got shape {photo.shape}")
    run = getattr(model, "_bradcn_render_fn", None)
    if run is None:
        view = render_stage_model(model)
        run = tf.function(lambda x: view(x, training=False), reduce_retracing=True)
        model._bradcn_render_fn = run
    half = image_io.resize_bicubic(photo, image_io.half_size(photo.shape))
    out = predict_padded(lambda x: run(tf.constant(x)).numpy(), half, 1.0)
    full = tf.image.resize(out[None], photo.shape[:2], method="bilinear")[0].numpy()
    return np.clip(full, 0.0, 1.0)


class BradcnRenderer(Renderer):
    name = "bradcn"
    description = "BRADCN (2023): depth calibration + DPT render net, the EBB! look"
    needs_depth = False
    fixed_look = "it renders the EBB! look it was trained on, with its own depth"
    needs_weights = True
    weights_formats = (".weights.h5 or a stage folder from train_level.py --model bradcn",)
    training_task = "pynet_bokeh.training.bradcn_task"
    option_flags = {"config": "bradcn_config"}

    def __init__(self, weights=None, config=None, model=None):
        from pynet_bokeh.models.bradcn import load_bradcn

        config = config or "paper"
        if config not in CONFIGS:
            raise UsageError(f"--bradcn_config {config!r}: choose one of {', '.join(CONFIGS)}")
        if model is None:
            if weights is None:
                raise UsageError(f"--method bradcn needs --weights ({self.weights_formats[0]})")
            path = os.fspath(weights)
            if os.path.isdir(path):
                path = os.path.join(path, "final.weights.h5")
            if not os.path.isfile(path):
                raise FileNotFoundError(
                    f"--weights {weights}: not found; pass train_level.py --model bradcn's "
                    "final.weights.h5"
                )
            model = load_bradcn(path, config=config)
        self.weights = weights
        self.config = config
        self.model = model

    def _render(self, photo, depth, controls):
        return render_bradcn(self.model, photo)

    def export_spec(self, height, width, **options):
        import tensorflow as tf

        from pynet_bokeh.models.bradcn import render_stage_model

        net = render_stage_model(self.model)
        specs = {"rgb": tf.TensorSpec([1, height, width, 3], tf.float32, name="rgb")}
        feeds = {"rgb": np.random.default_rng(0).random((1, height, width, 3)).astype(np.float32)}
        metadata = {
            "model": "bradcn",
            "inputs_meaning": {"rgb": "RGB photo in [0, 1], NHWC, at half the photo's size"},
            "outputs_meaning": {
                "bokeh": "RGB bokeh in [0, 1] at the input's size; upsample x2 (bilinear) to "
                "the photo's size as the paper does"
            },
        }
        return net, {"input_specs": specs, "parity_feeds": feeds, "metadata": metadata}


RENDERER = BradcnRenderer
