"""DeepLens (Wang et al., SIGGRAPH Asia 2018): predicts its own depth (or uses the given map)
and takes a focus point and an aperture.

Aperture and the shared blur control: A = K / (0.05 * max(H, W)) (`aperture_for_blur`); K above
0.05 * max(H, W) (A > 1) is past what DeepLens was trained for and is refused. The network runs
with the long side capped at 1280 px; the result is resized back to the photo's size.
"""

import numpy as np

from pynet_bokeh.errors import UsageError
from pynet_bokeh.renderers.base import Renderer

#: K when none is given: aperture 0.5.
DEFAULT_APERTURE = 0.5


class DeepLensRenderer(Renderer):
    name = "deeplens"
    description = "DeepLens (SIGGRAPH Asia 2018): its own depth, focus point and aperture"
    needs_depth = False
    takes_focus = True
    takes_blur = True
    needs_weights = True
    weights_formats = (
        "the authors' TF1 checkpoint prefix (model/model_end2end/model)",
        ".weights.h5 or a stage folder from train_level.py --model deeplens",
    )
    training_task = "pynet_bokeh.training.deeplens_task"
    option_flags = {"aperture": "aperture"}

    def __init__(self, weights=None, aperture=None, model=None):
        """`aperture`: DeepLens' aperture in [0, 1] used when a render gives no blur."""
        from pynet_bokeh.models.deeplens import build_deeplens, load_deeplens_checkpoint

        if model is None and weights is None:
            raise UsageError(
                f"--method deeplens needs --weights ({'; '.join(self.weights_formats)})"
            )
        if aperture is not None and not 0.0 <= float(aperture) <= 1.0:
            raise UsageError(f"--aperture {aperture}: DeepLens' aperture lies in [0, 1]")
        self.aperture = DEFAULT_APERTURE if aperture is None else float(aperture)
        self.weights = weights
        self.model = (
            model if model is not None else load_deeplens_checkpoint(build_deeplens(), weights)
        )

    @property
    def label(self):
        return super().label.replace("deeplens", f"deeplens A={self.aperture:g}", 1)

    def _render(self, photo, depth, controls):
        from pynet_bokeh import image_io
        from pynet_bokeh.models.deeplens import (
            aperture_for_blur,
            blur_for_aperture,
            render_deeplens,
        )

        blur = controls.blur
        if blur is None:
            blur = blur_for_aperture(self.aperture, photo.shape)
        aperture = aperture_for_blur(blur, photo.shape)
        if aperture > 1.0 + 1e-6:
            limit = blur_for_aperture(1.0, photo.shape)
            raise UsageError(
                f"--blur {blur:g}: DeepLens reaches at most K = {limit:.1f} px on this "
                f"{photo.shape[1]} x {photo.shape[0]} photo (aperture 1); use a smaller --blur "
                "or --method classical"
            )
        if aperture == 0:
            return photo
        image, _ = render_deeplens(
            self.model,
            photo,
            focus_xy=controls.focus_point,
            aperture=aperture,
            depth=depth,
            focus_depth=controls.focus_disparity,
        )
        return np.clip(image_io.resize_bicubic(image, photo.shape[:2]), 0.0, 1.0)

    def export_spec(self, height, width, **options):
        from pynet_bokeh.models.deeplens import deeplens_export_spec

        return deeplens_export_spec(self.model, height, width)


RENDERER = DeepLensRenderer
