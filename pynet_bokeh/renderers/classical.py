"""The physical, non-learned renderer (`pynet_bokeh.render.classical`) behind the shared
controls: focus point or disparity, and blur K (its `aperture` is K / max(H, W))."""

from pynet_bokeh.render import controls as ctl
from pynet_bokeh.renderers.base import Renderer

#: K when none is given: 0.02 of a 1536-px EBB! photo's long side, the baseline's old default.
DEFAULT_BLUR = 30.72


class ClassicalRenderer(Renderer):
    name = "classical"
    description = "thin-lens physical blur from the depth map (no weights)"
    takes_focus = True
    takes_blur = True
    default_blur = DEFAULT_BLUR

    def _render(self, photo, depth, controls):
        from pynet_bokeh.render.classical import render_bokeh_baseline

        if controls.blur == 0:
            return photo
        aperture = ctl.classical_aperture(controls.blur, photo.shape)
        return render_bokeh_baseline(
            photo, depth, focus=controls.focus_disparity, aperture=aperture
        )


RENDERER = ClassicalRenderer
