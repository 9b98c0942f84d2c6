"""What the demo's page calls, free of Gradio: previews at a reduced size, full-size renders
to files, and the messages the page shows. `app` wires these to the page's widgets."""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass

import cv2
import numpy as np

from pynet_bokeh import image_io
from pynet_bokeh.demo import uploads
from pynet_bokeh.errors import BadDataError, UsageError
from pynet_bokeh.render import controls as ctl

#: Long side of the interactive preview, in pixels.
PREVIEW_LONG_SIDE = 768
PREVIEW_JPEG_QUALITY = 95


@dataclass
class Loaded:
    """A decoded photo and its preview-size copy (scale = preview / full, <= 1)."""

    photo: np.ndarray
    preview: np.ndarray
    scale: float


def preview_scale(shape, long_side=PREVIEW_LONG_SIDE):
    """preview / full size ratio for a photo of `shape`: long side `long_side`, never above 1."""
    return min(1.0, long_side / float(max(shape[:2])))


def resize_area(image, scale):
    """`image` scaled by `scale` (area averaging: fast, no aliasing when shrinking)."""
    if scale == 1.0:
        return np.asarray(image, np.float32)
    h, w = image.shape[:2]
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return cv2.resize(np.asarray(image, np.float32), size, interpolation=cv2.INTER_AREA)


def method_note(renderer):
    """What the page says about a method's controls (empty when it takes focus and blur)."""
    missing = [c for c in ("focus", "blur") if c not in renderer.controls()]
    if not missing:
        return ""
    why = f": {renderer.fixed_look}" if renderer.fixed_look else ""
    return (
        f"**{renderer.name} takes no {' or '.join(missing)}**{why}. The click and the slider "
        "are ignored for this method."
    )


class DemoBackend:
    """Renders for the page: `preview(...)` at PREVIEW_LONG_SIDE, `render_full(...)` to a PNG.

    `renderers`: name -> Renderer (the method picker's entries, in order); `depth_model`: a
    `demo.depth.DepthModel` used when no depth map is uploaded, or None.
    """

    def __init__(self, renderers, depth_model=None, temp=None, cache_size=4):
        if not renderers:
            raise UsageError("the demo needs at least one method (--method)")
        self.renderers = dict(renderers)
        self.depth_model = depth_model
        self.temp = temp if temp is not None else uploads.TempFiles()
        self._photos = OrderedDict()
        self._depths = OrderedDict()
        self._estimates = OrderedDict()
        self._cache_size = cache_size

    # ---------------------------------------------------------------- inputs
    def _cached(self, cache, key, load):
        if key in cache:
            cache.move_to_end(key)
            return cache[key]
        value = load()
        cache[key] = value
        while len(cache) > self._cache_size:
            cache.popitem(last=False)
        return value

    def photo(self, path) -> Loaded:
        if not path:
            raise BadDataError("upload a photo first")

        def load():
            photo = uploads.read_photo_upload(path)
            scale = preview_scale(photo.shape)
            return Loaded(photo, np.clip(resize_area(photo, scale), 0.0, 1.0), scale)

        return self._cached(self._photos, str(path), load)

    def depth(self, path, photo_shape):
        """The uploaded depth map, checked against the photo; None when none was given."""
        if not path:
            return None
        from pynet_bokeh.renderers.base import check_depth

        depth = self._cached(self._depths, str(path), lambda: uploads.read_depth_upload(path))
        return check_depth(depth, photo_shape)

    def renderer(self, method):
        if method not in self.renderers:
            raise UsageError(
                f"method {method!r} is not loaded; this demo has {', '.join(self.renderers)}"
            )
        return self.renderers[method]

    def estimate_depth(self, photo_path):
        """The depth model's map for the photo (H/2 x W/2 in [0, 1]), or None without one."""
        if self.depth_model is None:
            return None
        return self._cached(
            self._estimates,
            str(photo_path),
            lambda: self.depth_model.estimate(self.photo(photo_path).photo),
        )

    # ---------------------------------------------------------------- rendering
    def _controls(self, renderer, loaded, depth, focus_x, focus_y, blur, scale):
        """Keyword controls for `renderer.render` at `scale` of the full photo."""
        kwargs = {}
        if renderer.takes_blur and blur is not None:
            kwargs["blur"] = ctl.check_blur(blur) * scale
        if renderer.takes_focus and focus_x is not None and focus_y is not None:
            point = ctl.check_focus_point((focus_x, focus_y), loaded.photo.shape)
            if depth is not None:  # read d_f at full resolution: preview and full size agree
                kwargs["focus_disparity"] = ctl.disparity_at(depth, point, loaded.photo.shape)
            else:
                kwargs["focus"] = (point[0] * scale, point[1] * scale)
        return kwargs

    def _render(self, photo_path, depth_path, focus_x, focus_y, blur, method, full):
        renderer = self.renderer(method)
        loaded = self.photo(photo_path)
        depth = self.depth(depth_path, loaded.photo.shape)
        if depth is None and renderer.needs_depth and self.depth_model is not None:
            depth = self.estimate_depth(photo_path)  # e.g. an API call without a map
        if depth is None and renderer.needs_depth:
            raise BadDataError(
                f"{renderer.name} needs a depth map: upload one (EBB! convention: near = "
                "bright), or use the geometric fallback (not a depth estimate)"
            )
        scale = 1.0 if full else loaded.scale
        image = loaded.photo if full else loaded.preview
        kwargs = self._controls(renderer, loaded, depth, focus_x, focus_y, blur, scale)
        start = time.perf_counter()
        out = renderer.render(image, depth, **kwargs)
        return out, time.perf_counter() - start, renderer

    def preview(self, photo_path, depth_path, focus_x, focus_y, blur, method):
        """(preview image uint8, status line)."""
        out, seconds, renderer = self._render(
            photo_path, depth_path, focus_x, focus_y, blur, method, full=False
        )
        h, w = out.shape[:2]
        controls = []
        if renderer.takes_focus and focus_x is not None:
            controls.append(f"focus ({focus_x:.0f}, {focus_y:.0f})")
        if renderer.takes_blur and blur is not None:
            controls.append(f"K = {float(blur):g}")
        status = f"preview {w} x {h}, {renderer.name}, {', '.join(controls) or 'fixed look'}: "
        status += f"{seconds:.2f} s"
        return to_uint8(out), status

    def preview_file(self, photo_path, depth_path, focus_x, focus_y, blur, method):
        """(preview as a JPEG, quality PREVIEW_JPEG_QUALITY, in the temp folder; status line).
        Written here with OpenCV: ~7x faster than the PNG Gradio would encode on every change."""
        image, status = self.preview(photo_path, depth_path, focus_x, focus_y, blur, method)
        path = self.temp.new_path("preview.jpg")
        cv2.imwrite(str(path), image[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, PREVIEW_JPEG_QUALITY])
        return str(path), status

    def render_full(self, photo_path, depth_path, focus_x, focus_y, blur, method):
        """The full-size render written as a PNG in the demo's temp folder; its path."""
        out, _, renderer = self._render(
            photo_path, depth_path, focus_x, focus_y, blur, method, full=True
        )
        path = self.temp.new_path(f"{renderer.name}_bokeh.png")
        image_io.write_image(path, out)
        return str(path)


def to_uint8(image):
    return np.round(np.clip(image, 0.0, 1.0) * 255.0).astype(np.uint8)
