"""The interface every bokeh method implements (see `pynet_bokeh.renderers`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from pynet_bokeh.errors import BadDataError, UsageError
from pynet_bokeh.image_io import check_depth  # noqa: F401 (one check, used here and by ebb_input)
from pynet_bokeh.render import controls as ctl


@dataclass(frozen=True)
class Controls:
    """A render's resolved controls (None: not given)."""

    focus_disparity: float | None = None
    focus_point: tuple[float, float] | None = None
    blur: float | None = None


class Renderer:
    """A bokeh method: `render(photo, depth=None, *, focus=None, focus_disparity=None,
    blur=None)` takes an H x W x 3 float photo in [0, 1] and returns the same size.

    Subclasses set the class attributes and implement `_render(photo, depth, controls)`, which
    gets checked inputs: `depth` (H' x W' in [0, 1]) or None, and `Controls` with d_f in [0, 1]
    (resolved from the focus point when there is a depth map), the focus point itself, and K in
    pixels (None where not given and the method has no default).
    """

    #: Name in the registry and for `--method`.
    name: ClassVar[str] = ""
    #: One line for listings and the demo's method picker.
    description: ClassVar[str] = ""
    #: Whether `render` needs the photo's depth map (EBB! convention).
    needs_depth: ClassVar[bool] = True
    #: Whether the method takes the focus (point or disparity) and the blur K.
    takes_focus: ClassVar[bool] = False
    takes_blur: ClassVar[bool] = False
    #: Why a method refuses the controls (it renders one fixed look).
    fixed_look: ClassVar[str] = ""
    #: Whether it needs weights, and the weight files it accepts (for messages and --help).
    needs_weights: ClassVar[bool] = False
    weights_formats: ClassVar[tuple[str, ...]] = ()
    #: Whether `export_tflite.py --quantization int8` can calibrate it on photos + EBB! depth
    #: maps (an RGB + depth input, as PyNET's).
    int8_calibration: ClassVar[bool] = False
    #: Module with `task_from_flags(flags) -> (task, TrainConfig)`, or None (not trainable).
    training_task: ClassVar[str | None] = None
    #: {constructor option: command-line flag} for the method's own options (e.g. pynet's level).
    option_flags: ClassVar[dict[str, str]] = {}
    #: Defaults used when the caller gives no control (the method's own choice when None).
    default_blur: ClassVar[float | None] = None

    def __init__(self, weights=None, **options):
        if options:
            raise UsageError(f"--method {self.name} takes no option {', '.join(sorted(options))}")
        if weights is not None and not self.needs_weights:
            raise UsageError(f"--method {self.name} takes no --weights")
        self.weights = weights

    # ------------------------------------------------------------------ description
    @property
    def label(self) -> str:
        """A short name for reports: the method and the weights' file name."""
        if self.weights is None:
            return self.name
        import os

        return f"{self.name} ({os.path.basename(os.path.normpath(str(self.weights)))})"

    @classmethod
    def controls(cls) -> tuple[str, ...]:
        """The controls this method takes: a subset of ('focus', 'blur')."""
        return tuple(n for n, on in (("focus", cls.takes_focus), ("blur", cls.takes_blur)) if on)

    # ------------------------------------------------------------------ rendering
    def render(self, photo, depth=None, *, focus=None, focus_disparity=None, blur=None):
        """The bokeh image, float32 H x W x 3 in [0, 1], the photo's size."""
        photo = check_photo(photo)
        self.check_controls(focus=focus, focus_disparity=focus_disparity, blur=blur)
        if depth is not None:
            depth = check_depth(depth, photo.shape)
        elif self.needs_depth:
            raise BadDataError(
                f"--method {self.name} needs the photo's depth map (EBB! convention: 8-bit, "
                "near = bright): pass --depth_dir, or make one with depth-tools-generate"
            )
        d_f = k = point = None
        if self.takes_focus:
            if focus_disparity is not None:
                d_f = ctl.check_focus_disparity(focus_disparity)
            elif focus is not None:
                point = ctl.check_focus_point(focus, photo.shape)
                if depth is not None:
                    d_f = ctl.disparity_at(depth, point, photo.shape)
                elif self.needs_depth:
                    raise BadDataError(f"--focus needs a depth map for --method {self.name}")
        if self.takes_blur:
            k = ctl.check_blur(blur) if blur is not None else self.default_blur
        out = self._render(photo, depth, Controls(d_f, point, k))
        out = np.asarray(out, np.float32)
        if out.shape != photo.shape:
            raise RuntimeError(
                f"{self.name} returned {out.shape} for a photo of {photo.shape}: please report"
            )
        return out

    @classmethod
    def check_controls(cls, focus=None, focus_disparity=None, blur=None):
        """Refuses a control this method cannot take, or a value out of range, naming the flag
        (the focus point is checked against each photo when it is rendered)."""
        given = [
            flag
            for flag, value, ok in (
                ("--focus", focus, cls.takes_focus),
                ("--focus_disparity", focus_disparity, cls.takes_focus),
                ("--blur", blur, cls.takes_blur),
            )
            if value is not None and not ok
        ]
        if given:
            why = f" ({cls.fixed_look})" if cls.fixed_look else ""
            raise UsageError(
                f"--method {cls.name} takes no {' / '.join(given)}{why}; drop "
                f"{'it' if len(given) == 1 else 'them'}, or use a method that takes "
                "focus and blur (classical, deeplens)"
            )
        if focus is not None and focus_disparity is not None:
            raise UsageError("give --focus or --focus_disparity, not both")
        if focus_disparity is not None:
            ctl.check_focus_disparity(focus_disparity)
        if blur is not None:
            ctl.check_blur(blur)

    def _render(self, photo, depth, controls):
        raise NotImplementedError

    # ------------------------------------------------------------------ export, training
    def export_spec(self, height, width, **options):
        """(model or callable, keyword arguments for `pynet_bokeh.export.export_tflite`)."""
        raise UsageError(f"--method {self.name} has no TFLite export")

    def photo_graph(self, height, width):
        """(render, track) for a one-file photo-to-bokeh graph: `render(image, depth, **controls)`
        in TF ops (builtin TFLite ops), image 1 x H x W x 3 sRGB, depth the 1 x H/2 x W/2 x 1 EBB!
        map, controls the tensors `focus_xy` (1 x 2 pixels) and `blur` (1 x 1 K) of
        `controls()`; `track`: the Keras objects whose weights it uses."""
        raise UsageError(f"--method {self.name} cannot go into a photo-to-bokeh graph")


def check_photo(photo):
    """An H x W x 3 float32 array in [0, 1], or BadDataError saying what came instead."""
    photo = np.asarray(photo, np.float32)
    if photo.ndim != 3 or photo.shape[2] != 3:
        raise BadDataError(f"photo must be an H x W x 3 RGB array, got shape {photo.shape}")
    return photo
