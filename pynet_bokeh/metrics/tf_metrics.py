"""PSNR, SSIM and MS-SSIM on images in [0, 1] as tf.image defines them, and the scored regions.

The scores are tf.image's (`tf.image.psnr`, `tf.image.ssim`, `tf.image.ssim_multiscale`, with
`max_val=1.0`), computed with the same TF ops but averaged in float64: tf.image's own float32
means drift by up to ~6e-3 SSIM on a 1024 x 1536 image. Two ways to choose the scored region:

- protocol "ebb" (default): the whole image minus a `border` (32 px) on every side, as in the
  PyNET-Bokeh paper's test metrics;
- protocol "aim2020": a centre crop of `crop_size` (default 1024 x 1024, limited to the image),
  the AIM 2020 challenge style; no border is removed.

`pynet_bokeh.metrics.protocols` builds the published scoring protocols on these functions.

MS-SSIM uses `tf.image.ssim_multiscale`'s five scales (weights 0.0448, 0.2856, 0.3001, 0.2363,
0.1333) with an 11 x 11 Gaussian window, so the scored region must be at least 176 px
(11 * 2**4) on its shorter side. Smaller regions are scored with as many scales as fit, the
first weights renormalised to sum to 1 (`ms_ssim_scales` reports how many); below 11 px none fit
and a ValueError is raised.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

METRICS = ("psnr", "ssim", "ms_ssim")
DEFAULT_BORDER = 32
DEFAULT_CROP = (1024, 1024)
SSIM_FILTER_SIZE = 11
SSIM_FILTER_SIGMA = 1.5
MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)


def _as_batch(img, name):
    arr = np.asarray(img, dtype=np.float32)
    if arr.ndim == 3:
        arr = arr[None]
    if arr.ndim != 4 or arr.shape[-1] not in (1, 3):
        raise ValueError(
            f"{name} must be HxWxC or NxHxWxC with 1 or 3 channels, got shape {np.shape(img)}"
        )
    return arr


def crop_border(img, border: int = DEFAULT_BORDER):
    """Removes `border` pixels from every side of an (N)HWC array."""
    if border < 0:
        raise ValueError(f"border must be >= 0, got {border}")
    if border == 0:
        return img
    h, w = img.shape[-3], img.shape[-2]
    if h <= 2 * border or w <= 2 * border:
        raise ValueError(
            f"image of {h}x{w} px is too small to remove a {border}-px border; "
            "pass a smaller border (e.g. border=0)"
        )
    return img[..., border : h - border, border : w - border, :]


def center_crop(img, size=DEFAULT_CROP):
    """The central `size` (h, w) of an (N)HWC array, limited to the image's own size."""
    h, w = img.shape[-3], img.shape[-2]
    ch, cw = min(int(size[0]), h), min(int(size[1]), w)
    if ch <= 0 or cw <= 0:
        raise ValueError(f"crop size must be positive, got {size}")
    top, left = (h - ch) // 2, (w - cw) // 2
    return img[..., top : top + ch, left : left + cw, :]


def scored_region(img, protocol: str = "ebb", border: int = DEFAULT_BORDER, crop_size=DEFAULT_CROP):
    """The part of an image the metrics look at under `protocol` ("ebb" or "aim2020")."""
    if protocol == "ebb":
        return crop_border(img, border)
    if protocol == "aim2020":
        return center_crop(img, crop_size)
    raise ValueError(f"unknown region protocol {protocol!r}; use 'ebb' or 'aim2020'")


def ms_ssim_scales(height: int, width: int) -> int:
    """How many MS-SSIM scales fit an image of height x width (0 to 5)."""
    scales = 0
    while scales < len(MS_SSIM_WEIGHTS) and min(height, width) >= SSIM_FILTER_SIZE * 2**scales:
        scales += 1
    return scales


def psnr(pred, target, max_val: float = 1.0):
    """Per-image PSNR in dB of NHWC (or HWC) arrays (tf.image.psnr's formula); identical: inf."""
    a, b = _as_batch(pred, "pred"), _as_batch(target, "target")
    _check_same_shape(a, b)
    # The MSE in float64: tf.image.psnr's float32 mean drifts on full-size images.
    mse = np.mean((a.astype(np.float64) - b) ** 2, axis=(1, 2, 3))
    with np.errstate(divide="ignore"):
        return 10.0 * np.log10(max_val**2 / mse)


def _gaussian_kernels(channels: int):
    """The 11-tap Gaussian as a column and a row depthwise kernel: the 2-D window is their
    outer product, and two 1-D passes cost 22 multiply-adds a pixel instead of 121 (TF's CPU
    depthwise convolution made the 2-D one most of an evaluation's time)."""
    coords = np.arange(SSIM_FILTER_SIZE, dtype=np.float64) - (SSIM_FILTER_SIZE - 1) / 2
    g = np.exp(-(coords**2) / (2 * SSIM_FILTER_SIGMA**2))
    g /= g.sum()
    column = np.tile(g[:, None, None, None], (1, 1, channels, 1))
    row = np.tile(g[None, :, None, None], (1, 1, channels, 1))
    return tf.constant(column, tf.float32), tf.constant(row, tf.float32)


def _ssim_terms(a, b, max_val):
    """Per-image, per-channel mean SSIM and mean contrast-structure term, as float64.

    The same maps as tf.image.ssim (11x11 Gaussian, sigma 1.5, k1 0.01, k2 0.03, VALID), but
    averaged in float64: tf.image's own float32 mean drifts by up to ~6e-3 on a 1024 x 1536
    image (it no longer agrees with scikit-image there).
    """
    column, row = _gaussian_kernels(a.shape[-1])

    def blur(x):
        x = tf.nn.depthwise_conv2d(x, column, strides=[1, 1, 1, 1], padding="VALID")
        return tf.nn.depthwise_conv2d(x, row, strides=[1, 1, 1, 1], padding="VALID")

    c1, c2 = (0.01 * max_val) ** 2, (0.03 * max_val) ** 2
    mu_a, mu_b = blur(a), blur(b)
    num0 = mu_a * mu_b * 2.0
    den0 = tf.square(mu_a) + tf.square(mu_b)
    luminance = (num0 + c1) / (den0 + c1)
    num1 = blur(a * b) * 2.0
    den1 = blur(tf.square(a) + tf.square(b))
    cs = (num1 - num0 + c2) / (den1 - den0 + c2)
    ssim_map = (luminance * cs).numpy().astype(np.float64)
    return ssim_map.mean(axis=(1, 2)), cs.numpy().astype(np.float64).mean(axis=(1, 2))


def _check_min_size(a, what):
    h, w = a.shape[1:3]
    if min(h, w) < SSIM_FILTER_SIZE:
        raise ValueError(f"{what} needs images of at least {SSIM_FILTER_SIZE} px, got {h}x{w}")


def ssim(pred, target, max_val: float = 1.0):
    """Per-image SSIM of NHWC (or HWC) arrays, tf.image.ssim's definition (channels averaged)."""
    a, b = _as_batch(pred, "pred"), _as_batch(target, "target")
    _check_same_shape(a, b)
    _check_min_size(a, "SSIM")
    return _ssim_terms(tf.constant(a), tf.constant(b), max_val)[0].mean(axis=-1)


def _downscale2(x):
    # As tf.image.ssim_multiscale: symmetric pad to even size, then 2x2 average pooling.
    h, w = x.shape[1:3]
    if h % 2 or w % 2:
        x = tf.pad(x, [[0, 0], [0, h % 2], [0, w % 2], [0, 0]], mode="SYMMETRIC")
    return tf.nn.avg_pool2d(x, ksize=2, strides=2, padding="VALID")


def ms_ssim(pred, target, max_val: float = 1.0):
    """Per-image MS-SSIM, tf.image.ssim_multiscale's definition, fewer scales on small images."""
    a, b = _as_batch(pred, "pred"), _as_batch(target, "target")
    _check_same_shape(a, b)
    _check_min_size(a, "MS-SSIM")
    scales = ms_ssim_scales(*a.shape[1:3])
    weights = np.asarray(MS_SSIM_WEIGHTS[:scales])
    if scales < len(MS_SSIM_WEIGHTS):
        weights = weights / weights.sum()
    a, b = tf.constant(a), tf.constant(b)
    terms = []
    for k in range(scales):
        if k > 0:
            a, b = _downscale2(a), _downscale2(b)
        ssim_c, cs_c = _ssim_terms(a, b, max_val)
        terms.append(np.maximum(ssim_c if k == scales - 1 else cs_c, 0.0))
    per_channel = np.prod([t**w for t, w in zip(terms, weights, strict=True)], axis=0)
    return per_channel.mean(axis=-1)


def _check_same_shape(a, b):
    if a.shape != b.shape:
        raise ValueError(f"pred and target shapes differ: {a.shape} vs {b.shape}")
