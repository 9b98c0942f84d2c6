"""The published EBB! scoring protocols: each paper's PSNR / SSIM exactly as its script computes it.

Every protocol takes `pred`, the model's raw float output (not clipped, not quantised), and
`target`, decoded from its 8-bit file as k / 255, both H x W x 3 RGB, and returns a dict with
"psnr", "ssim" and, where the protocol has it, "ms_ssim". They disagree with each other by up to
several dB on the same pair (see `../shared/fixtures/protocols`): compare a number only with
numbers scored under the same protocol.

- "ebb" (this package's default): prediction clipped to [0, 1], a 32-px border removed from both,
  tf.image's PSNR / SSIM / MS-SSIM (max 1) with float64 means (`tf_metrics`).
- "aim2020": as "ebb" on a centre crop (default 1024 x 1024) instead of the border, the AIM 2020
  challenge style.
- "authors": PyNET-Bokeh's `test_model.py` (aiff22/PyNET-Bokeh). The prediction is clipped to
  [0, 1]. The target goes through `scipy.misc.imresize(Y / 255.0, DSLR_SCALE / 2, 'bicubic')`,
  which on a float image first *bytescales* it: round_half_up(255 (y - min) / (max - min)) with
  min / max over all three channels (scale 1 when max == min), i.e. the target is stretched to
  span 0..255 (several dB on a target that does not span it); then a PIL bicubic resize (level 1:
  factor 1, the image unchanged; levels 2 and 3: factors 0.5 and 0.25, size floored), then / 255.
  A 32-px border is removed (top-left anchored crops of (H - 64) x (W - 64), H x W the target's
  size) and tf.image's PSNR / SSIM / MS-SSIM (max 1) are taken per image. Quirk: the script cuts
  its half-size input's width to a multiple of 32 and not the target's, so at photo widths that
  are not multiples of 64 its output is narrower than the target (and its crop fails when the gap
  exceeds 32 px); this package renders at full width (reflection padding), so at such widths the
  right-hand columns of the two predictions differ.
- "dmshn": the Val294 protocol of Stacked DMSHN and BRViT. The prediction is saved as an 8-bit PNG
  (x * 255 + 0.5, clamped to 0..255, truncated); both images uint8; scikit-image
  `peak_signal_noise_ratio` (data range 255, float64 MSE) and `structural_similarity` (7 x 7
  uniform window, sample covariance, K1 0.01, K2 0.03, data range 255, per-channel mean, the 3-px
  edge cropped). Its LPIPS feeds [-1, 1] without `normalize` (the same numbers as [0, 1] with it).
- "ntire2023": NTIRE 2023 Bokeh Effect Transformation `metrics.py`. The prediction clamped to
  [0, 1], then x * 255 *truncated* to uint8; PSNR = 20 log10(max(pred_uint8) / sqrt(MSE)) in
  float32, the prediction's maximum as the peak, not 255; SSIM as scikit-image with
  `channel_axis=2` on the uint8 images.
- "bokehlicious": Bokehlicious `evaluate.py`. Both centre-cropped to multiples of 4
  (left = ceil((W - W4) / 2), the same for top); the prediction clamped to [0, 1]; torchmetrics
  PSNR (data range 1) and SSIM (Gaussian 11 x 11, sigma 1.5, K1 0.01, K2 0.03, both images
  reflect-padded by 5 so the map has the image's size, mean over the whole map: torchmetrics
  1.8 keeps the padded rim, 3.5e-4 SSIM away from a VALID map). Its LPIPS feeds [0, 1] with
  `normalize=True`.

    image_metrics(pred, target, protocol="dmshn")      # {"psnr": .., "ssim": ..}
    all_protocols(pred, target)                        # {"ebb/psnr": .., "dmshn/ssim": .., ...}
"""

from __future__ import annotations

import math

import numpy as np

from pynet_bokeh.metrics import tf_metrics
from pynet_bokeh.metrics.tf_metrics import DEFAULT_BORDER, DEFAULT_CROP, METRICS

# protocol -> the metrics it reports (in report column order)
PROTOCOL_METRICS = {
    "ebb": METRICS,
    "aim2020": METRICS,
    "authors": METRICS,
    "dmshn": ("psnr", "ssim"),
    "ntire2023": ("psnr", "ssim"),
    "bokehlicious": ("psnr", "ssim"),
}
PROTOCOLS = tuple(PROTOCOL_METRICS)
AUTHORS_BORDER = 32
BOKEHLICIOUS_PAD = (tf_metrics.SSIM_FILTER_SIZE - 1) // 2
# LPIPS input convention per protocol that reports LPIPS (both give the same distances).
LPIPS_INPUTS = {
    "dmshn": "[-1, 1], normalize=False",
    "bokehlicious": "[0, 1], normalize=True",
}
PROTOCOL_HELP = {
    "ebb": "pred clipped, 32-px border off, tf.image PSNR/SSIM/MS-SSIM (this package's default)",
    "aim2020": "as ebb on a centre crop (--crop_size), AIM 2020 style",
    "authors": "PyNET-Bokeh test_model.py: target bytescaled to 0..255 (scipy.misc.imresize on "
    "float), 32-px border off, tf.image PSNR/SSIM/MS-SSIM",
    "dmshn": "Stacked DMSHN / BRViT (Val294): pred saved as 8-bit PNG (round), scikit-image PSNR "
    "(255) and SSIM (7x7 uniform, sample covariance, 3-px edge off)",
    "ntire2023": "NTIRE 2023 metrics.py: pred truncated to uint8, PSNR peak = max(pred), "
    "scikit-image SSIM",
    "bokehlicious": "Bokehlicious evaluate.py: centre crop to multiples of 4, torchmetrics PSNR "
    "and SSIM (11x11 Gaussian)",
}


def _float_pair(pred, target):
    pred = np.asarray(pred, dtype=np.float32)
    target = np.asarray(target, dtype=np.float32)
    if pred.ndim != 3 or pred.shape[-1] != 3 or target.ndim != 3 or target.shape[-1] != 3:
        raise ValueError(
            f"pred and target must be H x W x 3 RGB, got {pred.shape} and {target.shape}"
        )
    return pred, target


def target_bytes(target):
    """The 8-bit values k of a target decoded as k / 255."""
    return np.round(np.asarray(target, np.float64) * 255.0).clip(0, 255).astype(np.uint8)


def bytescale(image):
    """scipy.misc.bytescale (SciPy <= 1.2) of a float image: its range stretched to 0..255.

    round_half_up(255 (x - min) / (max - min)), min / max over all channels; when max == min the
    denominator is 1.
    """
    image = np.asarray(image, np.float64)
    lo, hi = float(image.min()), float(image.max())
    span = hi - lo if hi != lo else 1.0
    return (((image - lo) * (255.0 / span)).clip(0, 255) + 0.5).astype(np.uint8)


def authors_target(target, level: int = 1):
    """The target as PyNET-Bokeh's test_model.py scores it at `level` (float32 in [0, 1]).

    `misc.imresize(Y / 255.0, DSLR_SCALE / 2, 'bicubic')`: bytescaled, PIL-bicubic resized by
    2 ** (1 - level) (size floored; level 1 leaves it unchanged), then / 255.
    """
    if level not in (1, 2, 3):
        raise ValueError(f"the authors' script scores levels 1-3, got level {level}")
    scaled = bytescale(target_bytes(target) / 255.0)
    factor = 2.0 ** (1 - level)
    if factor != 1.0:
        from PIL import Image  # PIL's bicubic, as scipy.misc.imresize (Pillow: imageio's dep)

        h, w = scaled.shape[:2]
        size = (int(w * factor), int(h * factor))
        scaled = np.asarray(Image.fromarray(scaled).resize(size, Image.BICUBIC))
    return scaled.astype(np.float32) / 255.0


def authors_metrics(pred, target, level: int = 1, metrics=METRICS):
    """PSNR / SSIM / MS-SSIM as PyNET-Bokeh's test_model.py (see the module docstring).

    `pred` is the level's output: at least as large as the (resized) target's scored region.
    """
    pred, target = _float_pair(pred, target)
    y = authors_target(target, level)
    h, w = y.shape[:2]
    b = AUTHORS_BORDER
    if h <= 2 * b or w <= 2 * b:
        raise ValueError(f"target of {h}x{w} px is too small for the authors' 32-px border")
    if pred.shape[0] < h - b or pred.shape[1] < w - b:
        raise ValueError(
            f"prediction {pred.shape[:2]} is too small for the authors' crop of the level-{level} "
            f"target {(h, w)}: pass the level's output at its own size"
        )
    p = np.clip(pred, 0.0, 1.0)[b : h - b, b : w - b]
    t = y[b : h - b, b : w - b]
    return _tf_scores(p, t, metrics)


def _tf_scores(p, t, metrics):
    fns = {"psnr": tf_metrics.psnr, "ssim": tf_metrics.ssim, "ms_ssim": tf_metrics.ms_ssim}
    out = {name: float(fns[name](p, t)[0]) for name in metrics}
    if "ms_ssim" in metrics:
        out["ms_ssim_scales"] = tf_metrics.ms_ssim_scales(*p.shape[:2])
    return out


def _skimage_ssim(a, b):
    from skimage.metrics import structural_similarity

    return float(structural_similarity(a, b, channel_axis=2))


def dmshn_metrics(pred, target):
    """PSNR / SSIM as Stacked DMSHN and BRViT score Val294 (see the module docstring)."""
    from skimage.metrics import peak_signal_noise_ratio

    pred, target = _float_pair(pred, target)
    p = np.clip(np.floor(pred.astype(np.float64) * 255.0 + 0.5), 0, 255).astype(np.uint8)
    t = target_bytes(target)
    if np.array_equal(p, t):
        return {"psnr": math.inf, "ssim": 1.0}
    return {"psnr": float(peak_signal_noise_ratio(t, p)), "ssim": _skimage_ssim(t, p)}


def ntire2023_metrics(pred, target):
    """PSNR / SSIM as NTIRE 2023 Bokeh Effect Transformation's metrics.py."""
    pred, target = _float_pair(pred, target)
    p = (np.clip(pred, 0.0, 1.0) * np.float32(255)).astype(np.uint8)  # .mul(255).byte()
    t = target_bytes(target)
    mse = np.mean((p.astype(np.float32) - t.astype(np.float32)) ** 2, dtype=np.float32)
    with np.errstate(divide="ignore"):
        psnr = 20 * np.log10(np.float32(p.max()) / np.sqrt(mse))
    return {"psnr": float(psnr), "ssim": _skimage_ssim(p, t)}


def crop_to_multiple(img, multiple: int = 4):
    """Bokehlicious' centre crop to multiples of `multiple` (left = ceil((W - W4) / 2))."""
    h, w = img.shape[:2]
    nh, nw = h - h % multiple, w - w % multiple
    top, left = math.ceil((h - nh) / 2), math.ceil((w - nw) / 2)
    return img[top : top + nh, left : left + nw]


def bokehlicious_metrics(pred, target):
    """PSNR / SSIM as Bokehlicious' evaluate.py (torchmetrics, data range 1).

    SSIM: tf.image's Gaussian SSIM on both images reflect-padded by 5 (torch's "reflect", the
    edge pixel not repeated), so the map covers every pixel, averaged over the whole map.
    """
    pred, target = _float_pair(pred, target)
    p = crop_to_multiple(np.clip(pred, 0.0, 1.0))
    t = crop_to_multiple(target)
    pad = ((BOKEHLICIOUS_PAD,) * 2, (BOKEHLICIOUS_PAD,) * 2, (0, 0))
    ssim = tf_metrics.ssim(np.pad(p, pad, mode="reflect"), np.pad(t, pad, mode="reflect"))
    return {"psnr": float(tf_metrics.psnr(p, t)[0]), "ssim": float(ssim[0])}


def image_metrics(
    pred,
    target,
    protocol: str = "ebb",
    border: int = DEFAULT_BORDER,
    crop_size=DEFAULT_CROP,
    clip: bool = True,
    metrics=METRICS,
    level: int = 1,
) -> dict:
    """PSNR / SSIM (/ MS-SSIM) of one H x W x 3 prediction against its target under `protocol`.

    `border`, `crop_size`, `clip` and `metrics` apply to "ebb" / "aim2020" (which also report
    "ms_ssim_scales": 5 unless the scored region is under 176 px); `level` to "authors" (whose
    target is reduced to the level's size; `pred` is then the level's output). The other
    protocols fix their own quantisation and crop.
    """
    if protocol not in PROTOCOL_METRICS:
        raise ValueError(f"unknown protocol {protocol!r}; use one of {PROTOCOLS}")
    pred = np.asarray(pred, dtype=np.float32)
    target = np.asarray(target, dtype=np.float32)
    if pred.shape != target.shape and not (protocol == "authors" and level > 1):
        raise ValueError(
            f"prediction {pred.shape} and target {target.shape} differ in size; "
            "resize the output to the target's size before scoring"
        )
    if protocol == "authors":
        return authors_metrics(pred, target, level, _known(metrics))
    if protocol == "dmshn":
        return dmshn_metrics(pred, target)
    if protocol == "ntire2023":
        return ntire2023_metrics(pred, target)
    if protocol == "bokehlicious":
        return bokehlicious_metrics(pred, target)
    metrics = _known(metrics)
    if clip:
        pred = np.clip(pred, 0.0, 1.0)
    a = tf_metrics.scored_region(pred, protocol, border, crop_size)
    b = tf_metrics.scored_region(target, protocol, border, crop_size)
    return _tf_scores(a, b, metrics)


def _known(metrics):
    unknown = set(metrics) - set(METRICS)
    if unknown:
        raise ValueError(f"unknown metrics {sorted(unknown)}; choose from {METRICS}")
    return tuple(metrics)


def all_protocols(pred, target, protocols=PROTOCOLS, **options) -> dict:
    """Every protocol's scores in one dict keyed "<protocol>/<metric>" (one decode, one model run).

    `options` (border, crop_size, level) go to `image_metrics`.
    """
    out = {}
    for protocol in protocols:
        scores = image_metrics(pred, target, protocol=protocol, **options)
        for name in PROTOCOL_METRICS[protocol]:
            out[f"{protocol}/{name}"] = scores[name]
    return out


def protocol_columns(protocols=PROTOCOLS) -> list[str]:
    """The "<protocol>/<metric>" keys `all_protocols` returns, in order."""
    return [f"{p}/{m}" for p in protocols for m in PROTOCOL_METRICS[p]]
