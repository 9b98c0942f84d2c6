"""Controllable PyNET: the PyNET-Bokeh network with the focus and the blur as inputs.

Its fifth input channel is the signed defocus map c = clip((d - d_f) * K / K_max, -1, 1)
(`render.controls.signed_defocus`; K_max is the model's `defocus_k_max`). Loaded from the
authors' TF1 checkpoint it renders their output whatever the controls (the kernels reading c
are zero); trained (`train_level.py --model pynet-controllable`) it follows them. Weights: the
same formats as `pynet`.
"""

from __future__ import annotations

from pynet_bokeh.errors import UsageError
from pynet_bokeh.models.pynet import CONTROLLABLE_CHANNELS
from pynet_bokeh.render.classical import auto_focus
from pynet_bokeh.renderers.classical import DEFAULT_BLUR
from pynet_bokeh.renderers.pynet import WEIGHTS_FORMATS, PyNetRenderer, load_pynet

#: `build_pynet` arguments of this method's network.
BUILD_KWARGS = {"input_channels": CONTROLLABLE_CHANNELS}


def load_controllable(path):
    """The 5-channel PyNET with the weights at `path` (any of `pynet`'s formats)."""
    model = load_pynet(path, **BUILD_KWARGS)
    if getattr(model, "input_channels", None) != CONTROLLABLE_CHANNELS:
        raise UsageError(
            f"--weights {path} is a {getattr(model, 'input_channels', '?')}-channel PyNET, not "
            "the controllable one; use --method pynet for it"
        )
    return model


class ControllablePyNetRenderer(PyNetRenderer):
    name = "pynet-controllable"
    description = "PyNET-Bokeh with focus and blur as inputs (5th channel: signed defocus)"
    fixed_look = ""
    takes_focus = True
    takes_blur = True
    default_blur = DEFAULT_BLUR
    weights_formats = WEIGHTS_FORMATS
    training_task = "pynet_bokeh.training.controllable_task"
    int8_calibration = False  # a 5-channel input: photos + depth maps alone cannot calibrate it

    @classmethod
    def load(cls, weights):
        return load_controllable(weights)

    def _render(self, photo, depth, controls):
        from pynet_bokeh.inference import render_bokeh

        d_f = controls.focus_disparity
        if d_f is None:
            d_f = auto_focus(depth)  # the classical renderer's default: the central subject
        return render_bokeh(self.model, photo, depth, self.level, controls=(d_f, controls.blur))


RENDERER = ControllablePyNetRenderer
