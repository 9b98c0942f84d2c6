"""Depth-driven physical defocus, no learning.

A thin-lens model: a point at disparity d (inverse depth) seen by a lens focused at disparity f
is spread over a circle of confusion whose radius is proportional to |d - f| times the aperture.
Here the radius in pixels is

    radius = aperture * |d - f| * max(H, W)

so `aperture` is the blur radius, as a fraction of the image's longer side, of a point one unit of
disparity away from the focus plane (the same numbers give the same look at any resolution).

The scene is cut into layers by blur radius (at most `max_layers`, about one per pixel of radius),
each layer is blurred with an anti-aliased disc in linear light (sRGB decoded), and the blurred
layers are composited back to front with the "over" operator, so a near object blurs over what lies
behind it while a sharp near object is not covered by the blurred background. Parts of the
background hidden behind a near object are unknown in a single photo; the accumulated coverage is
normalised away at the end, which fills them with the nearby background.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

__all__ = [
    "SceneLayer",
    "auto_focus",
    "coc_radius",
    "disc_kernel",
    "linear_to_srgb",
    "render_bokeh_baseline",
    "render_defocus",
    "render_layers",
    "srgb_to_linear",
]


def srgb_to_linear(x):
    """sRGB-encoded values in [0, 1] -> linear light (IEC 61966-2-1)."""
    x = np.asarray(x, np.float32)
    return np.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4).astype(np.float32)


def linear_to_srgb(x):
    """Linear light -> sRGB-encoded values; the input is clipped to [0, 1] first."""
    x = np.clip(np.asarray(x, np.float32), 0.0, 1.0)
    return np.where(x <= 0.0031308, x * 12.92, 1.055 * x ** (1 / 2.4) - 0.055).astype(np.float32)


def disc_kernel(radius):
    """Normalised anti-aliased disc of the given radius in pixels (radius <= 0.5: identity)."""
    radius = float(radius)
    half = max(int(np.ceil(radius - 0.5)), 0)  # pixels beyond radius + 0.5 get no weight
    yy, xx = np.mgrid[-half : half + 1, -half : half + 1]
    kernel = np.clip(radius + 0.5 - np.hypot(yy, xx), 0.0, 1.0).astype(np.float32)
    return kernel / kernel.sum()


def coc_radius(disparity, focus_disparity, aperture, image_shape):
    """Circle-of-confusion radius in pixels (see the module docstring), signed: > 0 is nearer."""
    scale = float(aperture) * max(image_shape[:2])
    return (np.asarray(disparity, np.float32) - np.float32(focus_disparity)) * np.float32(scale)


@dataclass
class SceneLayer:
    """One layer of a scene, in linear light.

    rgb: H x W x 3 linear colour (not premultiplied); alpha: H x W coverage in [0, 1];
    disparity: H x W array or a number (inverse depth, larger = nearer).
    """

    rgb: np.ndarray
    alpha: np.ndarray
    disparity: np.ndarray | float


def render_layers(layers, focus_disparity, aperture, *, max_layers=32, radius_step=1.0):
    """Renders the defocused image of a layered scene; returns H x W x 3 linear light.

    Every layer is sliced by blur radius into bins about `radius_step` pixels wide (at most
    `max_layers` bins over the whole scene); the slices are blurred with disc kernels and
    composited far to near. With aperture 0 this is the sharp composite of the layers.
    """
    if not layers:
        raise ValueError("render_layers: `layers` is empty")
    if aperture < 0:
        raise ValueError(f"aperture must be >= 0, got {aperture}")
    h, w = layers[0].alpha.shape
    disps = []
    for layer in layers:
        if layer.rgb.shape != (h, w, 3) or layer.alpha.shape != (h, w):
            raise ValueError(
                f"layer shapes rgb {layer.rgb.shape}, alpha {layer.alpha.shape} do not match "
                f"the scene's {h} x {w}"
            )
        disps.append(np.broadcast_to(np.asarray(layer.disparity, np.float32), (h, w)))
    radii = [coc_radius(d, focus_disparity, aperture, (h, w)) for d in disps]
    covered = [np.asarray(layer.alpha) > 0 for layer in layers]
    used = [(r, c) for r, c in zip(radii, covered, strict=True) if c.any()]
    if not used:
        return np.zeros((h, w, 3), np.float32)
    lo = min(float(r[c].min()) for r, c in used)
    hi = max(float(r[c].max()) for r, c in used)
    n_bins = int(np.clip(np.ceil((hi - lo) / radius_step), 1, max_layers))
    width = max((hi - lo) / n_bins, 1e-6)

    # First pass: each slice's mean disparity and radius (to order them far to near) and the
    # bounding box of its pixels, from one sort of each layer's pixels by bin.
    slices = []
    bin_maps = []
    for i, (layer, disp, radius, cov) in enumerate(zip(layers, disps, radii, covered, strict=True)):
        bins = np.clip(((radius - lo) / width).astype(np.int32), 0, n_bins - 1)
        bins[~cov] = n_bins  # not covered: an extra bin, never rendered
        bin_maps.append(bins)
        flat = bins.ravel()
        alpha = np.asarray(layer.alpha, np.float32).ravel()
        weight = np.bincount(flat, alpha, n_bins + 1)
        mean_disp = np.bincount(flat, alpha * disp.ravel(), n_bins + 1) / np.maximum(weight, 1e-12)
        mean_rad = np.bincount(flat, alpha * radius.ravel(), n_bins + 1) / np.maximum(weight, 1e-12)
        order = np.argsort(flat, kind="stable")
        ends = np.cumsum(np.bincount(flat, minlength=n_bins + 1))
        for b in range(n_bins):
            if weight[b] <= 0:
                continue
            pixels = order[(ends[b - 1] if b else 0) : ends[b]]
            rows, cols = pixels // w, pixels % w
            box = (int(rows.min()), int(rows.max()) + 1, int(cols.min()), int(cols.max()) + 1)
            slices.append((float(mean_disp[b]), i, b, abs(float(mean_rad[b])), box))
    slices.sort(key=lambda s: (s[0], s[1], s[2]))

    # Second pass: blur each slice (only the region it touches) and composite it "over".
    acc = np.zeros((h, w, 4), np.float32)
    for _, i, b, radius, (r0, r1, c0, c1) in slices:
        pad = int(np.ceil(radius))
        y0, y1 = max(r0 - pad, 0), min(r1 + pad, h)
        x0, x1 = max(c0 - pad, 0), min(c1 + pad, w)
        in_bin = bin_maps[i][y0:y1, x0:x1] == b
        mask = np.where(in_bin, np.asarray(layers[i].alpha[y0:y1, x0:x1], np.float32), 0.0)
        mask = mask.astype(np.float32)[..., None]
        premult = np.empty((y1 - y0, x1 - x0, 4), np.float32)
        np.multiply(layers[i].rgb[y0:y1, x0:x1], mask, out=premult[..., :3])
        premult[..., 3:] = mask
        if radius > 0.5:
            # Reflection matters only at the image border: elsewhere the region has a zero margin.
            premult = cv2.filter2D(
                premult, -1, disc_kernel(radius), borderType=cv2.BORDER_REFLECT_101
            )
        region = acc[y0:y1, x0:x1]
        region *= 1.0 - premult[..., 3:4]
        region += premult
    coverage = acc[..., 3:4]
    rgb = acc[..., :3] / np.maximum(coverage, 1e-6)
    return np.where(coverage > 1e-6, rgb, 0.0).astype(np.float32)


def render_defocus(
    photo,
    disparity,
    focus_disparity,
    aperture,
    *,
    linear_light=True,
    max_layers=32,
    radius_step=1.0,
):
    """Defocuses an all-in-focus photo with its disparity map (thin lens, disc kernels).

    photo: H x W x 3 sRGB in [0, 1]; disparity: H x W, larger = nearer (an EBB! depth map / 255
    is one); focus_disparity: the disparity rendered sharp; aperture: see the module docstring.
    `linear_light=False` blurs the gamma-encoded values instead (for comparison only: it dims
    highlights). Returns H x W x 3 float32 in [0, 1].
    """
    photo = np.asarray(photo, np.float32)
    disparity = np.asarray(disparity, np.float32)
    if photo.ndim != 3 or photo.shape[2] != 3:
        raise ValueError(f"photo must be H x W x 3, got shape {photo.shape}")
    if disparity.shape != photo.shape[:2]:
        raise ValueError(
            f"disparity shape {disparity.shape} does not match the photo's {photo.shape[:2]}; "
            "resize the depth map to the photo's size first (render_bokeh_baseline does)"
        )
    rgb = srgb_to_linear(photo) if linear_light else photo
    layer = SceneLayer(rgb, np.ones(photo.shape[:2], np.float32), disparity)
    out = render_layers(
        [layer], focus_disparity, aperture, max_layers=max_layers, radius_step=radius_step
    )
    return linear_to_srgb(out) if linear_light else np.clip(out, 0.0, 1.0)


def auto_focus(depth01, center_fraction=1 / 3, percentile=90.0):
    """Focus disparity for a portrait-like shot: the subject near the centre of the frame.

    Returns the `percentile`-th percentile of the depth values (near = large) inside the central
    box covering `center_fraction` of the height and width: the nearest large thing in the centre,
    which in EBB!-style photos is the subject.
    """
    depth01 = np.asarray(depth01, np.float32)
    h, w = depth01.shape[:2]
    ch, cw = max(int(round(h * center_fraction)), 1), max(int(round(w * center_fraction)), 1)
    y0, x0 = (h - ch) // 2, (w - cw) // 2
    return float(np.percentile(depth01[y0 : y0 + ch, x0 : x0 + cw], percentile))


def render_bokeh_baseline(photo, depth01, focus=None, aperture=0.02, **kwargs):
    """Non-learned bokeh baseline for a photo and its EBB!-style depth map.

    photo: H x W x 3 in [0, 1]; depth01: depth map in [0, 1] (near = bright) at any size (EBB!
    maps are half the photo's size; it is resized bilinearly to the photo's size). focus: the
    depth value to keep sharp, default `auto_focus(depth01)` (the central subject). aperture:
    blur radius as a fraction of the longer side per unit of depth (0.02 gives about 20 px of
    background blur on a 1536-px EBB! photo). Other keyword arguments go to `render_defocus`.
    """
    photo = np.asarray(photo, np.float32)
    depth01 = np.asarray(depth01, np.float32)
    if depth01.ndim == 3:
        if depth01.shape[2] != 1:
            raise ValueError(f"depth01 must be H x W (single channel), got shape {depth01.shape}")
        depth01 = depth01[..., 0]
    if focus is None:
        focus = auto_focus(depth01)
    h, w = photo.shape[:2]
    if depth01.shape != (h, w):
        depth01 = cv2.resize(depth01, (w, h), interpolation=cv2.INTER_LINEAR)
    return render_defocus(photo, depth01, focus, aperture, **kwargs)
