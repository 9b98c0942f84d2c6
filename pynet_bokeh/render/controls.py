"""The shared controls of a bokeh render, one meaning for every method.

- focus: a point (x, y) in the photo's pixels, whose disparity (the depth map's value there,
  median of a small window) becomes the in-focus disparity d_f; or d_f in [0, 1] directly.
- blur: K, the circle-of-confusion radius in pixels at the photo's full resolution of a point one
  unit of disparity (the depth map's whole 0..1 range) from the focal plane, so a pixel of
  disparity d gets radius |d - d_f| * K (BokehMe's K). 0 renders the photo unchanged.

Depth maps follow the EBB! convention: near = bright, values in [0, 1], any size with the
photo's aspect ratio.
"""

from __future__ import annotations

import numpy as np

from pynet_bokeh.errors import UsageError

#: Half-size of the median window, in photo pixels, that reads the focus point's disparity.
FOCUS_WINDOW_RADIUS = 4


def check_blur(blur) -> float:
    """`blur` (K, pixels) as a float; UsageError naming --blur when negative or not finite."""
    try:
        value = float(blur)
    except (TypeError, ValueError):
        raise UsageError(f"--blur {blur!r}: give K, a radius in pixels (a number >= 0)") from None
    if not np.isfinite(value) or value < 0:
        raise UsageError(f"--blur {blur!r}: K is a radius in pixels, a finite number >= 0")
    return value


def check_focus_disparity(value) -> float:
    """`focus_disparity` as a float in [0, 1]; UsageError naming --focus_disparity otherwise."""
    try:
        d = float(value)
    except (TypeError, ValueError):
        raise UsageError(f"--focus_disparity {value!r}: give a number in [0, 1]") from None
    if not 0.0 <= d <= 1.0:
        raise UsageError(
            f"--focus_disparity {value!r}: the depth map's values run from 0 (far) to 1 (near)"
        )
    return d


def check_focus_point(focus, photo_shape) -> tuple[float, float]:
    """`focus` (x, y) in photo pixels, checked to lie inside the photo."""
    try:
        x, y = (float(v) for v in focus)
    except (TypeError, ValueError):
        raise UsageError(f"--focus {focus!r}: give X,Y in the photo's pixels") from None
    h, w = photo_shape[:2]
    if not (0 <= x < w and 0 <= y < h):
        raise UsageError(
            f"--focus {x:g},{y:g} lies outside the photo ({w} x {h} pixels, x < {w}, y < {h})"
        )
    return x, y


def disparity_at(depth, focus, photo_shape, radius=FOCUS_WINDOW_RADIUS) -> float:
    """The in-focus disparity for a focus point (x, y) in photo pixels: the median of the depth
    map over a (2 radius + 1)-pixel window around it, the window scaled to the map's size."""
    depth = np.asarray(depth, np.float32)
    if depth.ndim == 3:
        depth = depth[..., 0]
    x, y = check_focus_point(focus, photo_shape)
    h, w = photo_shape[:2]
    dh, dw = depth.shape
    cx, cy = x * dw / w, y * dh / h
    rx, ry = max(radius * dw / w, 0.5), max(radius * dh / h, 0.5)
    x0, x1 = int(np.floor(cx - rx)), int(np.floor(cx + rx)) + 1
    y0, y1 = int(np.floor(cy - ry)), int(np.floor(cy + ry)) + 1
    window = depth[max(y0, 0) : min(y1, dh), max(x0, 0) : min(x1, dw)]
    return float(np.median(window))


def classical_aperture(blur, photo_shape) -> float:
    """The classical renderer's `aperture` for blur K: K / max(H, W)."""
    return check_blur(blur) / float(max(photo_shape[:2]))


def signed_defocus(depth, focus_disparity, blur, k_max):
    """The controllable PyNET's fifth input channel: c = clip((d - d_f) * K / K_max, -1, 1).

    `depth` in [0, 1] (near = bright), d_f in [0, 1], K in pixels, K_max the model's
    `defocus_k_max`; c * K_max is the signed blur radius in full-resolution pixels. Works on
    numpy arrays and on TF tensors (the data pipeline), elementwise, so it broadcasts.
    """
    scaled = (depth - focus_disparity) * (blur / k_max)
    if hasattr(scaled, "dtype") and not isinstance(scaled, np.ndarray | np.generic):
        import tensorflow as tf

        return tf.clip_by_value(scaled, -1.0, 1.0)
    return np.clip(np.asarray(scaled, np.float32), -1.0, 1.0)
