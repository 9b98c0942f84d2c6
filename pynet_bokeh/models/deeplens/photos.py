"""DeepLens on one photo: the evaluator's pyramid (long side capped at 1280) and the render."""

import numpy as np

from pynet_bokeh.models.deeplens.graph import deeplens_forward
from pynet_bokeh.models.deeplens.networks import APERTURE_RADIUS_FRACTION, MAX_SIDE
from pynet_bokeh.models.deeplens_layers import legacy_bilinear_resize


def _area_half(img):
    import cv2

    h, w = img.shape[:2]
    return cv2.resize(img, (w // 2, h // 2), interpolation=cv2.INTER_AREA)


def deeplens_pyramid(photo):
    """The evaluator's preprocessing: (capped photo, [image_320, image_640?, image_1280?], scale).

    The long side is capped at 1280 (INTER_AREA, other side `dim * 1280 // L`); scale 4 when the
    capped long side is 1280, 2 when it is >= 640, else 1. Lower levels are INTER_AREA halvings.
    """
    import cv2

    photo = np.asarray(photo, np.float32)
    if photo.ndim != 3 or photo.shape[2] != 3:
        raise ValueError(f"photo must be an H x W x 3 RGB array, got shape {photo.shape}.")
    h, w = photo.shape[:2]
    long_side = max(h, w)
    if long_side > MAX_SIDE:
        size = (w * MAX_SIDE // long_side, h * MAX_SIDE // long_side)
        photo = cv2.resize(photo, size, interpolation=cv2.INTER_AREA)
        long_side = MAX_SIDE
    scale = 4 if long_side >= MAX_SIDE else 2 if long_side >= MAX_SIDE // 2 else 1
    levels = [photo]
    for _ in range(scale.bit_length() - 1):
        levels.insert(0, _area_half(levels[0]))
    if min(levels[0].shape[:2]) < 8:
        raise ValueError(
            f"photo of {w} x {h} pixels is too small for DeepLens: its working image would be "
            f"{levels[0].shape[1]} x {levels[0].shape[0]} (at least 8 pixels a side needed)."
        )
    return photo, levels, scale


def render_deeplens(model, photo, focus_xy=None, aperture=0.5, depth=None, focus_depth=None):
    """Shallow depth of field for one RGB photo in [0, 1]: returns (image, depth map).

    focus_xy: (x, y) in photo pixels (default: the centre), or focus_depth in [0, 1] (inverse
    depth of the plane to keep sharp) instead. aperture in [0, 1] (0 keeps everything sharp).
    depth: optional inverse depth (larger = nearer) in [0, 1], any size, used instead of the
    depth network. The image has the photo's size after the 1280 cap (float32, H x W x 3); the
    depth map (H' x W') the working image's size.
    """
    photo = np.asarray(photo, np.float32)
    capped, levels, scale = deeplens_pyramid(photo)
    lh, lw = levels[0].shape[:2]
    if depth is not None:
        depth = np.asarray(depth, np.float32)
        depth = depth[..., 0] if depth.ndim == 3 else depth
        depth = legacy_bilinear_resize(depth[None, ..., None], lh, lw)
    focus = None
    if focus_depth is None:
        ratio = capped.shape[1] / photo.shape[1]
        if focus_xy is None:
            fx, fy = capped.shape[1] // 2, capped.shape[0] // 2
        else:
            x, y = focus_xy
            if not (0 <= x < photo.shape[1] and 0 <= y < photo.shape[0]):
                raise ValueError(
                    f"focus point {tuple(focus_xy)} lies outside the photo "
                    f"({photo.shape[1]} x {photo.shape[0]} pixels)."
                )
            fx, fy = int(x * ratio), int(y * ratio)
        focus = (min(fx // scale, lw - 1), min(fy // scale, lh - 1))
    pyramid = dict(zip(("image_320", "image_640", "image_1280"), levels, strict=False))
    out = deeplens_forward(
        model, focus_xy=focus, aperture=aperture, depth=depth, focus_depth=focus_depth, **pyramid
    )
    return out[f"dof_{320 * scale}"].numpy(), out["depth"][..., 0].numpy()


def aperture_for_blur(blur, photo_shape):
    """DeepLens' aperture A for the shared blur control K (pixels at the photo's full size):
    A = K / (APERTURE_RADIUS_FRACTION * max(H, W)). A = 1 is the widest aperture it was trained
    for."""
    return float(blur) / (APERTURE_RADIUS_FRACTION * max(photo_shape[:2]))


def blur_for_aperture(aperture, photo_shape):
    """The inverse of `aperture_for_blur`: K in pixels at the photo's size for aperture A."""
    return float(aperture) * APERTURE_RADIUS_FRACTION * max(photo_shape[:2])
